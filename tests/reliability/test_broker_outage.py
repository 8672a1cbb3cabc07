"""The broker goes away while the daemon runs: killed with SIGKILL, then frozen with SIGSTOP.
Labels keep sending through the whole time; afterwards everything the reader saw ACKed is
delivered, duplicates stay within what was in flight, and the birth and last will are seen."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.serial import PtyPort, SmartLabelReaderSim
from tests.fixtures.mosquitto import Broker
from tests.reliability.conftest import Daemon, LabelStream, Recorder, write_config

GATEWAY = "gw-outage"
LABELS = [0x5A4B300000000001 + i for i in range(10)]
RATE_FPS = 200
#: Per-event publishing (batching off), so the in-flight window counts events.
WINDOW = 50
KEEPALIVE_S = 5
OUTAGE_S = 3.0
#: Frozen for four keepalives: the gateway's unanswered PINGREQ ends the connection after about
#: two (with margin for a loaded machine), and the broker, when it wakes up, finds it gone and
#: sends the will.
FREEZE_S = 20.0


def saved_after(path: Path, after: float, timeout_s: float = 15.0) -> None:
    """Poll for a file written after ``after`` (another process's save file has no event)."""
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.stat().st_mtime > after):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not saved within {timeout_s} s")
        time.sleep(0.05)


def births(rec: Recorder, after: int) -> int:
    return sum(1 for s in rec.statuses(GATEWAY, after) if s["state"] == "online")


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_broker_killed_and_frozen_mid_run(
    durable_mosquitto: Broker,
    recorder_factory: Callable[[Broker], Recorder],
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: 10 labels at 200 frames/s through the reader pty; uplink per-event (batching
    off), in-flight window 50, keepalive 5 s; the broker (saving its sessions every second)
    SIGKILLed for 3 s and restarted, then SIGSTOPped for 20 s and SIGCONTed; finally the daemon
    is SIGKILLed to see its will. About 30-45 s.

    Every frame ACKed to the reader, before, during and after the outages, reaches the platform;
    event ids received twice number at most one window per outage; a birth follows every
    reconnect, and the broker publishes the will (offline, no time) for a connection it lost."""
    broker = durable_mosquitto
    recorder = recorder_factory(broker)
    # The platform's persistent session is on the broker's disk before the first kill.
    save = broker.log_path.parent / "mosquitto.db"
    subscribed_at = time.time()
    await asyncio.to_thread(saved_after, save, subscribed_at + 0.1)
    config = write_config(
        tmp_path / "gw.toml",
        GATEWAY,
        broker,
        f"in_flight_window = {WINDOW}\nkeepalive_s = {KEEPALIVE_S}\n"
        "[uplink.batching]\nenabled = false\n"
        f'[[smartlabel_readers]]\npath = "{tmp_path / "reader"}"\n',
    )
    daemon = daemons(config)
    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=2.0) as reader,
    ):
        stream = LabelStream(reader, GATEWAY, LABELS, RATE_FPS, buffer=5_000)
        stop = asyncio.Event()
        sender = asyncio.create_task(stream.run(stop))
        frozen = False
        try:
            mark = recorder.mark()
            daemon.start()
            await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
            await asyncio.to_thread(
                recorder.wait, lambda: len(recorder.of_kind("telemetry.reading")) >= 200
            )

            # 1. Killed: the outbox keeps accepting (the reader keeps getting ACKs) meanwhile.
            broker.kill()
            acked = len(reader.acked)
            await asyncio.sleep(OUTAGE_S)
            acked_during_kill = len(reader.acked) - acked
            mark = recorder.mark()
            broker.start()
            await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
            delivered = len(recorder.event_ids())
            await asyncio.to_thread(
                recorder.wait, lambda: len(recorder.event_ids()) >= delivered + 200
            )

            # 2. Frozen: connections stay open, nothing answers.
            assert broker.proc is not None
            pid = broker.proc.pid
            acked = len(reader.acked)
            os.kill(pid, signal.SIGSTOP)
            frozen = True
            await asyncio.sleep(FREEZE_S)
            acked_during_freeze = len(reader.acked) - acked
            mark = recorder.mark()
            os.kill(pid, signal.SIGCONT)
            frozen = False
            await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
            wills = [
                s
                for s in recorder.statuses(GATEWAY, mark)
                if s["state"] == "offline" and s.get("time") is None
            ]

            stop.set()
            await sender
            async with asyncio.timeout(60):
                await reader.wait_for(lambda: reader.unacked == 0)
            every = stream.event_ids(set(reader.acked))
            await asyncio.to_thread(recorder.wait, lambda: every <= recorder.event_ids())
            assert daemon.alive(), daemon.text()

            # 3. The daemon vanishes: the broker tells the platform with its will.
            mark = recorder.mark()
            assert daemon.kill() == -9
            await asyncio.to_thread(
                recorder.wait,
                lambda: any(s["state"] == "offline" for s in recorder.statuses(GATEWAY, mark)),
                3 * KEEPALIVE_S + 30,
            )
        finally:
            stop.set()
            await sender
            if frozen and broker.proc is not None:
                os.kill(broker.proc.pid, signal.SIGCONT)

    (will,) = recorder.statuses(GATEWAY, mark)
    assert will["state"] == "offline"
    assert will["time"] is None  # the will, not a clean goodbye
    duplicates = sum(1 for n in recorder.copies.values() if n > 1)
    print(
        f"{stream.sent} frames; ACKed during the kill {acked_during_kill}, during the freeze "
        f"{acked_during_freeze}; {len(recorder.copies)} events, {duplicates} received twice or "
        f"more; wills after the freeze {len(wills)}; births {births(recorder, 0)}"
    )
    assert every <= recorder.event_ids()
    assert reader.dropped == set()
    # The outbox accepted through both outages: the broker is not in the ACK path.
    assert acked_during_kill >= RATE_FPS * OUTAGE_S / 2
    assert acked_during_freeze >= RATE_FPS * FREEZE_S / 2
    # Resent after an outage: at most what was in flight when the connection went.
    assert duplicates <= 2 * WINDOW
    # A birth at the first connect and after each outage; the frozen broker, awake again,
    # published the will of the connection the gateway had given up.
    assert births(recorder, 0) >= 3
    assert len(wills) >= 1
    assert "Traceback" not in daemon.text()
