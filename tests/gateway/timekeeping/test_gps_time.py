"""GPS time into the time keeper through the real serial GPS driver on a pty: a timing
receiver's time-only fixes make the gateway's clock GPS without giving it a position."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyubx2 import GET, UBXMessage

from drivers.gps import GpsFixEvent, GpsSerialDriver
from drivers.serial import SerialConfig
from gateway.events import TimeSource
from gateway.timekeeping import ClockState, TimeKeeper
from protocols.gps import FixQuality
from simulator.serial import PtyPort
from tests.gateway.timekeeping.helpers import BOOT_ID, RTC_RESET, JumpyClock

DEADLINE_S = 5.0
GPS_UTC = datetime(2026, 11, 24, 6, 0, 1, tzinfo=UTC)


def _time_only(when: datetime) -> bytes:
    return bytes(
        UBXMessage(
            "NAV",
            "NAV-PVT",
            GET,
            iTOW=0,
            year=when.year,
            month=when.month,
            day=when.day,
            hour=when.hour,
            min=when.minute,
            second=when.second,
            validDate=1,
            validTime=1,
            fullyResolved=1,
            fixType=5,
            gnssFixOk=1,
            numSV=14,
        ).serialize()
    )


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[PtyPort]:
    async with PtyPort(tmp_path / "by-id" / "usb-u-blox_LEA-M8T-if00") as p:
        yield p


async def test_a_time_only_fix_is_a_time_source_but_not_a_position(port: PtyPort) -> None:
    clock = JumpyClock()  # the host clock says 2000: an RTC without battery
    keeper = TimeKeeper(clock, boot_id=BOOT_ID)
    driver = GpsSerialDriver(SerialConfig(path=str(port.link), baudrate=9600), clock=clock)
    async with driver:
        events = driver.events()
        # A receiver sends one solution per epoch (here every 0.2 s) whether anyone listens or
        # not; the first one after the driver has opened the pty comes through.
        async with asyncio.timeout(DEADLINE_S):
            event: GpsFixEvent | None = None
            while event is None:
                port.write(_time_only(GPS_UTC))
                try:
                    async with asyncio.timeout(0.2):
                        event = await anext(events)
                except TimeoutError:
                    continue
        assert event.fix.fix is FixQuality.TIME_ONLY
        assert (event.fix.lat, event.fix.lon) == (None, None)
        assert not event.valid  # not a position...
        assert event.time_source == "gps"  # ...but a trusted time
        assert driver.last_valid_fix is None
        trusted = driver.trusted_time
        assert trusted is not None
        assert trusted.utc == GPS_UTC

        assert keeper.stamp(clock.monotonic()).time.year == RTC_RESET.year
        keeper.on_gps(trusted, clock.monotonic())
        assert keeper.state is ClockState.GPS
        clock.advance(7.5)
        stamp = keeper.stamp(clock.monotonic())
        assert (stamp.time, stamp.source) == (GPS_UTC + timedelta(seconds=7.5), TimeSource.GPS)
