"""Run the fake BlueZ as its own process: ``python -m simulator.bluez --bus-address ADDR``.

Without ``--tags`` it only serves ``org.bluez`` until SIGINT / SIGTERM. With ``--tags N`` it is
a load generator for benchmarks: once a client scans, N tags advertise at ``--rate-hz`` each for
``--duration-s``, every advert a SmartLabel advert (changing sequence) plus a service-data
entry carrying the send time (CLOCK_MONOTONIC nanoseconds, shared by all processes on the
host, so the receiver can measure bus latency). Running it as a separate process keeps its CPU
out of the receiving driver's figures. Lines on stdout are JSON: ``{"serving": true}`` once on
the bus, ``{"ready": ...}`` when traffic starts and a summary when it ends; the service stays
up until SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import struct
import sys
import time
from collections.abc import Sequence
from typing import Final

from foundation.lifecycle import TaskOwner
from protocols.ble import SMARTLABEL_COMPANY_ID, SmartLabelAdvFlags, build_smartlabel_adv
from simulator.bluez.fake import FakeBlueZ

#: The 16-bit service UUID that carries the send timestamp (0xFFFE is not assigned to anyone
#: we decode, so the payload never disturbs a decoder).
TIMESTAMP_UUID16: Final = "fffe"
TIMESTAMP_LAYOUT: Final = struct.Struct("<q")
#: How long the generator waits for a client to start scanning before giving up.
WAIT_FOR_SCAN_S: Final = 30.0


def tag_address(index: int) -> str:
    return f"E0:00:00:{index >> 16 & 0xFF:02X}:{index >> 8 & 0xFF:02X}:{index & 0xFF:02X}"


def _print(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _generate(fake: FakeBlueZ, tags: int, rate_hz: float, duration_s: float) -> None:
    rng = random.Random(5)
    _print({"serving": True})
    await fake.wait_until(fake.scanning, WAIT_FOR_SCAN_S)
    _print({"ready": True, "tags": tags, "rate_hz": rate_hz})
    period_s = 1.0 / rate_hz
    started = time.monotonic()
    ticks = 0
    late_ticks = 0
    while (now := time.monotonic()) - started < duration_s:
        for index in range(tags):
            payload = build_smartlabel_adv(
                label_id=index,
                battery_mv=2900,
                temperature_c=4.0 + index % 10 / 10,
                flags=SmartLabelAdvFlags.NONE,
                sequence=ticks,
            )
            await fake.upsert_device(
                tag_address(index),
                rssi=-50 - rng.randrange(40),
                manufacturer_data={SMARTLABEL_COMPANY_ID: payload},
                service_data={TIMESTAMP_UUID16: TIMESTAMP_LAYOUT.pack(time.monotonic_ns())},
            )
        ticks += 1
        next_tick = started + ticks * period_s
        if next_tick < time.monotonic():
            late_ticks += 1  # the generator could not keep the rate
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    elapsed = now - started
    _print(
        {
            "offered": fake.counters["adverts_sent"],
            "elapsed_s": round(elapsed, 3),
            "offered_per_s": round(fake.counters["adverts_sent"] / elapsed, 1),
            "late_ticks": late_ticks,
            "ticks": ticks,
        }
    )


async def _main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        FakeBlueZ(args.bus_address, adapters=args.adapter) as fake,
        TaskOwner("fake-bluez-main") as owner,
    ):
        if args.tags:
            owner.spawn(_generate(fake, args.tags, args.rate_hz, args.duration_s), name="traffic")
        else:
            _print({"ready": True, "bus_address": args.bus_address})
        # Keep serving after the traffic ends, so clients can stop their scans cleanly.
        await stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.bluez", description=__doc__)
    parser.add_argument("--bus-address", required=True, help="unix:path=... of the bus")
    parser.add_argument("--adapter", action="append", default=None, help="hciN (repeatable)")
    parser.add_argument("--tags", type=int, default=0, help="tags to simulate (0: serve only)")
    parser.add_argument("--rate-hz", type=float, default=10.0, help="adverts per tag per second")
    parser.add_argument("--duration-s", type=float, default=10.0, help="how long to advertise")
    args = parser.parse_args(argv)
    if args.adapter is None:
        args.adapter = ["hci0"]
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
