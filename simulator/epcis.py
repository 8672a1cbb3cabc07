"""GS1 identities for a simulated world, so that its gateways can publish EPCIS (docs/epcis.md).

Scenario items are named ``PCL-0001`` and the like, and BLE tags have no GS1 key: an EPCIS event
needs each item to be a GS1 key. :func:`epcis_settings` gives one gateway's configuration
additions for a scenario: a ``[[tags]]`` binding of every tag to its item's SSCC, the door's
SGLN as read point (the site's GLN as business location) or the vehicle's GIAI, and the
``[epcis]`` switch. The numbers are built from :data:`COMPANY_PREFIX`, a GS1 example prefix
used throughout the GS1 standards; the same scenario always gives the same keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Final

from simulator.world import World, load_scenario
from simulator.world.model import (
    EddystoneUidTag,
    IBeaconTag,
    RuuviTag,
    Scenario,
    SmartLabelTag,
    Tag,
)

__all__ = [
    "COMPANY_PREFIX",
    "SITE_GLN",
    "epcis_settings",
    "gs1_check_digit",
    "item_sscc",
    "sgln",
    "tag_id",
    "vehicle_giai",
]

#: A GS1 company prefix from the standards' own examples (7 digits).
COMPANY_PREFIX: Final = "4012345"
#: The site's GLN under that prefix (check digit included).
SITE_GLN: Final = "4012345000009"
_SERIAL_DIGITS: Final = 16 - len(COMPANY_PREFIX)  # SSCC: 1 + prefix + serial = 17, + check


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of ``digits`` (weights 3, 1, ... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def item_sscc(item: str) -> str:
    """The SSCC of a scenario item as a GS1 Digital Link URI (serial from the item id)."""
    serial = int.from_bytes(hashlib.sha256(item.encode()).digest()[:8]) % 10**_SERIAL_DIGITS
    body = f"0{COMPANY_PREFIX}{serial:0{_SERIAL_DIGITS}d}"
    return f"https://id.gs1.org/00/{body}{gs1_check_digit(body)}"


def sgln(extension: str | None = None) -> str:
    """The site's GLN, with a door as its extension, as a GS1 Digital Link URI."""
    uri = f"https://id.gs1.org/414/{SITE_GLN}"
    return uri if extension is None else f"{uri}/254/{extension}"


def vehicle_giai(vehicle: str) -> str:
    """A vehicle's GIAI (the prefix and its id) as a GS1 Digital Link URI."""
    return f"https://id.gs1.org/8004/{COMPANY_PREFIX}{vehicle}"


def tag_id(tag: Tag, address: str) -> str:
    """The gateway's tag id of a simulated tag heard from BLE ``address`` (docs/registry.md)."""
    if isinstance(tag, SmartLabelTag):
        return f"smartlabel:{tag.label_id:016x}"
    if isinstance(tag, IBeaconTag):
        return f"ibeacon:{tag.uuid}:{tag.major}:{tag.minor}"
    if isinstance(tag, EddystoneUidTag):
        return f"eddystone:{tag.namespace.lower()}:{tag.instance.lower()}"
    if isinstance(tag, RuuviTag):
        return f"ruuvi:{address.upper()}"
    raise TypeError(f"no tag id for {type(tag).__name__}")


def epcis_settings(
    scenario: str | Path | Scenario, gateway_id: str, output: str = "both"
) -> dict[str, Any]:
    """What to add to gateway ``gateway_id``'s configuration (TOML-ready) for EPCIS output:
    ``{"epcis": {...}, "tags": [...]}``. ``scenario``: a shipped name, a file, or the model."""
    world = World(scenario if isinstance(scenario, Scenario) else load_scenario(scenario))
    placement = world.gateways[gateway_id]
    epcis: dict[str, Any] = {"output": output}
    if placement.vehicle is not None:
        epcis["vehicle"] = vehicle_giai(placement.vehicle)
    else:
        epcis["read_point"] = sgln(f"door-{(placement.door or gateway_id).lower()}")
        epcis["biz_location"] = sgln()
    tags = [
        {"tag": tag_id(ref.tag, ref.address), "asset": item_sscc(ref.item)} for ref in world.tags
    ]
    return {"epcis": epcis, "tags": tags}
