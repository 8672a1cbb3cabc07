"""The serial GPS driver against the simulated receiver on a real pty: NMEA, UBX, faults, time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.gps import (
    TIME_HOLDOVER_S,
    GpsConfig,
    GpsdDriver,
    GpsFixEvent,
    GpsSerialDriver,
    gps_driver,
)
from drivers.serial import SerialConfig
from foundation.clock import Clock, SystemClock
from protocols.gps import FixQuality, GpsRejectReason
from simulator.serial import GpsReceiverSim, PtyPort
from tests.fixtures.clock import FakeClock

DEADLINE_S = 5.0
RATE_HZ = 20.0
WHEN = datetime(2026, 3, 14, 9, 26, 53, 580_000, tzinfo=UTC)


async def take(driver: GpsSerialDriver, n: int) -> list[GpsFixEvent]:
    events = driver.events()
    async with asyncio.timeout(DEADLINE_S):
        return [await anext(events) for _ in range(n)]


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[PtyPort]:
    async with PtyPort(tmp_path / "by-id" / "usb-u-blox_GNSS_receiver-if00") as p:
        yield p


def make_driver(port: PtyPort, clock: Clock | None = None) -> GpsSerialDriver:
    return GpsSerialDriver(
        SerialConfig(path=str(port.link), baudrate=9600), clock=clock or SystemClock()
    )


@pytest.mark.parametrize("ubx", [False, True], ids=["nmea", "ubx"])
async def test_fixes_from_the_receiver(port: PtyPort, ubx: bool) -> None:
    async with make_driver(port) as driver, GpsReceiverSim(port, rate_hz=RATE_HZ, ubx=ubx) as sim:
        sim.set_position(52.52, 13.405, alt_m=34.5, speed_mps=12.5, heading_deg=271.5, when=WHEN)
        events = await take(driver, 3)
    fix = events[-1].fix
    assert fix.format == ("ubx-nav-pvt" if ubx else "nmea-fix")
    assert fix.lat == pytest.approx(52.52, abs=1e-6)
    assert fix.lon == pytest.approx(13.405, abs=1e-6)
    assert fix.alt_m == pytest.approx(34.5, abs=0.01)
    assert fix.speed_mps == pytest.approx(12.5, abs=0.01)
    assert fix.heading_deg == pytest.approx(271.5, abs=0.01)
    assert fix.fix is FixQuality.FIX_3D
    assert fix.num_sats == 9
    assert fix.time is not None
    assert WHEN <= fix.time < WHEN + timedelta(seconds=DEADLINE_S)
    assert all(e.valid and e.time_source == "gps" for e in events)
    assert events[-1].source == "serial"
    assert events[-1].device == port.device
    assert [e.fix.time for e in events] == sorted(e.fix.time for e in events if e.fix.time)


async def test_trusted_time_follows_gps_not_the_host_clock(port: PtyPort) -> None:
    clock = FakeClock(1000.0, datetime(2000, 1, 1, tzinfo=UTC))
    async with make_driver(port, clock) as driver, GpsReceiverSim(port, rate_hz=RATE_HZ) as sim:
        assert driver.trusted_time is None
        assert driver.trusted_now() is None
        sim.set_position(48.1, 11.6, when=WHEN)
        events = await take(driver, 2)
        gps_time = events[-1].fix.time
        assert gps_time is not None
        assert events[-1].received_at.year == 2000  # the host clock is wrong...
        assert driver.trusted_now() == gps_time  # ...GPS time is what the gateway gets
        clock.advance_monotonic(42.0)
        assert driver.trusted_now() == gps_time + timedelta(seconds=42)

        sim.lose_fix()  # tunnel: epochs keep coming, without a fix
        async with asyncio.timeout(DEADLINE_S):
            while (await anext(driver.events())).valid:
                pass
        lost = await take(driver, 1)
        assert not lost[0].valid
        assert lost[0].time_source is None
        assert driver.last_valid_fix is not None
        assert driver.last_valid_fix.fix.lat == pytest.approx(48.1)
        # Holdover: still GPS time for a while after the last valid fix, then not.
        assert driver.trusted_time is not None
        clock.advance_monotonic(TIME_HOLDOVER_S + 1)
        assert driver.trusted_time is None


async def test_noise_is_counted_and_fixes_keep_coming(port: PtyPort) -> None:
    async with make_driver(port) as driver, GpsReceiverSim(port, rate_hz=RATE_HZ) as sim:
        sim.set_position(40.0, -3.7, when=WHEN)
        await take(driver, 1)
        sentence = b"$GPGGA,092653.58,4000.00000,N,00342.00000,W,1,9,0.9,0.0,M,,M,,*00\r\n"
        port.write(sentence)  # wrong checksum
        sim.inject_garbage(300)
        # Rejects have no event of their own; the receiver's epochs keep coming, so read fixes
        # until the bad sentence has been counted, then the fixes after the noise.
        events = driver.events()
        async with asyncio.timeout(DEADLINE_S):
            while not driver.rejected.get(GpsRejectReason.BAD_CHECKSUM):
                await anext(events)
        after = await take(driver, 3)
    assert all(e.valid for e in after)
    # >= 1: random noise can itself hold a UBX sync pair whose frame then fails its checksum.
    assert driver.rejected[GpsRejectReason.BAD_CHECKSUM] >= 1
    assert driver.link_stats.losses == 0  # noise is not an unplug


async def test_gps_survives_unplug(port: PtyPort) -> None:
    async with make_driver(port) as driver, GpsReceiverSim(port, rate_hz=RATE_HZ) as sim:
        sim.set_position(1.0, 2.0, when=WHEN)
        await take(driver, 1)
        port.replug()
        async with asyncio.timeout(DEADLINE_S):
            while driver.link_stats.device != port.device:
                await driver.link.wait_disconnected()
                await driver.link.wait_connected()
        events = await take(driver, 3)
    assert events[-1].device == port.device
    assert driver.link_stats.opens >= 2


def test_config_chooses_the_source() -> None:
    clock = SystemClock()
    serial_driver = gps_driver(
        GpsConfig(source="serial", serial=SerialConfig(path="/dev/ttyACM0")), clock=clock
    )
    assert isinstance(serial_driver, GpsSerialDriver)
    assert isinstance(gps_driver(GpsConfig(source="gpsd"), clock=clock), GpsdDriver)
    with pytest.raises(ValidationError):
        GpsConfig(source="serial")
    with pytest.raises(ValidationError):
        GpsConfig.model_validate({"source": "gpsd", "gpsd": {"port": 0}})
