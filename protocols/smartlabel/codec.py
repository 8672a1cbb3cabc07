"""SmartLabel frame bodies to typed messages and back: the pure ``decode`` and ``build``.

``decode`` takes one frame body as the splitter yields it (COBS already undone, delimiter
stripped) and returns a message or raises :class:`FrameError`; checks run cheapest and most
telling first: length, CRC, version, type, per-type length, field ranges. ``build`` is its
mirror and returns the complete wire bytes (COBS-encoded, trailing 0x00 included), so the
simulator produces exactly what a reader does.

Parsing goes through construct's compiled parsers (one flat header + payload ``Struct`` per
message type, compiled once at import) because the interpreted ones are several times slower;
the per-frame Python work left is the CRC check, one dictionary lookup and the dataclass.
"""

from __future__ import annotations

import io
import struct
from binascii import crc_hqx
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import construct
from cobs import cobs

from protocols.smartlabel.errors import BuildError, FrameError, RejectReason
from protocols.smartlabel.messages import (
    Ack,
    Environment,
    GpsFix,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    LabelConfig,
    Message,
    Nack,
    NackReason,
    Shock,
    Status,
    TimeSource,
    TimeSync,
)
from protocols.smartlabel.wire import (
    BROADCAST_LABEL_ID,
    CRC_BYTES,
    CRC_INIT,
    DELIMITER,
    HEADER,
    HEADER_BYTES,
    HISTORY_MAX_READINGS,
    HISTORY_READING_BYTES,
    MAX_BODY_BYTES,
    MIN_BODY_BYTES,
    NA_I16,
    NA_I32,
    NA_U8,
    NA_U16,
    PAYLOADS,
    PROTOCOL_VERSION,
    MessageType,
    crc16,
)

__all__ = ["build", "build_body", "decode"]

_LAT_E7_MAX: Final = 900_000_000
_LON_E7_MAX: Final = 1_800_000_000
_HEADING_CDEG_MAX: Final = 35_999
_HISTORY_FIXED_BYTES: Final = MIN_BODY_BYTES + 1  # header + count byte + CRC
#: A label configuration's humidity alarm is a relative humidity: at most 100.00 %RH.
_HUMIDITY_CPCT_MAX: Final = 10_000
#: Message types below this are label -> gateway (the high bit marks gateway -> label).
_GATEWAY_TO_LABEL_BIT: Final = 0x80

_NACK_REASONS: Final = {int(r): r for r in NackReason}
_TIME_SOURCES: Final = {int(s): s for s in TimeSource}

_BUILD_ERRORS: Final = (
    construct.ConstructError,
    struct.error,
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
)


# -- wire <-> engineering units ---------------------------------------------------------------


def _to_raw(value: float | None, sentinel: int, scale: float, name: str) -> int:
    """Quantise to the wire resolution; ``None`` becomes the sentinel.

    ``round(value * scale)``: to the nearest step, an exact tie to the even step (0.125 °C ->
    12, 0.375 °C -> 38), as docs/protocol.md section 1 states."""
    if value is None:
        return sentinel
    raw = round(value * scale)
    if raw == sentinel:
        raise ValueError(f"{name}={value} collides with the 'not available' sentinel")
    return raw


def _bad_value(detail: str) -> FrameError:
    return FrameError(RejectReason.BAD_VALUE, detail)


# -- per message type: wire container -> message ----------------------------------------------
# Messages are built positionally, in dataclass field order: on the hot path keyword arguments
# cost about 0.1 us per field, and the round-trip tests catch any field out of order.


def _gps_in(c: Any) -> GpsFix:
    lat_e7 = c["lat_e7"]
    lon_e7 = c["lon_e7"]
    alt = c["alt_cm"]
    speed = c["speed_cmps"]
    heading = c["heading_cdeg"]
    hdop = c["hdop_c"]
    sats = c["num_sats"]
    if not -_LAT_E7_MAX <= lat_e7 <= _LAT_E7_MAX:
        raise _bad_value(f"lat_e7 {lat_e7} outside +-90 degrees")
    if not -_LON_E7_MAX <= lon_e7 <= _LON_E7_MAX:
        raise _bad_value(f"lon_e7 {lon_e7} outside +-180 degrees")
    if heading != NA_U16 and heading > _HEADING_CDEG_MAX:
        raise _bad_value(f"heading_cdeg {heading} outside 0..35999")
    return GpsFix(
        c["label_id"],
        c["seq"],
        c["label_time"],
        lat_e7 / 1e7,
        lon_e7 / 1e7,
        None if alt == NA_I32 else alt / 100,
        None if speed == NA_U16 else speed / 100,
        None if heading == NA_U16 else heading / 100,
        None if hdop == NA_U16 else hdop / 100,
        None if sats == NA_U8 else sats,
        c["fix_time"],
    )


def _env_in(c: Any) -> Environment:
    temperature = c["temperature_cc"]
    humidity = c["humidity_cpct"]
    return Environment(
        c["label_id"],
        c["seq"],
        c["label_time"],
        None if temperature == NA_I16 else temperature / 100,
        None if humidity == NA_U16 else humidity / 100,
    )


def _shock_in(c: Any) -> Shock:
    return Shock(
        c["label_id"],
        c["seq"],
        c["label_time"],
        c["peak_x_mg"],
        c["peak_y_mg"],
        c["peak_z_mg"],
        c["duration_ms"],
        c["threshold_mg"],
    )


def _status_in(c: Any) -> Status:
    battery = c["battery_mv"]
    return Status(
        c["label_id"],
        c["seq"],
        c["label_time"],
        None if battery == NA_U16 else battery,
        f"{c['fw_major']}.{c['fw_minor']}.{c['fw_patch']}",
        c["flags"],
        c["config_id"],
        c["uptime_s"],
    )


def _reading_in(r: Any) -> HistoryReading:
    temperature = r["temperature_cc"]
    humidity = r["humidity_cpct"]
    return HistoryReading(
        r["time"],
        None if temperature == NA_I16 else temperature / 100,
        None if humidity == NA_U16 else humidity / 100,
    )


def _history_in(c: Any) -> HistoryBatch:
    if c["count"] == 0:
        raise _bad_value("history batch with no readings")
    return HistoryBatch(
        c["label_id"],
        c["seq"],
        c["label_time"],
        tuple(_reading_in(r) for r in c["readings"]),
    )


def _heartbeat_in(c: Any) -> Heartbeat:
    return Heartbeat(c["label_id"], c["seq"], c["label_time"])


def _ack_in(c: Any) -> Ack:
    return Ack(c["label_id"], c["seq"], c["label_time"], c["acked_seq"])


def _nack_in(c: Any) -> Nack:
    reason = _NACK_REASONS.get(c["reason"])
    if reason is None:
        raise _bad_value(f"unknown NACK reason {c['reason']}")
    return Nack(c["label_id"], c["seq"], c["label_time"], c["nacked_seq"], reason)


def _time_sync_in(c: Any) -> TimeSync:
    source = _TIME_SOURCES.get(c["time_source"])
    if source is None:
        raise _bad_value(f"unknown time source {c['time_source']}")
    return TimeSync(c["label_id"], c["seq"], c["label_time"], c["utc_time_ms"], source)


def _config_problem(report: int, heartbeat: int, low: int, high: int, humidity: int) -> str:
    """What makes a label configuration unusable (wire units), or "" (docs/protocol.md 7.4)."""
    if report < 1 or heartbeat < 1:
        return f"intervals must be at least 1 s (report {report}, heartbeat {heartbeat})"
    if humidity != NA_U16 and humidity > _HUMIDITY_CPCT_MAX:
        return f"humidity_high_cpct {humidity} above 100.00 %RH"
    if low != NA_I16 and high != NA_I16 and low > high:
        return f"temp_low_cc {low} above temp_high_cc {high}"
    return ""


def _config_in(c: Any) -> LabelConfig:
    low = c["temp_low_cc"]
    high = c["temp_high_cc"]
    humidity = c["humidity_high_cpct"]
    shock = c["shock_threshold_mg"]
    problem = _config_problem(
        c["report_interval_s"], c["heartbeat_interval_s"], low, high, humidity
    )
    if problem:
        raise _bad_value(problem)
    return LabelConfig(
        c["label_id"],
        c["seq"],
        c["label_time"],
        c["config_id"],
        c["report_interval_s"],
        c["heartbeat_interval_s"],
        None if low == NA_I16 else low / 100,
        None if high == NA_I16 else high / 100,
        None if humidity == NA_U16 else humidity / 100,
        None if shock == NA_U16 else shock,
    )


# -- per message type: message -> wire fields -------------------------------------------------


def _gps_out(m: Any) -> dict[str, object]:
    lat_e7 = round(m.lat * 1e7)
    lon_e7 = round(m.lon * 1e7)
    heading = _to_raw(m.heading_deg, NA_U16, 100, "heading_deg")
    # The same ranges decode enforces: never send what the other end must refuse.
    if not -_LAT_E7_MAX <= lat_e7 <= _LAT_E7_MAX:
        raise ValueError(f"lat {m.lat} outside +-90 degrees")
    if not -_LON_E7_MAX <= lon_e7 <= _LON_E7_MAX:
        raise ValueError(f"lon {m.lon} outside +-180 degrees")
    if heading != NA_U16 and heading > _HEADING_CDEG_MAX:
        raise ValueError(f"heading_deg {m.heading_deg} outside 0..359.99")
    return {
        "lat_e7": lat_e7,
        "lon_e7": lon_e7,
        "alt_cm": _to_raw(m.alt_m, NA_I32, 100, "alt_m"),
        "speed_cmps": _to_raw(m.speed_mps, NA_U16, 100, "speed_mps"),
        "heading_cdeg": heading,
        "hdop_c": _to_raw(m.hdop, NA_U16, 100, "hdop"),
        "num_sats": _to_raw(m.num_sats, NA_U8, 1, "num_sats"),
        "fix_time": m.fix_time,
    }


def _env_out(m: Any) -> dict[str, object]:
    return {
        "temperature_cc": _to_raw(m.temperature_c, NA_I16, 100, "temperature_c"),
        "humidity_cpct": _to_raw(m.humidity_pct, NA_U16, 100, "humidity_pct"),
    }


def _shock_out(m: Any) -> dict[str, object]:
    return {
        "peak_x_mg": m.peak_x_mg,
        "peak_y_mg": m.peak_y_mg,
        "peak_z_mg": m.peak_z_mg,
        "duration_ms": m.duration_ms,
        "threshold_mg": m.threshold_mg,
    }


def _status_out(m: Any) -> dict[str, object]:
    parts = m.firmware_version.split(".")
    if len(parts) != 3 or not all(p.isdecimal() for p in parts):
        raise ValueError(f"firmware_version {m.firmware_version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(p) for p in parts)
    return {
        "battery_mv": _to_raw(m.battery_mv, NA_U16, 1, "battery_mv"),
        "fw_major": major,
        "fw_minor": minor,
        "fw_patch": patch,
        "flags": m.flags,
        "config_id": m.config_id,
        "uptime_s": m.uptime_s,
    }


def _history_out(m: Any) -> dict[str, object]:
    if not 1 <= len(m.readings) <= HISTORY_MAX_READINGS:
        raise ValueError(f"{len(m.readings)} readings, must be 1..{HISTORY_MAX_READINGS}")
    return {
        "count": len(m.readings),
        "readings": [
            {
                "time": r.time,
                "temperature_cc": _to_raw(r.temperature_c, NA_I16, 100, "temperature_c"),
                "humidity_cpct": _to_raw(r.humidity_pct, NA_U16, 100, "humidity_pct"),
            }
            for r in m.readings
        ],
    }


def _heartbeat_out(m: Any) -> dict[str, object]:
    return {}


def _ack_out(m: Any) -> dict[str, object]:
    return {"acked_seq": m.acked_seq}


def _nack_out(m: Any) -> dict[str, object]:
    return {"nacked_seq": m.nacked_seq, "reason": int(NackReason(m.reason))}


def _time_sync_out(m: Any) -> dict[str, object]:
    return {"utc_time_ms": m.utc_time_ms, "time_source": int(TimeSource(m.time_source))}


def _config_out(m: Any) -> dict[str, object]:
    low = _to_raw(m.temp_low_c, NA_I16, 100, "temp_low_c")
    high = _to_raw(m.temp_high_c, NA_I16, 100, "temp_high_c")
    humidity = _to_raw(m.humidity_high_pct, NA_U16, 100, "humidity_high_pct")
    # The same checks decode enforces: never send what the other end must refuse.
    problem = _config_problem(m.report_interval_s, m.heartbeat_interval_s, low, high, humidity)
    if problem:
        raise ValueError(problem)
    return {
        "config_id": m.config_id,
        "report_interval_s": m.report_interval_s,
        "heartbeat_interval_s": m.heartbeat_interval_s,
        "temp_low_cc": low,
        "temp_high_cc": high,
        "humidity_high_cpct": humidity,
        "shock_threshold_mg": _to_raw(m.shock_threshold_mg, NA_U16, 1, "shock_threshold_mg"),
    }


# -- the dispatch table -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    msg_type: MessageType
    cls: type[Message]
    frame: Any
    """Compiled construct ``Struct``: header fields then payload fields, flat."""
    body_bytes: int | None
    """Exact body length including the CRC, or None when it depends on a count field."""
    from_wire: Callable[[Any], Message]
    to_wire: Callable[[Any], dict[str, object]]

    def parse(self, frame: bytes) -> Any:
        # ``Compiled.parse`` wraps the generated parser in three calls and a fresh context
        # container per frame, a third of the decode time; the generated parser only reads
        # the context, so one shared parsing context is safe and gives the same result.
        return self.frame.parsefunc(io.BytesIO(frame), _PARSE_CONTEXT)


_PARSE_CONTEXT: Final = construct.Container(_parsing=True, _building=False, _sizing=False)
_PARSE_CONTEXT["_params"] = _PARSE_CONTEXT


def _spec(
    cls: type[Message],
    from_wire: Callable[[Any], Message],
    to_wire: Callable[[Any], dict[str, object]],
) -> _Spec:
    payload = PAYLOADS[cls.msg_type]
    flat = construct.Struct(*HEADER.subcons, *payload.subcons)
    try:
        body_bytes: int | None = flat.sizeof() + CRC_BYTES
    except construct.SizeofError:
        body_bytes = None
    return _Spec(cls.msg_type, cls, flat.compile(), body_bytes, from_wire, to_wire)


_SPECS: Final = (
    _spec(GpsFix, _gps_in, _gps_out),
    _spec(Environment, _env_in, _env_out),
    _spec(Shock, _shock_in, _shock_out),
    _spec(Status, _status_in, _status_out),
    _spec(HistoryBatch, _history_in, _history_out),
    _spec(Heartbeat, _heartbeat_in, _heartbeat_out),
    _spec(Ack, _ack_in, _ack_out),
    _spec(Nack, _nack_in, _nack_out),
    _spec(TimeSync, _time_sync_in, _time_sync_out),
    _spec(LabelConfig, _config_in, _config_out),
)
_BY_TYPE: Final = {int(s.msg_type): s for s in _SPECS}
_BY_CLASS: Final[dict[type, _Spec]] = {s.cls: s for s in _SPECS}


# -- public API -------------------------------------------------------------------------------


def decode(frame: bytes) -> Message:
    """Decode one frame body (COBS undone, no delimiter) into a message.

    Raises :class:`FrameError` with a :class:`RejectReason`; nothing else escapes.
    """
    n = len(frame)
    if n < MIN_BODY_BYTES:
        raise FrameError(RejectReason.TRUNCATED, f"{n} bytes, the minimum is {MIN_BODY_BYTES}")
    if n > MAX_BODY_BYTES:
        raise FrameError(RejectReason.TOO_LONG, f"{n} bytes, at most {MAX_BODY_BYTES}")
    crc = frame[-2] | (frame[-1] << 8)
    # crc_hqx seeded with 0xFFFF is CRC-16/IBM-3740 (wire.crc16), called inline on the hot path.
    if crc_hqx(frame[:-CRC_BYTES], CRC_INIT) != crc:
        raise FrameError(RejectReason.BAD_CRC, f"CRC {crc:#06x} does not match the frame")
    if frame[0] != PROTOCOL_VERSION:
        raise FrameError(RejectReason.UNKNOWN_VERSION, f"version {frame[0]}")
    spec = _BY_TYPE.get(frame[1])
    if spec is None:
        raise FrameError(RejectReason.UNKNOWN_TYPE, f"message type {frame[1]:#04x}")
    expected = spec.body_bytes
    if expected is None:
        expected = _HISTORY_FIXED_BYTES + HISTORY_READING_BYTES * frame[HEADER_BYTES]
    if n != expected:
        raise FrameError(
            RejectReason.BAD_LENGTH, f"{spec.cls.format} of {n} bytes, expected {expected}"
        )
    return spec.from_wire(spec.parse(frame))


def build_body(msg: Message) -> bytes:
    """The frame body of ``msg``: header, payload and CRC, before COBS encoding."""
    spec = _BY_CLASS.get(type(msg))
    if spec is None:
        raise BuildError(type(msg).__name__, "not a SmartLabel message")
    if spec.msg_type < _GATEWAY_TO_LABEL_BIT and msg.label_id == BROADCAST_LABEL_ID:
        raise BuildError(spec.cls.format, "the broadcast label_id is for gateway -> label only")
    try:
        fields = spec.to_wire(msg)
        fields["version"] = PROTOCOL_VERSION
        fields["msg_type"] = int(spec.msg_type)
        fields["label_id"] = msg.label_id
        fields["seq"] = msg.seq
        fields["label_time"] = msg.label_time
        body: bytes = spec.frame.build(fields)
    except _BUILD_ERRORS as exc:
        raise BuildError(spec.cls.format, str(exc)) from exc
    return body + crc16(body).to_bytes(CRC_BYTES, "little")


def build(msg: Message) -> bytes:
    """Complete wire bytes for ``msg``: COBS-encoded frame body plus the 0x00 delimiter."""
    return bytes(cobs.encode(build_body(msg))) + DELIMITER
