"""RuuviTag sensor adverts: manufacturer-specific data under company id 0x0499.

The first byte is the data format (docs.ruuvi.com, communication/bluetooth-advertisements):

- 0x03 RAWv1 (14 bytes): humidity u8 0.5 %, temperature sign-magnitude integer byte plus a
  hundredths byte, pressure u16 Pa - 50000, acceleration x/y/z int16 mg, battery u16 mV.
  RAWv1 has no 'not available' encoding.
- 0x05 RAWv2 (24 bytes): temperature int16 0.005 C, humidity u16 0.0025 %, pressure u16
  Pa - 50000, acceleration x/y/z int16 mg, power info u16 (11 bits battery mV - 1600, 5 bits tx
  power (dBm + 40) / 2), movement counter u8, measurement sequence u16, MAC 6 bytes.
- 0xE1 Extended v1 (40 bytes): temperature, humidity, pressure as RAWv2; PM1.0 / PM2.5 / PM4.0 /
  PM10.0 u16 0.1 ug/m3; CO2 u16 ppm; VOC and NOx index 9 bits each (high 8 bits in their byte,
  the low bit in flags bits 6 and 7); luminosity u24 0.01 lux; 3 reserved bytes; measurement
  sequence u24; flags u8; 5 reserved bytes; MAC 6 bytes.

All multi-byte fields are big-endian. 'Not available' sentinels (0x8000 signed, all-ones
unsigned, MAC all-ones) become None; fields a format does not carry are None too, so every
Ruuvi advert has the same JSON shape.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from protocols.ble._fields import format_mac, require_length, scaled
from protocols.ble.errors import AdvertError, AdvertErrorReason

__all__ = ["RUUVI_COMPANY_ID", "Ruuvi3", "Ruuvi5", "RuuviE1", "decode_ruuvi"]

RUUVI_COMPANY_ID: Final = 0x0499

_FORMAT_RAWV1: Final = 0x03
_FORMAT_RAWV2: Final = 0x05
_FORMAT_E1: Final = 0xE1

_PRESSURE_OFFSET_PA: Final = 50_000
_INT16_NA: Final = -0x8000
_UINT16_NA: Final = 0xFFFF

# format byte, humidity, temperature integer (sign-magnitude), temperature hundredths,
# pressure, acceleration x, y, z, battery
_RAWV1: Final = struct.Struct(">BBBBHhhhH")
# format byte, temperature, humidity, pressure, acceleration x, y, z, power info, movement
# counter, measurement sequence, MAC
_RAWV2: Final = struct.Struct(">BhHHhhhHBH6s")
_RAWV2_BATTERY_NA: Final = 2047
_RAWV2_TX_NA: Final = 31
_RAWV2_MOVEMENT_NA: Final = 0xFF
_RAWV2_BATTERY_OFFSET_MV: Final = 1600
# format byte, temperature, humidity, pressure, PM1.0, PM2.5, PM4.0, PM10.0, CO2, VOC high bits,
# NOx high bits, luminosity (3 bytes), reserved (3), sequence (3), flags, reserved (5), MAC
_E1: Final = struct.Struct(">BhHHHHHHHBB3s3s3sB5s6s")
_E1_INDEX_NA: Final = 511
_E1_U24_NA: Final = 0xFFFFFF
_E1_VOC_LSB_FLAG: Final = 0x40
_E1_NOX_LSB_FLAG: Final = 0x80


@dataclass(frozen=True, slots=True)
class Ruuvi3:
    """RuuviTag data format 3 (RAWv1)."""

    format: ClassVar[str] = "ruuvi-3"

    temperature_c: float | None
    humidity_pct: float | None
    pressure_pa: int | None
    acc_x_g: float | None
    acc_y_g: float | None
    acc_z_g: float | None
    battery_v: float | None
    tx_power_dbm: int | None = None
    movement_counter: int | None = None
    measurement_sequence: int | None = None
    mac: str | None = None


@dataclass(frozen=True, slots=True)
class Ruuvi5:
    """RuuviTag data format 5 (RAWv2)."""

    format: ClassVar[str] = "ruuvi-5"

    temperature_c: float | None
    humidity_pct: float | None
    pressure_pa: int | None
    acc_x_g: float | None
    acc_y_g: float | None
    acc_z_g: float | None
    battery_v: float | None
    tx_power_dbm: int | None
    movement_counter: int | None
    measurement_sequence: int | None
    mac: str | None


@dataclass(frozen=True, slots=True)
class RuuviE1:
    """Ruuvi data format E1 (Extended v1, air quality)."""

    format: ClassVar[str] = "ruuvi-e1"

    temperature_c: float | None
    humidity_pct: float | None
    pressure_pa: int | None
    pm1_0: float | None
    pm2_5: float | None
    pm4_0: float | None
    pm10_0: float | None
    co2_ppm: int | None
    voc_index: int | None
    nox_index: int | None
    luminosity_lux: float | None
    measurement_sequence: int | None
    mac: str | None
    acc_x_g: float | None = None
    acc_y_g: float | None = None
    acc_z_g: float | None = None
    battery_v: float | None = None
    tx_power_dbm: int | None = None
    movement_counter: int | None = None


def decode_ruuvi(company_id: int, data: bytes) -> Ruuvi3 | Ruuvi5 | RuuviE1:
    """Decode Ruuvi manufacturer data, starting at the data-format byte."""
    if not data:
        raise AdvertError(AdvertErrorReason.TOO_SHORT, "empty manufacturer data", format="ruuvi")
    data_format = data[0]
    if data_format == _FORMAT_RAWV2:
        return _decode_rawv2(data)
    if data_format == _FORMAT_RAWV1:
        return _decode_rawv1(data)
    if data_format == _FORMAT_E1:
        return _decode_e1(data)
    raise AdvertError(
        AdvertErrorReason.UNKNOWN_FORMAT, f"data format 0x{data_format:02x}", format="ruuvi"
    )


def _pressure(raw: int) -> int | None:
    return None if raw == _UINT16_NA else raw + _PRESSURE_OFFSET_PA


def _decode_rawv1(data: bytes) -> Ruuvi3:
    require_length(data, _RAWV1.size, Ruuvi3.format)
    _, humidity, temp_int, temp_frac, pressure, acc_x, acc_y, acc_z, battery = _RAWV1.unpack(data)
    if temp_frac > 99:
        raise AdvertError(
            AdvertErrorReason.BAD_VALUE,
            f"temperature hundredths byte {temp_frac}",
            format=Ruuvi3.format,
        )
    temperature = (temp_int & 0x7F) + temp_frac / 100
    return Ruuvi3(
        temperature_c=round(-temperature if temp_int & 0x80 else temperature, 2),
        humidity_pct=humidity * 0.5,
        pressure_pa=pressure + _PRESSURE_OFFSET_PA,
        acc_x_g=acc_x / 1000,
        acc_y_g=acc_y / 1000,
        acc_z_g=acc_z / 1000,
        battery_v=battery / 1000,
    )


def _decode_rawv2(data: bytes) -> Ruuvi5:
    require_length(data, _RAWV2.size, Ruuvi5.format)
    (_, temp, humidity, pressure, acc_x, acc_y, acc_z, power, movement, sequence, mac) = (
        _RAWV2.unpack(data)
    )
    battery = power >> 5
    tx = power & 0x1F
    return Ruuvi5(
        temperature_c=scaled(temp, _INT16_NA, 0.005, 3),
        humidity_pct=scaled(humidity, _UINT16_NA, 0.0025, 4),
        pressure_pa=_pressure(pressure),
        acc_x_g=scaled(acc_x, _INT16_NA, 0.001, 3),
        acc_y_g=scaled(acc_y, _INT16_NA, 0.001, 3),
        acc_z_g=scaled(acc_z, _INT16_NA, 0.001, 3),
        battery_v=None
        if battery == _RAWV2_BATTERY_NA
        else (battery + _RAWV2_BATTERY_OFFSET_MV) / 1000,
        tx_power_dbm=None if tx == _RAWV2_TX_NA else tx * 2 - 40,
        movement_counter=None if movement == _RAWV2_MOVEMENT_NA else movement,
        measurement_sequence=None if sequence == _UINT16_NA else sequence,
        mac=format_mac(mac),
    )


def _decode_e1(data: bytes) -> RuuviE1:
    require_length(data, _E1.size, RuuviE1.format)
    (
        _,
        temp,
        humidity,
        pressure,
        pm1_0,
        pm2_5,
        pm4_0,
        pm10_0,
        co2,
        voc_high,
        nox_high,
        luminosity,
        _reserved,
        sequence,
        flags,
        _reserved2,
        mac,
    ) = _E1.unpack(data)
    voc = voc_high << 1 | (1 if flags & _E1_VOC_LSB_FLAG else 0)
    nox = nox_high << 1 | (1 if flags & _E1_NOX_LSB_FLAG else 0)
    lux_raw = int.from_bytes(luminosity, "big")
    seq_raw = int.from_bytes(sequence, "big")
    return RuuviE1(
        temperature_c=scaled(temp, _INT16_NA, 0.005, 3),
        humidity_pct=scaled(humidity, _UINT16_NA, 0.0025, 4),
        pressure_pa=_pressure(pressure),
        pm1_0=scaled(pm1_0, _UINT16_NA, 0.1, 1),
        pm2_5=scaled(pm2_5, _UINT16_NA, 0.1, 1),
        pm4_0=scaled(pm4_0, _UINT16_NA, 0.1, 1),
        pm10_0=scaled(pm10_0, _UINT16_NA, 0.1, 1),
        co2_ppm=None if co2 == _UINT16_NA else co2,
        voc_index=None if voc == _E1_INDEX_NA else voc,
        nox_index=None if nox == _E1_INDEX_NA else nox,
        luminosity_lux=scaled(lux_raw, _E1_U24_NA, 0.01, 2),
        measurement_sequence=None if seq_raw == _E1_U24_NA else seq_raw,
        mac=format_mac(mac),
    )
