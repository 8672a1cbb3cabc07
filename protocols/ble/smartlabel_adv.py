"""The SmartLabel advertisement: our own manufacturer-specific BLE advert.

A SmartLabel broadcasts this between serial relays so that a gateway can see it directly: who it
is, how its battery and temperature look, and whether something happened (a latched shock).
Layout after the company id, all multi-byte fields big-endian (docs/protocol.md, section 11)::

    0   2  magic          0x53 0x4C ("SL"), tells our advert from other 0xFFFF users
    2   1  version        0x01
    3   8  label_id       u64, the same label id as on the serial link
    11  2  battery_mv     u16 mV, 0xFFFF = not available
    13  2  temperature    int16 0.01 C, 0x8000 = not available
    15  1  flags          bit 0 shock latched, 1 low battery, 2 temperature alarm,
                          3 history pending; bits 4-7 reserved (sent 0, kept if set)
    16  4  sequence       u32, increments per advert, wraps

Company id 0xFFFF is the Bluetooth SIG value reserved for internal use and testing; a
production deployment replaces it with the company identifier assigned to the label vendor
(:data:`SMARTLABEL_COMPANY_ID` is the one place to change).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from protocols.ble._fields import require_length
from protocols.ble.errors import AdvertError, AdvertErrorReason

__all__ = [
    "SMARTLABEL_ADV_MAGIC",
    "SMARTLABEL_ADV_VERSION",
    "SMARTLABEL_COMPANY_ID",
    "SmartLabelAdv",
    "SmartLabelAdvFlags",
    "build_smartlabel_adv",
    "decode_smartlabel_adv",
]

#: Bluetooth SIG "reserved for internal use / testing"; replace with the vendor's assigned id.
SMARTLABEL_COMPANY_ID: Final = 0xFFFF
SMARTLABEL_ADV_MAGIC: Final = b"SL"
SMARTLABEL_ADV_VERSION: Final = 1

_LAYOUT: Final = struct.Struct(">2sBQHhBI")
_BATTERY_NA: Final = 0xFFFF
_TEMPERATURE_NA: Final = -0x8000
_TEMPERATURE_SCALE: Final = 100  # wire unit is 0.01 C


class SmartLabelAdvFlags(enum.IntFlag):
    """State bits a label advertises; JSON shows the integer value."""

    NONE = 0
    SHOCK_LATCHED = 0x01
    LOW_BATTERY = 0x02
    TEMPERATURE_ALARM = 0x04
    HISTORY_PENDING = 0x08


@dataclass(frozen=True, slots=True)
class SmartLabelAdv:
    """One SmartLabel advertisement."""

    format: ClassVar[str] = "smartlabel-adv"

    label_id: int
    battery_mv: int | None
    temperature_c: float | None
    flags: SmartLabelAdvFlags
    sequence: int


def decode_smartlabel_adv(company_id: int, data: bytes) -> SmartLabelAdv:
    """Decode our manufacturer data (magic already matched)."""
    if len(data) < 3:
        raise AdvertError(
            AdvertErrorReason.TOO_SHORT, f"{len(data)} bytes", format=SmartLabelAdv.format
        )
    if data[2] != SMARTLABEL_ADV_VERSION:
        raise AdvertError(
            AdvertErrorReason.UNSUPPORTED_VERSION,
            f"version {data[2]}",
            format=SmartLabelAdv.format,
        )
    require_length(data, _LAYOUT.size, SmartLabelAdv.format)
    _, _, label_id, battery, temperature, flags, sequence = _LAYOUT.unpack(data)
    return SmartLabelAdv(
        label_id=label_id,
        battery_mv=None if battery == _BATTERY_NA else battery,
        temperature_c=None if temperature == _TEMPERATURE_NA else temperature / _TEMPERATURE_SCALE,
        flags=SmartLabelAdvFlags(flags),
        sequence=sequence,
    )


def build_smartlabel_adv(
    label_id: int,
    battery_mv: int | None,
    temperature_c: float | None,
    flags: SmartLabelAdvFlags,
    sequence: int,
) -> bytes:
    """Manufacturer data (after the company id) for one advert, as a label sends it.

    Raises :class:`AdvertError` (BAD_VALUE) for a value the wire cannot carry.
    """
    raw_temperature = (
        _TEMPERATURE_NA if temperature_c is None else round(temperature_c * _TEMPERATURE_SCALE)
    )
    raw_battery = _BATTERY_NA if battery_mv is None else battery_mv
    if temperature_c is not None and not _TEMPERATURE_NA < raw_temperature <= 0x7FFF:
        raise AdvertError(
            AdvertErrorReason.BAD_VALUE,
            f"temperature {temperature_c} C out of range",
            format=SmartLabelAdv.format,
        )
    if battery_mv is not None and not 0 <= battery_mv < _BATTERY_NA:
        raise AdvertError(
            AdvertErrorReason.BAD_VALUE,
            f"battery {battery_mv} mV out of range",
            format=SmartLabelAdv.format,
        )
    try:
        return _LAYOUT.pack(
            SMARTLABEL_ADV_MAGIC,
            SMARTLABEL_ADV_VERSION,
            label_id,
            raw_battery,
            raw_temperature,
            int(flags),
            sequence,
        )
    except struct.error as exc:
        raise AdvertError(
            AdvertErrorReason.BAD_VALUE, str(exc), format=SmartLabelAdv.format
        ) from exc
