"""The driver's own view of the system bus: bluetoothd and bus restarts as generations."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from drivers.ble import BUS_RETRY_S, BusWatch
from foundation.clock import SystemClock
from simulator.bluez import FakeBlueZ, PrivateBus


class Watched:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.watch = BusWatch(SystemClock(), self.changed.set)

    async def until(self, predicate: Callable[[BusWatch], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self.watch):
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def watching() -> AsyncIterator[Watched]:
    watched = Watched()
    task = asyncio.create_task(watched.watch.run())
    try:
        yield watched
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_sees_bluetoothd_leave_and_return(bluez: FakeBlueZ) -> None:
    async with watching() as watched:
        await watched.until(lambda w: w.bluez_up)
        assert watched.watch.bus_up
        assert watched.watch.bluez_appeared_at is None  # it was there before we looked
        generation = watched.watch.bluez_generation
        restart = asyncio.create_task(bluez.restart(down_s=0.2))
        await watched.until(lambda w: not w.bluez_up)
        await watched.until(lambda w: w.bluez_up)
        await restart
        assert watched.watch.bluez_generation == generation + 1
        assert watched.watch.bluez_appeared_at is not None
        assert watched.watch.bus_generation == 1


async def test_reconnects_after_the_bus_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as workdir:
        async with PrivateBus(Path(workdir)) as bus:
            monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
            async with watching() as watched:
                await watched.until(lambda w: w.bus_up)
                assert not watched.watch.bluez_up
                await bus.restart()
                # A second connection means the first one was seen to drop.
                await watched.until(lambda w: w.bus_generation == 2 and w.bus_up)
                async with FakeBlueZ(bus.address):
                    await watched.until(lambda w: w.bluez_up)


async def test_a_bus_that_comes_up_later_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway started before dbus-daemon: the watch keeps trying until the bus is there.
    with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as workdir:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={workdir}/bus.sock")
        async with watching() as watched:
            await until_failed_connects(watched.watch, 2)
            async with PrivateBus(Path(workdir)) as bus:
                assert bus.address == f"unix:path={workdir}/bus.sock"
                await watched.until(lambda w: w.bus_up)
                assert watched.watch.bus_generation == 1


async def until_failed_connects(watch: BusWatch, count: int) -> None:
    # Polled with a deadline: a failed connect changes no state the watch reports.
    async with asyncio.timeout(BUS_RETRY_S * (count + 10)):
        while watch.failed_connects < count:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(BUS_RETRY_S / 5)


async def test_an_unreachable_bus_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as workdir:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={workdir}/absent.sock")
        async with watching() as watched:
            # Several attempts fail, one per BUS_RETRY_S ...
            await until_failed_connects(watched.watch, 4)
            assert not watched.watch.bus_up
            assert watched.watch.bus_generation == 0
    # ... and one line says so.
    lines = [r.getMessage() for r in caplog.records if r.name == "drivers.ble.buswatch"]
    assert len(lines) == 1
    assert lines[0].startswith("cannot reach the system bus")
