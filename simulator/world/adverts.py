"""What each simulated tag broadcasts: BLE manufacturer / service data from the world's state.

Pure functions from a tag and its item's current readings to the advertisement payload a real
tag of that kind sends, laid out per the published formats (Apple iBeacon, Google Eddystone-UID,
Ruuvi data format 5) and, for our SmartLabel, built with ``protocols.ble``. The runner hands the
result to the fake BlueZ; the gateway decodes it with the same ``protocols`` package.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from protocols.ble import SMARTLABEL_COMPANY_ID, SmartLabelAdvFlags, build_smartlabel_adv
from simulator.world.model import EddystoneUidTag, IBeaconTag, RuuviTag, SmartLabelTag, Tag

__all__ = [
    "APPLE_COMPANY_ID",
    "EDDYSTONE_SERVICE_UUID",
    "RUUVI_COMPANY_ID",
    "AdvertPayload",
    "advert_for",
]

APPLE_COMPANY_ID: Final = 0x004C
RUUVI_COMPANY_ID: Final = 0x0499
EDDYSTONE_SERVICE_UUID: Final = "0000feaa-0000-1000-8000-00805f9b34fb"
#: Eddystone carries the TX power at 0 m; the usual 1 m -> 0 m correction is +41 dB.
EDDYSTONE_1M_TO_0M_DB: Final = 41
#: A resting tag reads 1 g on z; Ruuvi reports acceleration in mg.
RESTING_ACC_MG: Final = (0, 0, 1000)
#: Sea-level standard pressure: scenarios do not model weather.
STANDARD_PRESSURE_PA: Final = 101_325
#: A fresh CR2477 coin cell, what a Ruuvi reports when new.
RUUVI_BATTERY_MV: Final = 3000
RUUVI_TX_POWER_DBM: Final = 4

_RAWV2: Final = struct.Struct(">BhHHhhhHBH6s")


@dataclass(frozen=True, slots=True)
class AdvertPayload:
    """The advertisement data of one scan result, as bleak would report it."""

    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    tx_power: int | None = None


def _int8(value: float) -> int:
    return max(-128, min(127, round(value)))


def advert_for(
    tag: Tag,
    address: str,
    sensors: Mapping[str, float],
    sequence: int,
    *,
    shock_latched: bool = False,
) -> AdvertPayload:
    """The payload ``tag`` broadcasts now; ``sequence`` counts its adverts (wrapping as tags do)."""
    temperature = sensors.get("temperature_c")
    if isinstance(tag, SmartLabelTag):
        flags = SmartLabelAdvFlags.SHOCK_LATCHED if shock_latched else SmartLabelAdvFlags.NONE
        data = build_smartlabel_adv(
            tag.label_id, tag.battery_mv, temperature, flags, sequence % 2**32
        )
        return AdvertPayload(manufacturer_data={SMARTLABEL_COMPANY_ID: data})
    if isinstance(tag, IBeaconTag):
        data = (
            b"\x02\x15"
            + tag.uuid.bytes
            + struct.pack(">HHb", tag.major, tag.minor, _int8(tag.tx_power_1m_dbm))
        )
        return AdvertPayload(manufacturer_data={APPLE_COMPANY_ID: data})
    if isinstance(tag, EddystoneUidTag):
        tx_0m = _int8(tag.tx_power_1m_dbm + EDDYSTONE_1M_TO_0M_DB)
        data = (
            struct.pack(">Bb", 0x00, tx_0m)
            + bytes.fromhex(tag.namespace)
            + bytes.fromhex(tag.instance)
            + b"\x00\x00"
        )
        return AdvertPayload(service_data={EDDYSTONE_SERVICE_UUID: data})
    assert isinstance(tag, RuuviTag)
    return AdvertPayload(
        manufacturer_data={RUUVI_COMPANY_ID: _ruuvi_df5(address, sensors, sequence)}
    )


def _ruuvi_df5(address: str, sensors: Mapping[str, float], sequence: int) -> bytes:
    """RAWv2: temperature 0.005 °C, humidity 0.0025 %, pressure - 50 kPa, acceleration mg,
    battery (mV - 1600) << 5 | (tx dBm + 40) / 2, movement counter, sequence, MAC."""
    temperature = sensors.get("temperature_c")
    humidity = sensors.get("humidity_pct")
    raw_t = -0x8000 if temperature is None else round(temperature / 0.005)
    raw_h = 0xFFFF if humidity is None else round(max(0.0, min(100.0, humidity)) / 0.0025)
    power = ((RUUVI_BATTERY_MV - 1600) << 5) | ((RUUVI_TX_POWER_DBM + 40) // 2)
    mac = bytes.fromhex(address.replace(":", ""))
    return _RAWV2.pack(
        0x05,
        raw_t,
        raw_h,
        STANDARD_PRESSURE_PA - 50_000,
        *RESTING_ACC_MG,
        power,
        0,
        sequence % 0xFFFF,  # 0xFFFF means "not available"
        mac,
    )
