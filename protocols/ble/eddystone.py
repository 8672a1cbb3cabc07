"""Google Eddystone: service data under the 16-bit service UUID 0xFEAA.

The first byte is the frame type (google/eddystone protocol-specification.md); fields are
big-endian::

    UID  0x00: tx power int8 dBm at 0 m, namespace 10 bytes, instance 6 bytes, [2 bytes RFU]
    URL  0x10: tx power int8, URL scheme byte, encoded URL (0..17 bytes, expansion codes)
    TLM  0x20: version (0x00 plain; 0x01 encrypted eTLM is not decoded), battery mV u16
               (0 = not supported), temperature 8.8 fixed point int16 (0x8000 = not supported),
               advertising PDU count u32, time since boot u32 in 0.1 s
    EID  0x30: ephemeral id, rotates by design: recognised, not decoded
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from protocols.ble._fields import require_length
from protocols.ble.errors import AdvertError, AdvertErrorReason

__all__ = [
    "EDDYSTONE_UUID16",
    "EddystoneTlm",
    "EddystoneUid",
    "EddystoneUrl",
    "decode_eddystone",
]

EDDYSTONE_UUID16: Final = 0xFEAA

_FRAME_UID: Final = 0x00
_FRAME_URL: Final = 0x10
_FRAME_TLM: Final = 0x20
_FRAME_EID: Final = 0x30
#: Frame types that exist in the specification but carry nothing a gateway can use.
_UNDECODED_FRAMES: Final = frozenset({_FRAME_EID, 0x40})

_UID_LAYOUT: Final = struct.Struct(">Bb10s6s")
_UID_RFU_BYTES: Final = 2  # many beacons drop the two reserved bytes; both lengths are accepted
_TLM_LAYOUT: Final = struct.Struct(">BBHhII")
_URL_HEADER_BYTES: Final = 3  # frame type, tx power, scheme
_URL_MAX_ENCODED_BYTES: Final = 17  # from the specification: the frame must fit one AD record

_URL_SCHEMES: Final = ("http://www.", "https://www.", "http://", "https://")
_URL_EXPANSIONS: Final = (
    ".com/",
    ".org/",
    ".edu/",
    ".net/",
    ".info/",
    ".biz/",
    ".gov/",
    ".com",
    ".org",
    ".edu",
    ".net",
    ".info",
    ".biz",
    ".gov",
)
_TLM_UNENCRYPTED: Final = 0x00
_TLM_ENCRYPTED: Final = 0x01
_TLM_TEMPERATURE_NA: Final = -0x8000
_TLM_UPTIME_S_PER_COUNT: Final = 0.1


@dataclass(frozen=True, slots=True)
class EddystoneUid:
    """An Eddystone-UID frame: a static 16-byte identity."""

    format: ClassVar[str] = "eddystone-uid"

    tx_power_dbm: int
    namespace: bytes
    instance: bytes


@dataclass(frozen=True, slots=True)
class EddystoneUrl:
    """An Eddystone-URL frame."""

    format: ClassVar[str] = "eddystone-url"

    tx_power_dbm: int
    url: str


@dataclass(frozen=True, slots=True)
class EddystoneTlm:
    """An unencrypted Eddystone-TLM frame: the beacon's own health."""

    format: ClassVar[str] = "eddystone-tlm"

    version: int
    battery_mv: int | None
    temperature_c: float | None
    adv_count: int
    uptime_s: float


def decode_eddystone(data: bytes) -> EddystoneUid | EddystoneUrl | EddystoneTlm:
    """Decode the service data of UUID 0xFEAA, starting at the frame-type byte."""
    if not data:
        raise AdvertError(AdvertErrorReason.TOO_SHORT, "empty service data", format="eddystone")
    frame_type = data[0]
    if frame_type == _FRAME_UID:
        return _decode_uid(data)
    if frame_type == _FRAME_URL:
        return _decode_url(data)
    if frame_type == _FRAME_TLM:
        return _decode_tlm(data)
    if frame_type in _UNDECODED_FRAMES:
        raise AdvertError(
            AdvertErrorReason.UNSUPPORTED, f"frame type 0x{frame_type:02x}", format="eddystone"
        )
    raise AdvertError(
        AdvertErrorReason.UNKNOWN_FORMAT,
        f"undefined frame type 0x{frame_type:02x}",
        format="eddystone",
    )


def _decode_uid(data: bytes) -> EddystoneUid:
    if len(data) != _UID_LAYOUT.size + _UID_RFU_BYTES:
        require_length(data, _UID_LAYOUT.size, EddystoneUid.format)
    _, tx_power, namespace, instance = _UID_LAYOUT.unpack_from(data)
    return EddystoneUid(tx_power, namespace, instance)


def _decode_url(data: bytes) -> EddystoneUrl:
    if len(data) < _URL_HEADER_BYTES:
        raise AdvertError(
            AdvertErrorReason.TOO_SHORT, f"{len(data)} bytes", format=EddystoneUrl.format
        )
    encoded = data[_URL_HEADER_BYTES:]
    if len(encoded) > _URL_MAX_ENCODED_BYTES:
        raise AdvertError(
            AdvertErrorReason.BAD_LENGTH,
            f"encoded URL of {len(encoded)} bytes exceeds {_URL_MAX_ENCODED_BYTES}",
            format=EddystoneUrl.format,
        )
    scheme = data[2]
    if scheme >= len(_URL_SCHEMES):
        raise AdvertError(
            AdvertErrorReason.BAD_VALUE, f"URL scheme 0x{scheme:02x}", format=EddystoneUrl.format
        )
    parts = [_URL_SCHEMES[scheme]]
    for byte in encoded:
        if byte < len(_URL_EXPANSIONS):
            parts.append(_URL_EXPANSIONS[byte])
        elif 0x20 < byte < 0x7F:
            parts.append(chr(byte))
        else:
            raise AdvertError(
                AdvertErrorReason.BAD_VALUE,
                f"reserved URL byte 0x{byte:02x}",
                format=EddystoneUrl.format,
            )
    return EddystoneUrl(data[1] - 256 if data[1] > 127 else data[1], "".join(parts))


def _decode_tlm(data: bytes) -> EddystoneTlm:
    if len(data) >= 2 and data[1] == _TLM_ENCRYPTED:
        raise AdvertError(
            AdvertErrorReason.UNSUPPORTED, "encrypted TLM (eTLM)", format=EddystoneTlm.format
        )
    require_length(data, _TLM_LAYOUT.size, EddystoneTlm.format)
    _, version, battery, temperature, adv_count, uptime = _TLM_LAYOUT.unpack(data)
    if version != _TLM_UNENCRYPTED:
        raise AdvertError(
            AdvertErrorReason.BAD_VALUE, f"TLM version 0x{version:02x}", format=EddystoneTlm.format
        )
    return EddystoneTlm(
        version=version,
        battery_mv=battery or None,
        temperature_c=None if temperature == _TLM_TEMPERATURE_NA else temperature / 256,
        adv_count=adv_count,
        uptime_s=round(uptime * _TLM_UPTIME_S_PER_COUNT, 1),
    )
