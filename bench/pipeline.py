"""The BLE half of the pipeline in one process, no I/O: decode + identify + presence + telemetry
+ conditions (the monitor and the device health checks the conditions bridge runs on each sample).

Adverts go through :class:`gateway.pipeline.adverts.AdvertProcessor` exactly as the daemon's BLE
stage feeds it (one :class:`drivers.ble.RawAdvert` at a time), with 1,000 and 10,000 tracked
tags. Two workloads:

- *repeating*: tags repeat their payload and only the RSSI changes, as iBeacon / Eddystone /
  SmartLabel tags do between sensor updates (the decode cache answers);
- *new bytes*: every advert carries new bytes (a Ruuvi's measurement sequence changes each
  time), so every advert is decoded.

The baseline, measured in the same run over the same adverts, is ``protocols.ble`` decoding
alone (``decode_advertisement``), without identity, presence or rate limiting. Also reported:
memory per tracked tag (tracemalloc over the tracker, processor and limiter state), and how many
telemetry events a tag advertising at 10 Hz with stable readings leaves per hour.

Run: ``python bench/pipeline.py``. The last line is one JSON object with figures and checks.
"""

from __future__ import annotations

import gc
import json
import random
import struct
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.ble import RawAdvert
from gateway.conditions import ConditionMonitor, DeviceHealth, Quantity
from gateway.pipeline.adverts import AdvertProcessor, Reading
from gateway.pipeline.config import TelemetryConfig
from gateway.pipeline.telemetry import TelemetryLimiter
from gateway.presence import PresenceChange, PresenceConfig, PresenceTracker
from protocols.ble import decode_advertisement

ADVERTS: Final = 300_000
"""Adverts per timed pass: long enough for a stable rate, short enough for `make bench`."""
ROUNDS: Final = 3
"""Best of this many alternating rounds (baseline, pipeline): the machine is shared."""
ADVERT_RATE_HZ: Final = 10.0
"""Each tag advertises at 10 Hz in the timed runs (the worst case of real tags)."""
TARGET_REPEATING_PER_S: Final = 100_000
TARGET_NEW_BYTES_PER_S: Final = 40_000
TARGET_BYTES_PER_TAG: Final = 2_048
TARGET_EVENTS_PER_TAG_HOUR: Final = 60

APPLE: Final = 0x004C
RUUVI: Final = 0x0499
_WHEN: Final = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def ibeacon(n: int) -> dict[int, bytes]:
    uuid = bytes.fromhex("f7826da64fa24e988024bc5b71e0893e")
    return {APPLE: b"\x02\x15" + uuid + struct.pack(">HHb", n >> 16, n & 0xFFFF, -59)}


def ruuvi(n: int, seq: int, temperature_c: float) -> dict[int, bytes]:
    mac = n.to_bytes(6, "big")
    body = struct.pack(
        ">BhHHhhhHBH6s",
        5,
        round(temperature_c / 0.005),
        round(80.0 / 0.0025),
        101_325 - 50_000,
        0,
        0,
        1000,
        (1600 << 5) | 20,
        seq % 256,
        seq % 65_535,
        mac,
    )
    return {RUUVI: body}


def adverts(tags: int, n: int, *, new_bytes: bool, rng: random.Random) -> list[RawAdvert]:
    """``n`` adverts round-robin over ``tags`` tags at 10 Hz each, RSSI with 4 dB noise."""
    out = []
    step = 1.0 / (ADVERT_RATE_HZ * tags)
    for i in range(n):
        tag = i % tags
        rssi = round(-65 + rng.gauss(0, 4))
        md = ruuvi(tag, i // tags, 4.0) if new_bytes else ibeacon(tag)
        out.append(
            RawAdvert(
                f"AA:BB:{tag:08X}"[:17], rssi, md, {}, (), None, None, "hci0", i * step, _WHEN
            )
        )
    return out


def processor() -> AdvertProcessor:
    presence = PresenceTracker(PresenceConfig())
    return AdvertProcessor({"hci0": "door-3"}, presence, TelemetryLimiter(TelemetryConfig()))


def run_pipeline(batch: Sequence[RawAdvert]) -> float:
    proc = processor()
    monitor = ConditionMonitor(default_profile="pharma-2-8")
    observe = monitor.observe_s
    # The device health the conditions bridge runs on each sample: sighting, stuck check.
    settings = monitor.profiles["pharma-2-8"].device
    health = DeviceHealth(lambda tag: settings)
    heard, checked = health.heard, health.value
    epoch = _WHEN.timestamp()
    changes: list[PresenceChange] = []
    readings: list[Reading] = []
    samples: list[Reading] = []
    process = proc.process
    # Warm-up pass over the first tags so every run measures the steady state.
    for raw in batch[: min(len(batch), 20_000)]:
        process(raw, changes, readings, samples)
    changes.clear()
    readings.clear()
    samples.clear()
    start = time.process_time()
    for raw in batch:
        process(raw, changes, readings, samples)
        if changes:
            changes.clear()
        if readings:
            readings.clear()
        if samples:
            for sample in samples:
                heard(sample.tag, sample.monotonic)
                for name, value in sample.values.items():
                    if name == "temperature_c":
                        t = epoch + sample.monotonic
                        if checked(sample.tag, name, t, value)[0]:
                            observe(sample.tag, Quantity.TEMPERATURE_C, value, t)
            samples.clear()
    return len(batch) / (time.process_time() - start)


def run_decode(batch: Sequence[RawAdvert]) -> float:
    start = time.process_time()
    for raw in batch:
        decode_advertisement(raw.manufacturer_data, raw.service_data)
    return len(batch) / (time.process_time() - start)


def best(fn: Callable[[Sequence[RawAdvert]], float], batch: Sequence[RawAdvert]) -> float:
    return fn(batch)


def measure(tags: int, *, new_bytes: bool) -> tuple[float, float, list[float], list[float]]:
    rng = random.Random(tags * 2 + new_bytes)
    batch = adverts(tags, ADVERTS, new_bytes=new_bytes, rng=rng)
    base_rounds, pipe_rounds = [], []
    for _ in range(ROUNDS):
        gc.collect()
        base_rounds.append(run_decode(batch))
        gc.collect()
        pipe_rounds.append(run_pipeline(batch))
    return max(base_rounds), max(pipe_rounds), base_rounds, pipe_rounds


def bytes_per_tag(tags: int) -> float:
    """Memory the pipeline state holds per tracked tag, beyond the adverts themselves."""
    rng = random.Random(1)
    warm = adverts(tags, tags * 20, new_bytes=False, rng=rng)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    proc = processor()
    changes: list[PresenceChange] = []
    readings: list[Reading] = []
    for raw in warm:
        proc.process(raw, changes, readings)
    changes.clear()
    readings.clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del proc
    return (after - before) / tags


def events_per_tag_hour() -> int:
    """Telemetry readings a Ruuvi at 10 Hz with stable (noisy) readings leaves in an hour."""
    rng = random.Random(3)
    proc = processor()
    changes: list[PresenceChange] = []
    readings: list[Reading] = []
    sent = 0
    for i in range(int(3600 * ADVERT_RATE_HZ)):
        t = 4.0 + rng.gauss(0, 0.05)
        raw = RawAdvert(
            "CB:B8:33:4C:88:4F", -60, ruuvi(1, i, t), {}, (), None, None, "hci0", i / 10, _WHEN
        )
        proc.process(raw, changes, readings)
        sent += len(readings)
        readings.clear()
        changes.clear()
    return sent


def main() -> None:
    figures: dict[str, float | int] = {}
    checks: dict[str, dict[str, object]] = {}
    for tags in (1_000, 10_000):
        for new_bytes in (False, True):
            label = "new_bytes" if new_bytes else "repeating"
            base, pipe, base_rounds, pipe_rounds = measure(tags, new_bytes=new_bytes)
            print(
                f"{tags:>6} tags, {label:9}: pipeline {pipe:>9,.0f} adverts/s "
                f"(rounds {', '.join(f'{r:,.0f}' for r in pipe_rounds)}); "
                f"decode alone {base:>9,.0f} adverts/s "
                f"(rounds {', '.join(f'{r:,.0f}' for r in base_rounds)})"
            )
            figures[f"pipeline_{label}_{tags}_tags_adverts_per_s"] = round(pipe)
            figures[f"decode_only_{label}_{tags}_tags_adverts_per_s"] = round(base)
            target = TARGET_NEW_BYTES_PER_S if new_bytes else TARGET_REPEATING_PER_S
            checks[f"{label}_{tags}_tags"] = {
                "value": round(pipe),
                "target": f">= {target} adverts/s",
                "ok": pipe >= target,
            }
    per_tag = bytes_per_tag(10_000)
    print(f"memory per tracked tag (10,000 tags): {per_tag:,.0f} B")
    figures["memory_per_tag_bytes"] = round(per_tag)
    checks["memory_per_tag"] = {
        "value": round(per_tag),
        "target": f"< {TARGET_BYTES_PER_TAG} B",
        "ok": per_tag < TARGET_BYTES_PER_TAG,
    }
    per_hour = events_per_tag_hour()
    print(f"telemetry events per tag-hour at 10 Hz, stable readings: {per_hour}")
    figures["telemetry_events_per_tag_hour"] = per_hour
    checks["telemetry_events_per_tag_hour"] = {
        "value": per_hour,
        "target": f"<= {TARGET_EVENTS_PER_TAG_HOUR}",
        "ok": per_hour <= TARGET_EVENTS_PER_TAG_HOUR,
    }
    print(json.dumps({**figures, "checks": checks}))


if __name__ == "__main__":
    main()
