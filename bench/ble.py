"""BLE throughput: simulated tags through a private D-Bus bus and real bleak into the driver queue.

Starts a private dbus-daemon and, per phase, the fake BlueZ as a separate process
(``python -m simulator.bluez``) so its CPU is not counted here. Phases: 200 tags at 10 Hz
(2,000 adverts/s), then 500 tags at 10 Hz (5,000 adverts/s). Each phase runs twice: the
baseline (a bare bleak ``BleakScanner`` whose callback only counts) and the driver
(``BleScanner`` with its default configuration and a consumer draining ``events()``).
Figures: adverts offered (sent on the bus) vs delivered and dropped by the driver queue; p99
latency from the bleak callback (where the driver stamps ``RawAdvert.monotonic`` and puts it
on its queue) to the consumer taking it off the queue, so queueing time is included; p99
latency from the fake's send to the consumer (both processes share CLOCK_MONOTONIC); and CPU
seconds of this process (the driver's; the fake and the bus daemon run apart) per 1,000
delivered adverts. The last line is one JSON object with the figures and the checks.

Run: ``.venv/bin/python bench/ble.py [--duration-s 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from drivers.ble import BleConfig, BleScanner
from foundation.clock import SystemClock
from simulator.bluez import PrivateBus, normalise_uuid

TIMESTAMP_UUID: Final = normalise_uuid("fffe")
#: After the generator's last advert, how long without a delivery counts as drained.
DRAIN_QUIET_S: Final = 1.0
PHASES: Final = ((200, 10.0), (500, 10.0))
#: The issue's load for the no-drop target: 200 tags x 10 Hz.
TARGET_RATE_PER_S: Final = 2000.0
#: The generator must really offer the target load for the check to mean anything.
MIN_OFFERED_FRACTION: Final = 0.95


@dataclass
class Phase:
    tags: int
    rate_hz: float
    mode: str
    offered: int = 0
    offered_per_s: float = 0.0
    late_ticks: int = 0
    delivered: int = 0
    queue_dropped: int = 0
    cpu_s: float = 0.0
    callback_to_consumer_s: list[float] = field(default_factory=list)
    bus_latency_s: list[float] = field(default_factory=list)
    last_delivery: float = 0.0

    def record(self, received: float, advert_monotonic: float, stamp: bytes | None) -> None:
        self.delivered += 1
        self.last_delivery = received
        self.callback_to_consumer_s.append(received - advert_monotonic)
        if stamp is not None and len(stamp) == 8:
            sent_ns = int.from_bytes(stamp, "little", signed=True)
            self.bus_latency_s.append(received - sent_ns / 1e9)

    def figures(self) -> dict[str, float | None]:
        key = f"{self.mode}_{self.tags}_tags"
        per_1000 = round(self.cpu_s / self.delivered * 1000, 4) if self.delivered else None
        figures: dict[str, float | None] = {
            f"{key}_offered_adverts": self.offered,
            f"{key}_offered_adverts_per_s": self.offered_per_s,
            f"{key}_delivered_adverts": self.delivered,
            f"{key}_lost_adverts": self.offered - self.delivered,
            f"{key}_generator_late_ticks": self.late_ticks,
            f"{key}_p99_bus_to_consumer_ms": _p99_ms(self.bus_latency_s),
            f"{key}_cpu_s_per_1000_adverts": per_1000,
        }
        if self.mode == "driver":
            # The baseline has no queue: its callback is its consumer.
            figures[f"{key}_queue_dropped_adverts"] = self.queue_dropped
            figures[f"{key}_p99_callback_to_dequeue_ms"] = _p99_ms(self.callback_to_consumer_s)
        return figures


def _p99_ms(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.quantiles(values, n=100)[98] * 1e3, 3)


async def _read_json(stream: asyncio.StreamReader, key: str, timeout_s: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while line := await stream.readline():
            obj: dict[str, Any] = json.loads(line)
            if key in obj:
                return obj
    raise RuntimeError(f"the fake BlueZ ended before printing {key!r}")


async def _run_phase(bus: PrivateBus, phase: Phase, duration_s: float) -> None:
    fake = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator.bluez",
        "--bus-address",
        bus.address,
        "--tags",
        str(phase.tags),
        "--rate-hz",
        str(phase.rate_hz),
        "--duration-s",
        str(duration_s),
        stdout=asyncio.subprocess.PIPE,
    )
    assert fake.stdout is not None
    try:
        await _read_json(fake.stdout, "serving", 30.0)
        if phase.mode == "driver":
            await _measure_driver(phase, fake.stdout, duration_s)
        else:
            await _measure_baseline(phase, fake.stdout, duration_s)
    finally:
        # Stopped by pid: SIGTERM, then SIGKILL if it does not go.
        if fake.returncode is None:
            fake.terminate()
            try:
                async with asyncio.timeout(5.0):
                    await fake.wait()
            except TimeoutError:
                fake.kill()
                await fake.wait()
        await fake.stdout.read()


async def _finish(phase: Phase, stdout: asyncio.StreamReader, duration_s: float) -> None:
    summary = await _read_json(stdout, "offered", duration_s + 60.0)
    phase.offered = int(summary["offered"])
    phase.offered_per_s = float(summary["offered_per_s"])
    phase.late_ticks = int(summary["late_ticks"])
    # Drained: everything offered arrived, or nothing more for a while.
    while phase.delivered < phase.offered:
        if time.monotonic() - max(phase.last_delivery, 0.0) > DRAIN_QUIET_S:
            break
        await asyncio.sleep(0.05)


async def _measure_driver(phase: Phase, stdout: asyncio.StreamReader, duration_s: float) -> None:
    cpu_start = time.process_time()
    # The production defaults (queue size included); only the watchdog is kept out of the way.
    config = BleConfig(watchdog_timeout_s=duration_s + 60.0)
    async with BleScanner(config, clock=SystemClock()) as scanner:

        async def consume() -> None:
            async for advert in scanner.events():
                phase.record(
                    time.monotonic(), advert.monotonic, advert.service_data.get(TIMESTAMP_UUID)
                )

        consumer = asyncio.create_task(consume())
        await scanner.wait_scanning()
        await _finish(phase, stdout, duration_s)
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        phase.queue_dropped = scanner.queue_stats.dropped
    phase.cpu_s = time.process_time() - cpu_start


async def _measure_baseline(phase: Phase, stdout: asyncio.StreamReader, duration_s: float) -> None:
    def callback(device: BLEDevice, adv: AdvertisementData) -> None:
        now = time.monotonic()
        phase.record(now, now, adv.service_data.get(TIMESTAMP_UUID))  # no queue: 0 by design

    cpu_start = time.process_time()
    scanner = BleakScanner(callback, bluez={"adapter": "hci0"})
    await scanner.start()
    try:
        await _finish(phase, stdout, duration_s)
    finally:
        await scanner.stop()
    phase.cpu_s = time.process_time() - cpu_start


async def _main(duration_s: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"duration_s_per_phase": duration_s}
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="tagrelay-bench-") as workdir:
        async with PrivateBus(Path(workdir)) as bus:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
            for tags, rate_hz in PHASES:
                for mode in ("baseline", "driver"):
                    phase = Phase(tags, rate_hz, mode)
                    await _run_phase(bus, phase, duration_s)
                    phases.append(phase)
                    print(f"{mode:8} {tags} tags @ {rate_hz:g} Hz: {phase.figures()}", flush=True)
                    figures.update(phase.figures())
    driver_2000 = next(p for p in phases if p.mode == "driver" and p.tags == 200)
    lost = driver_2000.offered - driver_2000.delivered
    offered_enough = driver_2000.offered_per_s >= TARGET_RATE_PER_S * MIN_OFFERED_FRACTION
    figures["checks"] = {
        "none_dropped_at_2000_adverts_per_s": {
            "value": lost + driver_2000.queue_dropped,
            "target": "0 adverts lost or dropped by the driver queue at 200 tags x 10 Hz, with "
            f">= {TARGET_RATE_PER_S * MIN_OFFERED_FRACTION:g}/s really offered (offered "
            f"{driver_2000.offered_per_s:g}/s)",
            "ok": lost == 0 and driver_2000.queue_dropped == 0 and offered_enough,
        }
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=8.0, help="traffic per phase")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(_main(args.duration_s))
    print(json.dumps(result))
    return 0 if all(check["ok"] for check in result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
