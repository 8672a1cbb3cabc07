"""AltBeacon: the open beacon format, manufacturer-specific data under any company id.

Layout after the company id (AltBeacon specification, github.com/AltBeacon/spec; identifiers
big-endian)::

    0   2  beacon code     0xBE 0xAC
    2  16  id1             organisational unit, shown as a UUID
    18  2  id2
    20  2  id3
    22  1  reference RSSI, int8 dBm at 1 m
    23  1  manufacturer reserved
"""

from __future__ import annotations

import struct
import uuid as uuid_module
from dataclasses import dataclass
from typing import ClassVar, Final

from protocols.ble._fields import require_length

__all__ = ["ALTBEACON_PREFIX", "AltBeacon", "decode_altbeacon"]

#: The beacon code, the only thing that marks an AltBeacon: any manufacturer may send one.
ALTBEACON_PREFIX: Final = b"\xbe\xac"

_LAYOUT: Final = struct.Struct(">2s16sHHbB")  # code, id1, id2, id3, reference RSSI, reserved


@dataclass(frozen=True, slots=True)
class AltBeacon:
    """One AltBeacon advertisement."""

    format: ClassVar[str] = "altbeacon"

    manufacturer_id: int
    id1: str
    id2: int
    id3: int
    reference_rssi_dbm: int
    mfg_reserved: int


def decode_altbeacon(company_id: int, data: bytes) -> AltBeacon:
    """Decode manufacturer data that starts with the beacon code (prefix already matched)."""
    require_length(data, _LAYOUT.size, AltBeacon.format)
    _, id1, id2, id3, rssi, reserved = _LAYOUT.unpack(data)
    return AltBeacon(company_id, str(uuid_module.UUID(bytes=id1)), id2, id3, rssi, reserved)
