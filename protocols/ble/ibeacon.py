"""Apple iBeacon: manufacturer-specific data under company id 0x004C.

Layout after the company id (all multi-byte fields big-endian)::

    0   1  type          0x02 (iBeacon)
    1   1  length        0x15 (21 bytes follow)
    2  16  uuid          proximity UUID
    18  2  major
    20  2  minor
    22  1  measured power, int8 dBm at 1 m
"""

from __future__ import annotations

import struct
import uuid as uuid_module
from dataclasses import dataclass
from typing import ClassVar, Final

from protocols.ble._fields import require_length

__all__ = ["APPLE_COMPANY_ID", "IBEACON_PREFIX", "IBeacon", "decode_ibeacon"]

APPLE_COMPANY_ID: Final = 0x004C
#: Type 0x02 and length 0x15 tell an iBeacon from Apple's many other manufacturer adverts.
IBEACON_PREFIX: Final = b"\x02\x15"

_LAYOUT: Final = struct.Struct(">2s16sHHb")  # prefix, uuid, major, minor, measured power


@dataclass(frozen=True, slots=True)
class IBeacon:
    """One iBeacon advertisement."""

    format: ClassVar[str] = "ibeacon"

    uuid: str
    major: int
    minor: int
    measured_power_dbm: int


def decode_ibeacon(company_id: int, data: bytes) -> IBeacon:
    """Decode the manufacturer data that follows company id 0x004C (prefix already matched)."""
    require_length(data, _LAYOUT.size, IBeacon.format)
    _, raw_uuid, major, minor, power = _LAYOUT.unpack(data)
    return IBeacon(str(uuid_module.UUID(bytes=raw_uuid)), major, minor, power)
