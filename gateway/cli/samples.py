"""``tagrelay decode samples``: the decoders at work on built-in samples, no hardware needed.

It builds SmartLabel serial frames, BLE adverts and GPS sentences with the same pure builders the
simulator uses, feeds them (plus a corrupted copy of each kind) through the gateway's decoders,
and prints one readable line per message. Registered by :mod:`gateway.cli.decode`.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Iterator
from typing import Any, Final

from gateway.cli._pipe import detach_stdout
from protocols import to_json_value, to_jsonable
from protocols.ble import (
    SMARTLABEL_COMPANY_ID,
    AdvertError,
    SmartLabelAdvFlags,
    build_smartlabel_adv,
    decode_adv_payload,
    decode_manufacturer,
    decode_service_data,
)
from protocols.ble.samples import (
    ALTBEACON_ADV,
    EDDYSTONE_TLM,
    EDDYSTONE_URL,
    IBEACON_MFR,
    RUUVI5_MFR,
    RUUVI5_TRUNCATED_MFR,
)
from protocols.gps import (
    FixAssembler,
    FixQuality,
    GpsRejected,
    GpsStreamDecoder,
    PositionFix,
    build_nmea_fix,
    build_ubx_nav_pvt,
)
from protocols.smartlabel import (
    Environment,
    FrameRejected,
    HistoryBatch,
    HistoryReading,
    Message,
    Shock,
    Status,
    StreamDecoder,
    build,
)

__all__ = ["run_samples", "sample_lines"]

_LABEL_ID: Final = 0x0012_4B00_1A2B_3C4D
_T0: Final = datetime.datetime(2026, 3, 2, 7, 45, 0, tzinfo=datetime.UTC)
_SHOWN_HEX_BYTES: Final = 12  # enough to recognise a frame without wrapping the line


def run_samples(args: argparse.Namespace) -> int:
    """Print every sample through its decoder; 0."""
    try:
        for line in sample_lines():
            print(line, flush=True)
    except BrokenPipeError:
        detach_stdout()  # piped into head or a closed pager: stop quietly
    return 0


def sample_lines() -> Iterator[str]:
    """The output, line by line."""
    yield "tagrelay decode samples: built-in samples through the gateway's own decoders"
    yield ""
    yield "SmartLabel serial link (COBS frames, CRC-16, docs/protocol.md)"
    yield from _serial_lines()
    yield ""
    yield "BLE advertisements"
    yield from _ble_lines()
    yield ""
    yield "GPS receiver (NMEA 0183 and u-blox UBX on one serial line)"
    yield from _gps_lines()


def _serial_lines() -> Iterator[str]:
    t = int(_T0.timestamp())
    messages: list[Message] = [
        Environment(_LABEL_ID, 41, t, temperature_c=4.25, humidity_pct=61.5),
        Shock(_LABEL_ID, 42, t + 7, 2900, -450, 58_000, duration_ms=18, threshold_mg=2000),
        Status(_LABEL_ID, 43, t + 60, 2950, "1.4.2", flags=1, config_id=3, uptime_s=86_400),
        HistoryBatch(
            _LABEL_ID,
            44,
            t + 120,
            readings=tuple(HistoryReading(t - 600 * i, 3.5 + i / 4, 60.0) for i in range(3)),
        ),
    ]
    wire = [build(message) for message in messages]
    corrupt = bytearray(wire[0])
    corrupt[5] ^= 0x40
    decoder = StreamDecoder()
    for frame in [*wire, bytes(corrupt)]:
        for item in decoder.feed(frame):
            yield _line(_shown(frame), item)
    counts = ", ".join(f"{reason}={n}" for reason, n in decoder.rejected.items())
    yield f"  rejected frames counted by reason: {counts or 'none'}"


def _ble_lines() -> Iterator[str]:
    smartlabel = build_smartlabel_adv(
        _LABEL_ID, 2950, 4.25, SmartLabelAdvFlags.SHOCK_LATCHED, sequence=1207
    )
    samples: list[tuple[str, bytes, Any]] = [
        (
            "mfr 004c",
            IBEACON_MFR,
            lambda data: decode_manufacturer(0x004C, data),
        ),
        (
            "mfr 0499",
            RUUVI5_MFR,
            lambda data: decode_manufacturer(0x0499, data),
        ),
        (
            "mfr ffff",
            smartlabel,
            lambda data: decode_manufacturer(SMARTLABEL_COMPANY_ID, data),
        ),
        (
            "svc feaa",
            EDDYSTONE_URL,
            lambda data: decode_service_data("feaa", data),
        ),
        (
            "svc feaa",
            EDDYSTONE_TLM,
            lambda data: decode_service_data("feaa", data),
        ),
        (
            "adv",
            ALTBEACON_ADV,
            lambda data: decode_adv_payload(data)[0],
        ),
        (
            "mfr 0499",
            RUUVI5_TRUNCATED_MFR,
            lambda data: decode_manufacturer(0x0499, data),
        ),
    ]
    for label, data, decode in samples:
        try:
            yield _line(f"{label} {_shown(data)}", decode(data))
        except AdvertError as exc:
            yield f"  {label + ' ' + _shown(data):<34} -> rejected: {exc}"


def _gps_lines() -> Iterator[str]:
    fix = PositionFix(
        format="sample",
        time=_T0,
        lat=53.54694,
        lon=9.96611,
        alt_m=11.5,
        speed_mps=12.4,
        heading_deg=71.3,
        fix=FixQuality.FIX_3D,
        num_sats=10,
        hdop=0.9,
    )
    nmea = build_nmea_fix(fix)
    ubx = build_ubx_nav_pvt(fix)
    bad = nmea.splitlines(keepends=True)[0].replace(b",N,", b",S,")  # checksum no longer fits
    decoder = GpsStreamDecoder()
    assembler = FixAssembler()
    for chunk in [*nmea.splitlines(keepends=True), ubx, bad]:
        for item in decoder.feed(chunk):
            yield _line(_shown(chunk), item)
            if isinstance(item, PositionFix):
                for merged in assembler.feed(item):
                    if merged.format != item.format:
                        yield _line("epoch (merged)", merged)
    for merged in assembler.flush():
        yield _line("epoch (merged)", merged)
    counts = ", ".join(f"{reason}={n}" for reason, n in decoder.rejected.items())
    yield f"  rejected sentences counted by reason: {counts or 'none'}"


def _line(shown: str, item: object) -> str:
    if isinstance(item, FrameRejected | GpsRejected):
        return f"  {shown:<34} -> rejected: {item.reason} ({item.detail})"
    fields = to_jsonable(item)
    name = fields.pop("format")
    values = " ".join(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)
    return f"  {shown:<34} -> {name}  {values}"


def _shown(raw: bytes) -> str:
    """How an input appears on the left: an NMEA sentence by its name, bytes by their hex."""
    if raw.startswith(b"$"):
        return raw.split(b",")[0].decode("ascii", "replace")
    text = raw[:_SHOWN_HEX_BYTES].hex()
    return text + ("..." if len(raw) > _SHOWN_HEX_BYTES else "")


def _value(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0xFFFF_FFFF:
        return f"0x{value:016x}"
    return str(to_json_value(value))
