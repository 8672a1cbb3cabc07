"""NMEA 0183 sentences (GGA, RMC, GLL, VTG, GSA, GSV) into position fixes, and back for the
simulator.

Parsing and checksums are pynmeagps's; this module only maps its fields onto
:class:`PositionFix` (units converted, empty fields to None) and translates its errors. Older
receivers' sentences are accepted as they are: NMEA 2.x RMC, GLL and VTG without the mode field
(the status field, or nothing, says whether there is a fix).
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from pynmeagps import (
    GET,
    VALCKSUM,
    NMEAMessage,
    NMEAMessageError,
    NMEAParseError,
    NMEAReader,
    NMEATypeError,
    calc_checksum,
    get_parts,
)

from protocols.gps.errors import GpsError, GpsRejectReason
from protocols.gps.fix import FixQuality, PositionFix, SatelliteInView

__all__ = ["NMEA_FORMATS", "build_nmea_fix", "decode_nmea"]

#: Sentence id -> PositionFix.format for the sentences we turn into positions.
NMEA_FORMATS: Final = {
    "GGA": "nmea-gga",
    "RMC": "nmea-rmc",
    "GLL": "nmea-gll",
    "VTG": "nmea-vtg",
    "GSA": "nmea-gsa",
    "GSV": "nmea-gsv",
}

_KNOTS_TO_MPS: Final = 1852 / 3600
_KMH_TO_MPS: Final = 1 / 3.6
_MPS_DIGITS: Final = 3  # millimetres per second: finer than any receiver reports

_GGA_QUALITY: Final = {
    0: FixQuality.NONE,
    1: FixQuality.GPS,
    2: FixQuality.DGPS,
    3: FixQuality.GPS,  # PPS fix
    4: FixQuality.RTK_FIXED,
    5: FixQuality.RTK_FLOAT,
    6: FixQuality.DEAD_RECKONING,
    7: FixQuality.MANUAL,
    8: FixQuality.SIMULATION,
}
_POS_MODE: Final = {
    "N": FixQuality.NONE,
    "A": FixQuality.GPS,
    "D": FixQuality.DGPS,
    "E": FixQuality.DEAD_RECKONING,
    "F": FixQuality.RTK_FLOAT,
    "R": FixQuality.RTK_FIXED,
    "M": FixQuality.MANUAL,
    "S": FixQuality.SIMULATION,
}
_GSA_NAV_MODE: Final = {1: FixQuality.NONE, 2: FixQuality.FIX_2D, 3: FixQuality.FIX_3D}
_GSA_SVID_FIELDS: Final = tuple(f"svid_{i:02d}" for i in range(1, 13))
_GSV_SLOTS: Final = tuple(f"{i:02d}" for i in range(1, 5))  # a GSV sentence lists up to four
# Errors pynmeagps (and the conversions below) raise for bad input.
_PARSE_ERRORS: Final = (
    NMEAParseError,
    NMEAMessageError,
    NMEATypeError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
)


def decode_nmea(line: bytes | str) -> PositionFix:
    """Decode one NMEA sentence (with or without the trailing CR LF).

    Raises :class:`GpsError`: BAD_CHECKSUM, MALFORMED, or UNSUPPORTED_MESSAGE for a valid
    sentence that is not GGA / RMC / GLL / VTG / GSA / GSV.
    """
    raw = line.encode("ascii", "replace") if isinstance(line, str) else bytes(line)
    raw = raw.strip()
    if not raw.startswith(b"$") or b"*" not in raw:
        raise GpsError(GpsRejectReason.MALFORMED, f"not an NMEA sentence: {raw[:20]!r}")
    try:
        content, _talker, msg_id, _payload, checksum = get_parts(raw)
    except _PARSE_ERRORS as exc:
        raise GpsError(GpsRejectReason.MALFORMED, str(exc)) from exc
    if checksum.upper() != calc_checksum(content):
        raise GpsError(GpsRejectReason.BAD_CHECKSUM, f"{content[:10]}... *{checksum}")
    format_name = NMEA_FORMATS.get(msg_id)
    if format_name is None:
        raise GpsError(GpsRejectReason.UNSUPPORTED_MESSAGE, f"sentence {msg_id or content[:8]}")
    try:
        message = NMEAReader.parse(raw + b"\r\n", validate=VALCKSUM, msgmode=GET)
        if message is None:
            raise GpsError(GpsRejectReason.MALFORMED, f"unparsed {content[:10]}")
        return _MAPPERS[msg_id](format_name, message)
    except _PARSE_ERRORS as exc:
        raise GpsError(GpsRejectReason.MALFORMED, str(exc)) from exc


def _opt_float(value: Any) -> float | None:
    return None if value == "" or value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value == "" or value is None else int(value)


def _time_of_day(value: Any) -> datetime.time | None:
    if not isinstance(value, datetime.time):
        return None
    return value.replace(tzinfo=datetime.UTC)


def _from_gga(format_name: str, msg: NMEAMessage) -> PositionFix:
    quality = _opt_int(msg.quality)
    return PositionFix(
        format=format_name,
        time_of_day=_time_of_day(msg.time),
        lat=_opt_float(msg.lat),
        lon=_opt_float(msg.lon),
        alt_m=_opt_float(msg.alt),
        fix=None if quality is None else _GGA_QUALITY.get(quality, FixQuality.NONE),
        num_sats=_opt_int(msg.numSV),
        hdop=_opt_float(msg.HDOP),
    )


def _from_rmc(format_name: str, msg: NMEAMessage) -> PositionFix:
    time_of_day = _time_of_day(msg.time)
    when = None
    if time_of_day is not None and isinstance(msg.date, datetime.date):
        when = datetime.datetime.combine(msg.date, time_of_day)
    speed = _opt_float(msg.spd)
    fix = _POS_MODE.get(getattr(msg, "posMode", "") or "A", FixQuality.GPS)
    if msg.status != "A":
        fix = FixQuality.NONE
    return PositionFix(
        format=format_name,
        time=when,
        time_of_day=time_of_day,
        lat=_opt_float(msg.lat),
        lon=_opt_float(msg.lon),
        speed_mps=None if speed is None else round(speed * _KNOTS_TO_MPS, _MPS_DIGITS),
        heading_deg=_opt_float(msg.cog),
        fix=fix,
    )


def _from_gll(format_name: str, msg: NMEAMessage) -> PositionFix:
    fix = _POS_MODE.get(getattr(msg, "posMode", "") or "A", FixQuality.GPS)
    if msg.status != "A":
        fix = FixQuality.NONE
    return PositionFix(
        format=format_name,
        time_of_day=_time_of_day(msg.time),
        lat=_opt_float(msg.lat),
        lon=_opt_float(msg.lon),
        fix=fix,
    )


def _from_gsv(format_name: str, msg: NMEAMessage) -> PositionFix:
    satellites = tuple(
        SatelliteInView(
            svid=int(svid),
            elevation_deg=_opt_int(getattr(msg, f"elv_{slot}", "")),
            azimuth_deg=_opt_int(getattr(msg, f"az_{slot}", "")),
            cno_dbhz=_opt_int(getattr(msg, f"cno_{slot}", "")),
        )
        for slot in _GSV_SLOTS
        if (svid := getattr(msg, f"svid_{slot}", "")) not in ("", None)
    )
    return PositionFix(format=format_name, sats_in_view=_opt_int(msg.numSV), satellites=satellites)


def _from_vtg(format_name: str, msg: NMEAMessage) -> PositionFix:
    kmh = _opt_float(msg.sogk)
    knots = _opt_float(msg.sogn)
    if kmh is not None:
        speed: float | None = round(kmh * _KMH_TO_MPS, _MPS_DIGITS)
    elif knots is not None:
        speed = round(knots * _KNOTS_TO_MPS, _MPS_DIGITS)
    else:
        speed = None
    mode = getattr(msg, "posMode", "")
    return PositionFix(
        format=format_name,
        speed_mps=speed,
        heading_deg=_opt_float(msg.cogt),
        fix=_POS_MODE.get(mode) if mode else None,
    )


def _from_gsa(format_name: str, msg: NMEAMessage) -> PositionFix:
    nav_mode = _opt_int(msg.navMode)
    used = sum(1 for name in _GSA_SVID_FIELDS if getattr(msg, name, "") not in ("", 0))
    return PositionFix(
        format=format_name,
        fix=None if nav_mode is None else _GSA_NAV_MODE.get(nav_mode, FixQuality.NONE),
        num_sats=used,
        hdop=_opt_float(msg.HDOP),
    )


_MAPPERS: Final = {
    "GGA": _from_gga,
    "RMC": _from_rmc,
    "GLL": _from_gll,
    "VTG": _from_vtg,
    "GSA": _from_gsa,
    "GSV": _from_gsv,
}

_FIX_TO_GGA: Final = {
    FixQuality.NONE: 0,
    FixQuality.GPS: 1,
    FixQuality.FIX_2D: 1,
    FixQuality.FIX_3D: 1,
    FixQuality.DGPS: 2,
    FixQuality.RTK_FIXED: 4,
    FixQuality.RTK_FLOAT: 5,
    FixQuality.DEAD_RECKONING: 6,
    FixQuality.MANUAL: 7,
    FixQuality.SIMULATION: 8,
}
_FIX_TO_MODE: Final = {quality: mode for mode, quality in _POS_MODE.items()} | {
    FixQuality.FIX_2D: "A",
    FixQuality.FIX_3D: "A",
}
_FIX_TO_NAV_MODE: Final = {FixQuality.FIX_2D: 2, FixQuality.NONE: 1}
_BUILD_SATELLITE_IDS: Final = tuple(range(1, 13))  # GSA lists at most 12 satellites


def build_nmea_fix(fix: PositionFix, talker: str = "GP") -> bytes:
    """GGA, RMC, VTG and GSA sentences (CR LF terminated) describing ``fix``, as a receiver sends.

    ``fix.time`` (UTC) and ``lat`` / ``lon`` are required; other None values become empty
    fields. Built with pynmeagps, which computes the checksums.
    """
    if fix.time is None or fix.lat is None or fix.lon is None:
        raise ValueError("build_nmea_fix needs time, lat and lon")
    when = fix.time.astimezone(datetime.UTC)
    quality = fix.fix or FixQuality.GPS
    mode = _FIX_TO_MODE[quality]
    knots = "" if fix.speed_mps is None else round(fix.speed_mps / _KNOTS_TO_MPS, 3)
    kmh = "" if fix.speed_mps is None else round(fix.speed_mps / _KMH_TO_MPS, 3)
    heading = "" if fix.heading_deg is None else round(fix.heading_deg, 2)
    hdop = "" if fix.hdop is None else fix.hdop
    num_sats = fix.num_sats or 0
    gga = NMEAMessage(
        talker,
        "GGA",
        GET,
        time=when.time(),
        lat=fix.lat,
        lon=fix.lon,
        quality=_FIX_TO_GGA[quality],
        numSV=num_sats,
        HDOP=hdop,
        alt="" if fix.alt_m is None else fix.alt_m,
        altUnit="M",
        sep="",
        sepUnit="M",
        diffAge="",
        diffStation="",
    )
    rmc = NMEAMessage(
        talker,
        "RMC",
        GET,
        time=when.time(),
        status="V" if quality is FixQuality.NONE else "A",
        lat=fix.lat,
        lon=fix.lon,
        spd=knots,
        cog=heading,
        date=when.date(),
        mv="",
        mvEW="",
        posMode=mode,
    )
    vtg = NMEAMessage(
        talker,
        "VTG",
        GET,
        cogt=heading,
        cogtUnit="T",
        cogm="",
        cogmUnit="M",
        sogn=knots,
        sognUnit="N",
        sogk=kmh,
        sogkUnit="K",
        posMode=mode,
    )
    used = _BUILD_SATELLITE_IDS[:num_sats]
    satellites: dict[str, int | str] = {
        name: used[i] if i < len(used) else "" for i, name in enumerate(_GSA_SVID_FIELDS)
    }
    gsa = NMEAMessage(
        talker,
        "GSA",
        GET,
        opMode="A",
        navMode=_FIX_TO_NAV_MODE.get(quality, 3),
        PDOP="",
        HDOP=hdop,
        VDOP="",
        **satellites,
    )
    return b"".join(msg.serialize() for msg in (gga, rmc, vtg, gsa))
