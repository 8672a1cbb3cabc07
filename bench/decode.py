"""Decoder throughput: tagrelay's splitter + decoders against a raw struct + CRC loop.

Serial half: a realistic mixed SmartLabel stream (mostly environment readings and heartbeats,
some GPS fixes, status, shocks and history batches) fed to ``StreamDecoder`` in 1 KiB reads as a
serial port would deliver it. The raw baseline goes over the same bytes: one ``bytes.split`` on
0x00, ``cobs.decode`` per frame, the same CRC (``binascii.crc_hqx``), then one precompiled
``struct.Struct.unpack_from`` of the whole body per type (plus ``iter_unpack`` for history
readings). It creates no objects beyond tuples and checks nothing else: it is the floor.

BLE half: manufacturer and service data of the formats tag fleets broadcast, through
``protocols.ble.decode_manufacturer`` / ``decode_service_data``, against a raw loop over the same
payloads that looks the layout up by (company id or service UUID, first byte) and runs one
precompiled ``struct.Struct.unpack_from``, with no validation and no objects beyond tuples.

Run: ``python bench/decode.py``. The last line is one JSON object with figures and checks.
"""

from __future__ import annotations

import binascii
import json
import random
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cobs import cobs

if __package__ in (None, ""):
    # Run as a script: make the repository's packages importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.ble import (
    SmartLabelAdvFlags,
    build_smartlabel_adv,
    decode_manufacturer,
    decode_service_data,
)
from protocols.ble.samples import EDDYSTONE_TLM, EDDYSTONE_UID, IBEACON_MFR, RUUVI3_MFR, RUUVI5_MFR
from protocols.smartlabel import (
    Environment,
    FrameRejected,
    GpsFix,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    Message,
    Shock,
    Status,
    StreamDecoder,
    build,
)

FRAMES: Final = 20_000
"""Enough frames for a run of well over 100 ms per pass, short enough for `make bench`."""
READ_BYTES: Final = 1024
"""A typical serial read size from an asyncio reader."""
ROUNDS: Final = 5
"""Best of several passes: the figure is throughput, not the scheduler's noise."""
TARGET_RATIO: Final = 1 / 20
ADVERTS: Final = 50_000
"""Adverts per pass; a busy dock hears a few thousand per second."""
HISTORY_READINGS: Final = 12
"""One hour out of range at a 5 minute logging interval."""


def _mixed_messages(count: int, rng: random.Random) -> list[Message]:
    """The upstream traffic of a reader with 50 labels on a truck."""
    out: list[Message] = []
    seqs: dict[int, int] = {}
    t0 = 1_767_225_600
    for i in range(count):
        label = 0x5A00_0000_0000_0000 + rng.randrange(50)
        seq = seqs[label] = seqs.get(label, 0) + 1
        now = t0 + i
        kind = rng.random()
        msg: Message
        if kind < 0.45:
            msg = Environment(label, seq, now, rng.randrange(-2000, 3000) / 100, 55.25)
        elif kind < 0.65:
            msg = Heartbeat(label, seq, now)
        elif kind < 0.80:
            msg = GpsFix(
                label,
                seq,
                now,
                rng.randrange(-900_000_000, 900_000_000) / 1e7,
                rng.randrange(-1_800_000_000, 1_800_000_000) / 1e7,
                112.5,
                13.89,
                271.25,
                0.9,
                11,
                now - 1,
            )
        elif kind < 0.90:
            msg = Status(label, seq, now, 2950, "1.4.2", 0, 7, 86_400)
        elif kind < 0.95:
            msg = Shock(label, seq, now, 2400, -300, 980, 35, 2000)
        else:
            readings = tuple(
                HistoryReading(now - 300 * (HISTORY_READINGS - k), 4.25 + k / 100, 80.0)
                for k in range(HISTORY_READINGS)
            )
            msg = HistoryBatch(label, seq, now, readings)
        out.append(msg)
    return out


_RAW_FORMATS: Final = {
    0x01: struct.Struct("<BBQIIiiiHHHBI"),
    0x02: struct.Struct("<BBQIIhH"),
    0x03: struct.Struct("<BBQIIiiiHH"),
    0x04: struct.Struct("<BBQIIHBBBHHI"),
    0x06: struct.Struct("<BBQII"),
}
_RAW_HISTORY_HEAD: Final = struct.Struct("<BBQIIB")
_RAW_READING: Final = struct.Struct("<IhH")


def _raw_pass(stream: bytes) -> int:
    decoded = 0
    formats = _RAW_FORMATS
    for chunk in stream.split(b"\x00"):
        if not chunk:
            continue
        body = cobs.decode(chunk)
        if binascii.crc_hqx(body[:-2], 0xFFFF) != body[-2] | (body[-1] << 8):
            continue
        fmt = formats.get(body[1])
        if fmt is not None:
            fmt.unpack_from(body)
        else:
            _RAW_HISTORY_HEAD.unpack_from(body)
            for _ in _RAW_READING.iter_unpack(body[19:-2]):
                pass
        decoded += 1
    return decoded


def _tagrelay_pass(stream: bytes) -> int:
    decoder = StreamDecoder()
    decoded = 0
    for start in range(0, len(stream), READ_BYTES):
        for item in decoder.feed(stream[start : start + READ_BYTES]):
            if not isinstance(item, FrameRejected):
                decoded += 1
    return decoded


def _best_rates(
    ours: Callable[[], int], raw: Callable[[], int], expected: int
) -> tuple[float, float]:
    """Best rate of each over interleaved passes, so both see the same machine load."""
    best = [0.0, 0.0]
    for _ in range(ROUNDS):
        for i, run in enumerate((ours, raw)):
            start = time.perf_counter()
            n = run()
            elapsed = time.perf_counter() - start
            if n != expected:
                raise SystemExit(f"decoded {n} of {expected}: the bench input is wrong")
            best[i] = max(best[i], n / elapsed)
    return best[0], best[1]


Report = tuple[dict[str, float], dict[str, dict[str, object]]]


def _report(prefix: str, name: str, unit: str, ours: float, raw: float, baseline: str) -> Report:
    """Print one half's rates and return its figures and its ratio check."""
    ratio = ours / raw
    print(f"  tagrelay {name:<21} {ours:12,.0f} {unit}/s")
    print(f"  raw {baseline:<26} {raw:12,.0f} {unit}/s")
    print(f"  ratio                    1/{1 / ratio:.1f}")
    figures = {
        f"{prefix}_{unit}_per_s": round(ours),
        f"{prefix}_raw_{unit}_per_s": round(raw),
        f"{prefix}_ratio": round(ratio, 4),
    }
    check = {
        "value": round(ratio, 4),
        "target": f">= {TARGET_RATIO:.3f} (1/20 of raw)",
        "ok": ratio >= TARGET_RATIO,
    }
    return figures, {f"{prefix}_ratio": check}


def bench_serial() -> Report:
    rng = random.Random(2)
    messages = _mixed_messages(FRAMES, rng)
    stream = b"".join(build(m) for m in messages)
    ours, raw = _best_rates(lambda: _tagrelay_pass(stream), lambda: _raw_pass(stream), FRAMES)
    print(f"serial: {FRAMES} frames, {len(stream)} bytes, {READ_BYTES}-byte reads")
    return _report("serial", "StreamDecoder", "frames", ours, raw, "cobs+crc+struct")


# -- BLE adverts ------------------------------------------------------------------------------

EDDYSTONE_UUID: Final = "0000feaa-0000-1000-8000-00805f9b34fb"


def _advert_mix() -> list[tuple[int | str, bytes]]:
    """(company id, manufacturer data) or (service UUID, service data), as a dock hears them.

    Payloads are the published samples of protocols.ble.samples (iBeacon, Ruuvi RAWv1 / RAWv2,
    Eddystone UID and TLM) and our SmartLabel advert.
    """
    ibeacon, ruuvi5, ruuvi3 = IBEACON_MFR, RUUVI5_MFR, RUUVI3_MFR
    uid, tlm = EDDYSTONE_UID, EDDYSTONE_TLM
    label = build_smartlabel_adv(0x5A01, 2950, 4.25, SmartLabelAdvFlags.NONE, 7)
    return [
        (0xFFFF, label),
        (0xFFFF, label),
        (0xFFFF, label),
        (0x004C, ibeacon),
        (0x004C, ibeacon),
        (0x0499, ruuvi5),
        (0x0499, ruuvi5),
        (0x0499, ruuvi3),
        (EDDYSTONE_UUID, uid),
        (EDDYSTONE_UUID, tlm),
    ]


# The raw baseline's per-format layouts (big-endian, as the formats define them).
_RAW_ADVERT: Final = {
    (0x004C, 0x02): struct.Struct(">2s16sHHb"),
    (0x0499, 0x05): struct.Struct(">BhHHhhhHBH6s"),
    (0x0499, 0x03): struct.Struct(">BBbBHhhhH"),
    (0xFFFF, 0x53): struct.Struct(">2sBQHhBI"),
    ("feaa", 0x00): struct.Struct(">Bb10s6s2s"),
    ("feaa", 0x20): struct.Struct(">BBHhII"),
}


def _raw_adverts(adverts: list[tuple[int | str, bytes]], repeat: int) -> int:
    table = _RAW_ADVERT
    decoded = 0
    for _ in range(repeat):
        for key, data in adverts:
            short = key[4:8] if isinstance(key, str) else key
            table[short, data[0]].unpack_from(data)
            decoded += 1
    return decoded


def _tagrelay_adverts(adverts: list[tuple[int | str, bytes]], repeat: int) -> int:
    decoded = 0
    for _ in range(repeat):
        for key, data in adverts:
            if isinstance(key, str):
                decode_service_data(key, data)
            else:
                decode_manufacturer(key, data)
            decoded += 1
    return decoded


def bench_ble() -> Report:
    adverts = _advert_mix()
    repeat = ADVERTS // len(adverts)
    total = repeat * len(adverts)
    ours, raw = _best_rates(
        lambda: _tagrelay_adverts(adverts, repeat), lambda: _raw_adverts(adverts, repeat), total
    )
    print(f"ble: {total} adverts (SmartLabel, iBeacon, Ruuvi 5/3, Eddystone UID/TLM)")
    return _report("ble", "decoders", "adverts", ours, raw, "dict+struct")


def main() -> int:
    figures: dict[str, float] = {}
    checks: dict[str, dict[str, object]] = {}
    for bench in (bench_serial, bench_ble):
        f, c = bench()
        figures.update(f)
        checks.update(c)
    print(json.dumps({**figures, "checks": checks}))
    return 0 if all(c["ok"] for c in checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
