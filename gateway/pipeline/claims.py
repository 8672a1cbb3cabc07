"""Custody claims shared between neighbouring dock doors over the site topic.

A door alone cannot always tell its own parcels from the next door's (docs/custody.md): each
door gateway publishes a summary of the items it holds evidence for every
:data:`CLAIMS_EVERY_S`, and feeds its neighbours' summaries to its custody engine, which then
claims an item only when its evidence beats theirs. The summary is a JSON array of claims;
what arrives is validated here (a neighbour is another process, possibly another version) and
anything malformed is counted and dropped. Without a site (``uplink.site``) or with the link
down, each door decides alone by the engine's strict single-door rule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.custody import Claim

__all__ = ["CLAIMS_EVERY_S", "MAX_CLAIMS", "ClaimError", "decode_claims", "encode_claims"]

#: A claim's level is a one-minute moving average: sharing it every 10 s keeps neighbours'
#: view at most a sixth of that behind, at a few hundred bytes a message per door.
CLAIMS_EVERY_S: Final = 10.0
#: At most this many claims in one summary (a door's dock holds a few hundred items at most);
#: a summary beyond it is refused as a whole.
MAX_CLAIMS: Final = 2_000


class ClaimError(ValueError):
    """A neighbour's summary that is not a list of claims."""


class _ClaimModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    door: str = Field(min_length=1, max_length=64)
    item: str = Field(min_length=1, max_length=256)
    level_dbm: float = Field(ge=-200, le=50)
    peak_dbm: int = Field(ge=-200, le=50)
    sightings: int = Field(ge=0)
    expected: bool = False


_CLAIMS: Final = TypeAdapter(list[_ClaimModel])


def encode_claims(claims: Sequence[Claim]) -> bytes:
    return json.dumps([asdict(c) for c in claims[:MAX_CLAIMS]], separators=(",", ":")).encode()


def decode_claims(data: object) -> list[Claim]:
    """The claims of a parsed summary; raises :class:`ClaimError` for anything else."""
    if not isinstance(data, list) or len(data) > MAX_CLAIMS:
        raise ClaimError("a summary is a JSON array of at most MAX_CLAIMS claims")
    try:
        models = _CLAIMS.validate_python(data)
    except ValidationError as exc:
        raise ClaimError(str(exc.errors()[:1])) from exc
    return [Claim(**m.model_dump()) for m in models]
