"""The gpsd driver: against a real gpsd reading the simulated receiver, and on bad input."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers import DriverError
from drivers.gps import (
    GpsdConfig,
    GpsdDriver,
    GpsdFailure,
    GpsdRejectReason,
    GpsdReportError,
    GpsFixEvent,
    fix_from_tpv,
)
from drivers.gps.gpsd import MAX_LINE_BYTES
from foundation.clock import SystemClock
from protocols.gps import FixQuality
from simulator.serial import GpsReceiverSim, PtyPort
from tests.fixtures.gpsd import GpsdFactory

DEADLINE_S = 10.0
WHEN = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


async def next_valid(driver: GpsdDriver) -> GpsFixEvent:
    events = driver.events()
    async with asyncio.timeout(DEADLINE_S):
        while True:
            event = await anext(events)
            if event.valid and event.fix.time is not None:
                return event


async def first_valid_from_peer(report: bytes) -> tuple[GpsFixEvent, GpsdDriver]:
    """A one-shot gpsd peer on loopback: answers the WATCH command with ``report``; returns
    the driver's first valid fix and the driver (stopped) for its counters."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # the WATCH command
        writer.write(report)
        await writer.drain()
        await reader.read()  # until the driver hangs up
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with GpsdDriver(GpsdConfig(port=port), clock=SystemClock()) as driver:
            event = await next_valid(driver)
    finally:
        server.close()
        await server.wait_closed()
    return event, driver


async def test_fixes_through_a_real_gpsd(tmp_path: Path, gpsd: GpsdFactory) -> None:
    async with PtyPort(tmp_path / "gps0") as port, GpsReceiverSim(port, rate_hz=10.0) as sim:
        sim.set_position(51.5072, -0.1276, alt_m=11.0, speed_mps=8.0, heading_deg=45.0, when=WHEN)
        daemon = gpsd(port.link)
        config = GpsdConfig(host="127.0.0.1", port=daemon.port)
        async with GpsdDriver(config, clock=SystemClock()) as driver:
            event = await next_valid(driver)
            assert driver.gpsd_release is not None
    fix = event.fix
    assert event.source == "gpsd"
    assert event.device == str(port.link)
    assert event.time_source == "gps"
    assert fix.format == "gpsd-tpv"
    assert fix.fix is FixQuality.FIX_3D
    assert fix.lat == pytest.approx(51.5072, abs=1e-6)
    assert fix.lon == pytest.approx(-0.1276, abs=1e-6)
    assert fix.alt_m == pytest.approx(11.0, abs=0.01)
    assert fix.speed_mps == pytest.approx(8.0, abs=0.01)
    assert fix.heading_deg == pytest.approx(45.0, abs=0.01)
    assert fix.time is not None
    assert WHEN <= fix.time < WHEN + timedelta(seconds=DEADLINE_S)
    assert driver.trusted_time is not None
    assert driver.trusted_time.utc == fix.time


async def test_gpsd_restart_is_survived(tmp_path: Path, gpsd: GpsdFactory) -> None:
    async with PtyPort(tmp_path / "gps0") as port, GpsReceiverSim(port, rate_hz=10.0) as sim:
        sim.set_position(35.68, 139.77, when=WHEN)
        daemon = gpsd(port.link)
        async with GpsdDriver(GpsdConfig(port=daemon.port), clock=SystemClock()) as driver:
            await next_valid(driver)
            daemon.stop()
            async with asyncio.timeout(DEADLINE_S):
                await driver.wait_disconnected()
            daemon.start()
            async with asyncio.timeout(DEADLINE_S):
                await driver.wait_connected()
            reconnected_at = time.monotonic()
            while (await next_valid(driver)).monotonic < reconnected_at:
                pass  # fixes queued before the restart
            assert driver.connections == 2
            assert driver.failures[GpsdFailure.CONNECTION_LOST] == 1


async def test_bad_lines_are_counted_and_skipped() -> None:
    """A fake gpsd on a loopback port that talks nonsense between good reports."""
    good = {
        "class": "TPV",
        "device": "/dev/ttyACM0",
        "mode": 3,
        "time": "2026-06-01T12:00:00.000Z",
        "lat": 1.5,
        "lon": 2.5,
        "altMSL": 3.0,
        "speed": 0.5,
        "track": 10.0,
    }
    lines = [
        b'{"class":"VERSION","release":"3.25"}',
        b"{not json",
        b"[1, 2, 3]",
        b'{"class":"TPV","mode":3,"lat":123.0,"lon":0}',
        b'{"class":"SKY","device":"/dev/ttyACM0","uSat":7,"hdop":1.1}',
        json.dumps(good).encode(),
    ]

    event, driver = await first_valid_from_peer(b"\r\n".join(lines) + b"\r\n")
    assert event.fix.num_sats == 7
    assert event.fix.hdop == 1.1
    assert event.fix.lat == 1.5
    assert driver.rejected == {
        GpsdRejectReason.BAD_JSON: 2,
        GpsdRejectReason.MALFORMED_REPORT: 1,
    }
    assert driver.gpsd_release == "3.25"


async def test_unreachable_gpsd_is_retried() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens on this port now
    async with GpsdDriver(GpsdConfig(port=port), clock=SystemClock()) as driver:
        async with asyncio.timeout(DEADLINE_S):
            # Counters have no event to await; a short poll under a deadline is the honest test.
            while driver.failures.get(GpsdFailure.CONNECT_FAILED, 0) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert not driver.connected


@pytest.mark.parametrize(
    ("tpv", "quality"),
    [
        ({"mode": 1}, FixQuality.NONE),
        ({"mode": 2, "lat": 1.0, "lon": 1.0}, FixQuality.FIX_2D),
        ({"mode": 3, "lat": 1.0, "lon": 1.0}, FixQuality.FIX_3D),
        ({"mode": 3, "status": 2, "lat": 1.0, "lon": 1.0}, FixQuality.DGPS),
        ({"mode": 3, "status": 3, "lat": 1.0, "lon": 1.0}, FixQuality.RTK_FIXED),
        ({"mode": 3, "status": 4, "lat": 1.0, "lon": 1.0}, FixQuality.RTK_FLOAT),
    ],
)
def test_tpv_fix_quality(tpv: dict[str, Any], quality: FixQuality) -> None:
    fix = fix_from_tpv({"class": "TPV", **tpv})
    assert fix.fix is quality
    assert (fix.lat is None) == (quality is FixQuality.NONE)


def test_tpv_out_of_range_is_a_typed_error() -> None:
    for tpv in ({"mode": 3, "lat": 91.0, "lon": 0.0}, {"mode": 7}):
        with pytest.raises(GpsdReportError) as caught:
            fix_from_tpv({"class": "TPV", **tpv})
        assert caught.value.reason is GpsdRejectReason.MALFORMED_REPORT
        assert isinstance(caught.value, DriverError)
        assert isinstance(caught.value.__cause__, ValidationError)


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
_reports = st.fixed_dictionaries(
    {"class": st.sampled_from(["TPV", "SKY", "VERSION", "DEVICES"])},
    optional={
        k: _json
        for k in ("mode", "status", "time", "lat", "lon", "alt", "speed", "track", "uSat", "hdop")
    },
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.binary(max_size=200) | _reports.map(lambda r: json.dumps(r).encode()))
def test_any_line_is_handled_without_raising(line: bytes) -> None:
    driver = GpsdDriver(GpsdConfig(), clock=SystemClock())
    driver.feed_line(line)
    stats = driver.queue_stats
    assert sum(driver.rejected.values()) + stats.offered <= 1


async def test_an_overlong_line_is_one_reject_and_the_next_report_decodes() -> None:
    good = b'{"class":"TPV","mode":3,"time":"2026-06-01T12:00:00Z","lat":1.5,"lon":2.5}\n'
    runaway = b'{"class":"SKY","junk":"' + b"x" * (2 * MAX_LINE_BYTES + 10) + b'"}\n'

    event, driver = await first_valid_from_peer(runaway + good)
    assert event.fix.lat == 1.5
    assert driver.rejected == {GpsdRejectReason.TOO_LONG: 1}
    assert driver.failures == {}
