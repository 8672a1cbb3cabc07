"""The gateway starts with its wall clock a year off and nothing to trust; GPS time arrives later.
Events published before say ``unsynced`` (with their monotonic reference); events that waited in
the outbox are corrected on the way out; events after are stamped from GPS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.events import TelemetryReading
from gateway.events.common import LabelFrame
from gateway.registry import smartlabel_tag_id
from protocols.smartlabel import Environment
from simulator.serial import PtyPort, SmartLabelReaderSim
from simulator.serial.gps import GpsReceiverSim
from tests.fixtures.mosquitto import Broker, free_port
from tests.gateway.metrics.test_metrics_run import scrape_until
from tests.reliability.conftest import Daemon, Recorder, write_config

GATEWAY = "gw-clock"
LABEL = 0x5A4B600000000001
TAG = smartlabel_tag_id(LABEL)
OFF_BY = timedelta(days=365)
FRAMES = 10
#: How far an event's time may be from the real time its frame was sent (pty, pipeline, a
#: loaded machine; GPS NMEA carries centiseconds).
TOLERANCE = timedelta(seconds=3)


class Frames:
    """Frames of one label whose clock is not set (times since its boot), and when each went."""

    def __init__(self, reader: SmartLabelReaderSim) -> None:
        self.reader = reader
        self.sent: dict[str, datetime] = {}

    async def send(self, n: int) -> set[str]:
        ids = set()
        for _ in range(n):
            seq = self.reader.next_seq(LABEL)
            label_time = 1_000 + seq  # seconds since the label booted: no UTC of its own
            self.reader.send(
                Environment(
                    label_id=LABEL,
                    seq=seq,
                    label_time=label_time,
                    temperature_c=4.0,
                    humidity_pct=50.0,
                )
            )
            event_id = TelemetryReading.make_id(GATEWAY, LabelFrame(TAG, seq, None, label_time))
            self.sent[event_id] = datetime.now(UTC)
            ids.add(event_id)
            await asyncio.sleep(0.1)
        async with asyncio.timeout(30):
            await self.reader.wait_for(lambda: self.reader.unacked == 0)
        return ids


def off(event: dict[str, Any], real: datetime) -> timedelta:
    return abs(datetime.fromisoformat(event["time"]) - real)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_year_off_clock_then_gps_time(
    mosquitto: Broker,
    recorder: Recorder,
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: the daemon's wall clock set one year back through ``[simulated_clock]`` with
    ``synchronized = false`` (the test hook: no libfaketime, the process's own clock is real);
    a label whose clock is not set, 10 frames per phase; a GPS receiver (NMEA, 1 Hz, real UTC)
    on a pty from phase 2. Phase 1 broker up, no GPS; phase 2 broker down, then GPS, then the
    broker back; phase 3 broker up with GPS. About 20-30 s.

    Phase 1 events are published at once as ``unsynced`` with a ``clock_ref`` and the year-off
    time; phase 2 events, held in the outbox, come out corrected (``gps``, ``time_corrected``,
    within 3 s of the real time); phase 3 events and GPS positions are stamped ``gps`` within
    3 s; the births say ``unsynced`` before GPS and ``gps`` after."""
    metrics_port = free_port()
    start = datetime.now(UTC) - OFF_BY
    config = write_config(
        tmp_path / "gw.toml",
        GATEWAY,
        mosquitto,
        f'[[smartlabel_readers]]\npath = "{tmp_path / "reader"}"\n'
        f'[gps]\nsource = "serial"\n[gps.serial]\npath = "{tmp_path / "gps"}"\n'
        f"[metrics]\nenabled = true\nport = {metrics_port}\n"
        "[simulated_clock]\n"
        f'start = "{start.isoformat()}"\nspeed = 1.0\n'
        f"anchor_monotonic_s = {time.monotonic()}\nsynchronized = false\n",
    )
    daemon = daemons(config)
    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=1.0) as reader,
        PtyPort(tmp_path / "gps") as gps_port,
        GpsReceiverSim(gps_port, rate_hz=1.0) as gps,
    ):
        frames = Frames(reader)
        mark = recorder.mark()
        daemon.start()
        await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
        first_birth = recorder.statuses(GATEWAY, mark)[-1]

        before = await frames.send(FRAMES)
        await asyncio.to_thread(recorder.wait, lambda: before <= recorder.event_ids())

        mosquitto.stop()
        held = await frames.send(FRAMES)
        gps.set_position(53.55, 9.99)  # real UTC from now on
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        await scrape_until(
            url, lambda s: s.get("tagrelay_clock_state", state="gps") == 1, daemon.proc
        )
        mark = recorder.mark()
        mosquitto.start()
        await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
        gps_birth = [s for s in recorder.statuses(GATEWAY, mark) if s["state"] == "online"][-1]
        await asyncio.to_thread(recorder.wait, lambda: held <= recorder.event_ids())

        after = await frames.send(FRAMES)
        await asyncio.to_thread(recorder.wait, lambda: after <= recorder.event_ids())
        assert daemon.terminate() == 0

    events = recorder.events
    assert first_birth["clock_state"] == "unsynced"
    assert gps_birth["clock_state"] == "gps"
    for event_id in before:
        e = events[event_id]
        assert e["time_source"] == "unsynced", e
        assert e["clock_ref"]["monotonic_s"] > 0, e
        assert off(e, frames.sent[event_id] - OFF_BY) <= TOLERANCE, e
    for event_id in held:
        e = events[event_id]
        assert e["time_source"] == "gps", e
        assert e["time_corrected"] is True, e
        assert e.get("clock_ref") is None, e
        assert off(e, frames.sent[event_id]) <= TOLERANCE, e
    for event_id in after:
        e = events[event_id]
        assert e["time_source"] == "gps", e
        assert off(e, frames.sent[event_id]) <= TOLERANCE, e
    # Every event published says its source, and no trusted one carries the year-off time.
    now = datetime.now(UTC)
    for e in events.values():
        assert e["time_source"] in {"unsynced", "gps"}, e
        if e["time_source"] == "gps":
            assert now - datetime.fromisoformat(e["time"]) < timedelta(minutes=5), e
    positions = [e for e in events.values() if e["kind"] == "telemetry.position"]
    assert positions
    assert all(p["time_source"] == "gps" for p in positions)
    assert "Traceback" not in daemon.text()
