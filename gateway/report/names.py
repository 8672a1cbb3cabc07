"""How the demo names a scenario's items on the wire, and back.

The platform binds every tag of a scenario item to one asset: a GIAI (GS1 Global Individual
Asset Identifier, AI 8004) whose individual asset reference is the item id behind a fixed GS1
company prefix, e.g. ``PCL-0001`` -> ``https://id.gs1.org/8004/4012345PCL-0001``. A GIAI takes
letters, digits and ``-`` in its reference, so the item id survives the gateway's GS1 validation
and comes back in every event's ``item`` / ``asset``; :func:`item_name` turns it into the item id
again for a reader. Pure: no I/O.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

__all__ = ["DEMO_COMPANY_PREFIX", "DEMO_GIAI_PREFIX", "asset_uri", "item_name"]

#: The GS1 company prefix of the demo's assets (the one the docs' example GLNs use).
DEMO_COMPANY_PREFIX: Final = "4012345"
#: Every demo asset's canonical Digital Link URI starts with this.
DEMO_GIAI_PREFIX: Final = f"https://id.gs1.org/8004/{DEMO_COMPANY_PREFIX}"


def asset_uri(item_id: str) -> str:
    """The asset a scenario item's tags are bound to (not validated here)."""
    return f"{DEMO_GIAI_PREFIX}{item_id}"


def item_name(item: str) -> str:
    """The scenario item id of a demo asset; anything else (a tag id, another GS1 key) as it is."""
    if item.startswith(DEMO_GIAI_PREFIX):
        return unquote(item[len(DEMO_GIAI_PREFIX) :])
    return item
