"""u-blox UBX NAV-PVT frames into position fixes, and back for the simulator.

Framing checks, checksums and field scaling are pyubx2's; this module maps NAV-PVT onto
:class:`PositionFix` and translates pyubx2's errors into :class:`GpsError`.
"""

from __future__ import annotations

import datetime
from typing import Final

from pyubx2 import GET, VALCKSUM, UBXMessage, UBXReader, calc_checksum
from pyubx2.exceptions import UBXMessageError, UBXParseError, UBXTypeError

from protocols.gps.errors import GpsError, GpsRejectReason
from protocols.gps.fix import FixQuality, PositionFix

__all__ = ["UBX_HEADER", "build_ubx_nav_pvt", "decode_ubx"]

UBX_HEADER: Final = b"\xb5\x62"
_FRAME_OVERHEAD: Final = 8  # sync (2), class, id, length (2), checksum (2)
_NAV_PVT_CLASS_ID: Final = b"\x01\x07"
_FORMAT: Final = "ubx-nav-pvt"

_FIX_TYPE: Final = {
    0: FixQuality.NONE,
    1: FixQuality.DEAD_RECKONING,
    2: FixQuality.FIX_2D,
    3: FixQuality.FIX_3D,
    4: FixQuality.FIX_3D,  # GNSS + dead reckoning
    5: FixQuality.TIME_ONLY,
}
_CARRIER_SOLUTION: Final = {1: FixQuality.RTK_FLOAT, 2: FixQuality.RTK_FIXED}
_NO_POSITION_FIX_TYPES: Final = frozenset({0, 5})
_MM_PER_M: Final = 1000
# pyubx2 truncates when it scales, so 271.5 deg can come back as 271.49999: round to the wire
# resolution for positions (1e-7 deg) and to 0.001 deg for the heading (1e-5 on the wire, far
# finer than any vehicle's course is known).
_DEG_DIGITS: Final = 7
_HEADING_DIGITS: Final = 3
_PARSE_ERRORS: Final = (
    UBXParseError,
    UBXMessageError,
    UBXTypeError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    OverflowError,
)


def decode_ubx(frame: bytes) -> PositionFix:
    """Decode one complete UBX frame (sync chars to checksum).

    Raises :class:`GpsError`: BAD_CHECKSUM, MALFORMED, or UNSUPPORTED_MESSAGE for a valid frame
    that is not NAV-PVT.
    """
    frame = bytes(frame)
    if len(frame) < _FRAME_OVERHEAD or not frame.startswith(UBX_HEADER):
        raise GpsError(GpsRejectReason.MALFORMED, f"not a UBX frame: {frame[:8].hex()}")
    length = int.from_bytes(frame[4:6], "little")
    if len(frame) != length + _FRAME_OVERHEAD:
        raise GpsError(
            GpsRejectReason.MALFORMED,
            f"length field {length} does not match a {len(frame)}-byte frame",
        )
    if calc_checksum(frame[2:-2]) != frame[-2:]:
        raise GpsError(GpsRejectReason.BAD_CHECKSUM, f"UBX class/id {frame[2:4].hex()}")
    if frame[2:4] != _NAV_PVT_CLASS_ID:
        raise GpsError(GpsRejectReason.UNSUPPORTED_MESSAGE, f"UBX class/id {frame[2:4].hex()}")
    try:
        msg = UBXReader.parse(frame, validate=VALCKSUM, msgmode=GET)
        return _from_nav_pvt(msg)
    except _PARSE_ERRORS as exc:
        raise GpsError(GpsRejectReason.MALFORMED, str(exc)) from exc


def _from_nav_pvt(msg: UBXMessage) -> PositionFix:
    when = None
    if msg.validDate and msg.validTime:
        when = datetime.datetime(
            msg.year, msg.month, msg.day, msg.hour, msg.min, msg.second, tzinfo=datetime.UTC
        ) + datetime.timedelta(microseconds=msg.nano // 1000)
    fix_type = msg.fixType
    if not msg.gnssFixOk:
        fix = FixQuality.NONE
    elif msg.carrSoln in _CARRIER_SOLUTION:
        fix = _CARRIER_SOLUTION[msg.carrSoln]
    elif msg.diffSoln and fix_type in (2, 3, 4):
        fix = FixQuality.DGPS
    else:
        fix = _FIX_TYPE.get(fix_type, FixQuality.NONE)
    has_position = fix_type not in _NO_POSITION_FIX_TYPES and not getattr(msg, "invalidLlh", 0)
    return PositionFix(
        format=_FORMAT,
        time=when,
        time_of_day=None if when is None else when.timetz(),
        lat=round(msg.lat, _DEG_DIGITS) if has_position else None,
        lon=round(msg.lon, _DEG_DIGITS) if has_position else None,
        alt_m=msg.hMSL / _MM_PER_M if has_position else None,
        speed_mps=msg.gSpeed / _MM_PER_M,
        heading_deg=round(msg.headMot, _HEADING_DIGITS),
        fix=fix,
        num_sats=msg.numSV,
        hdop=None,  # NAV-PVT reports position DOP only; NMEA GSA / GGA carry HDOP
    )


_DIFFERENTIAL: Final = frozenset({FixQuality.DGPS, FixQuality.RTK_FLOAT, FixQuality.RTK_FIXED})
_FIX_TO_TYPE: Final = {
    FixQuality.NONE: 0,
    FixQuality.DEAD_RECKONING: 1,
    FixQuality.FIX_2D: 2,
    FixQuality.TIME_ONLY: 5,
}


def build_ubx_nav_pvt(fix: PositionFix, itow_ms: int | None = None) -> bytes:
    """A UBX NAV-PVT frame describing ``fix``, as a u-blox receiver sends it (via pyubx2).

    ``fix.time`` is required. ``itow_ms`` (GPS time of week) defaults to a value derived from the
    UTC time, which is all a consumer of NAV-PVT's UTC fields needs.
    """
    if fix.time is None:
        raise ValueError("build_ubx_nav_pvt needs a time")
    when = fix.time.astimezone(datetime.UTC)
    quality = fix.fix or FixQuality.FIX_3D
    fix_type = _FIX_TO_TYPE.get(quality, 3)
    carrier = {FixQuality.RTK_FLOAT: 1, FixQuality.RTK_FIXED: 2}.get(quality, 0)
    if itow_ms is None:
        week_start = when - datetime.timedelta(days=(when.weekday() + 1) % 7)
        midnight = week_start.replace(hour=0, minute=0, second=0, microsecond=0)
        itow_ms = int((when - midnight).total_seconds() * 1000)
    message = UBXMessage(
        "NAV",
        "NAV-PVT",
        GET,
        iTOW=itow_ms,
        year=when.year,
        month=when.month,
        day=when.day,
        hour=when.hour,
        min=when.minute,
        second=when.second,
        nano=when.microsecond * 1000,
        validDate=1,
        validTime=1,
        fullyResolved=1,
        fixType=fix_type,
        gnssFixOk=0 if quality is FixQuality.NONE else 1,
        diffSoln=1 if quality in _DIFFERENTIAL else 0,
        carrSoln=carrier,
        numSV=fix.num_sats or 0,
        lat=fix.lat or 0.0,
        lon=fix.lon or 0.0,
        height=round((fix.alt_m or 0.0) * _MM_PER_M),
        hMSL=round((fix.alt_m or 0.0) * _MM_PER_M),
        gSpeed=round((fix.speed_mps or 0.0) * _MM_PER_M),
        headMot=fix.heading_deg or 0.0,
    )
    return bytes(message.serialize())
