"""Tag bindings in the gateway's configuration: ``[[tags]]`` tables, validated at start.

::

    [[tags]]
    tag = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:42"
    asset = "https://id.gs1.org/00/340123450000000017"

Both values are normalised while the file is read (tag id spelling, canonical Digital Link
URI), so a binding matches the ids the pipeline derives; a bad check digit or tag id is a
config error that names the entry.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.registry.gs1 import GS1_KEY_MAX_CHARS, canonical_asset_uri
from gateway.registry.identity import TAG_ID_MAX_CHARS, parse_tag_id

__all__ = ["AssetUri", "TagBinding", "TagBindingList", "TagIdText"]


def _canonical_tag(text: str) -> str:
    return parse_tag_id(text).text


#: A tag id, validated and in canonical spelling (a ``TagIdError`` is a validation error).
TagIdText = Annotated[
    str, Field(min_length=1, max_length=TAG_ID_MAX_CHARS), AfterValidator(_canonical_tag)
]
#: An asset's GS1 key (Digital Link URI or EPC URN), as its canonical Digital Link URI.
AssetUri = Annotated[
    str, Field(min_length=1, max_length=GS1_KEY_MAX_CHARS), AfterValidator(canonical_asset_uri)
]


class TagBinding(BaseModel):
    """One tag fixed to one asset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The tag id (docs/registry.md: ``ibeacon:...``, ``ruuvi:...``, ``smartlabel:...``).
    tag: TagIdText
    #: The asset: SSCC, SGTIN, GIAI or serialised GRAI as a Digital Link URI or EPC URN.
    asset: AssetUri


_MAX_CONFIG_BINDINGS: Final = 100_000  # a config file is not a database; far above any site


def _one_asset_per_tag(bindings: tuple[TagBinding, ...]) -> tuple[TagBinding, ...]:
    seen: dict[str, str] = {}
    for binding in bindings:
        earlier = seen.setdefault(binding.tag, binding.asset)
        if earlier != binding.asset:
            raise ValueError(f"tag {binding.tag} is bound twice: to {earlier} and {binding.asset}")
    return bindings


#: The ``tags`` field of the gateway configuration: a tag may appear once (or repeat the same
#: asset); several tags may share an asset (a pallet with a tag on each side).
TagBindingList = Annotated[
    tuple[TagBinding, ...],
    Field(max_length=_MAX_CONFIG_BINDINGS),
    AfterValidator(_one_asset_per_tag),
]
