"""The driver base: bounded queue policies, counters, last_event_at, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from drivers import REJECT_LOG_INTERVAL_S, BurstLog, Driver, EventQueue, OverflowPolicy
from tests.fixtures.clock import FakeClock


def _clock() -> FakeClock:
    """Monotonic 100 s, the wall clock at the same count of epoch seconds."""
    return FakeClock(100.0, datetime.fromtimestamp(100.0, UTC))


async def test_drop_oldest_keeps_newest_and_counts() -> None:
    q: EventQueue[int] = EventQueue(3, OverflowPolicy.DROP_OLDEST)
    results = [q.put(i) for i in range(5)]
    assert results == [True, True, True, False, False]
    q.close()
    assert [i async for i in q] == [2, 3, 4]
    assert q.stats.offered == 5
    assert q.stats.dropped == 2
    assert q.stats.delivered == 3


async def test_drop_newest_keeps_queued() -> None:
    q: EventQueue[int] = EventQueue(2, OverflowPolicy.DROP_NEWEST)
    for i in range(4):
        q.put(i)
    q.close()
    assert [i async for i in q] == [0, 1]
    assert q.stats.dropped == 2


async def test_get_waits_for_put() -> None:
    q: EventQueue[str] = EventQueue(4)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put("x")
    assert await getter == "x"


async def test_put_after_close_is_an_error() -> None:
    q: EventQueue[int] = EventQueue(1)
    q.close()
    with pytest.raises(RuntimeError):
        q.put(1)


class CountingDriver(Driver[int]):
    def __init__(self, clock: FakeClock, stop_after: int) -> None:
        super().__init__(name="counting", clock=clock, queue_size=100)
        self.stop_after = stop_after
        self.closed = False
        self.emitted = asyncio.Event()

    async def _run(self) -> None:
        for i in range(self.stop_after):
            self._emit(i)
        self.emitted.set()
        await asyncio.Event().wait()  # a device loop runs until cancelled

    async def _close(self) -> None:
        self.closed = True


async def test_driver_emits_stamps_and_stops() -> None:
    clock = _clock()
    driver = CountingDriver(clock, stop_after=5)
    assert driver.last_event_at is None
    async with driver:
        await driver.emitted.wait()
        assert driver.last_event_at == 100.0
        got = [await anext(driver.events()) for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert driver.closed
    assert [i async for i in driver.events()] == []
    assert driver.queue_stats.delivered == 5


def test_burst_log_writes_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = _clock()
    log = BurstLog(logging.getLogger("test.burst"), "dev", "bad frame", clock)
    caplog.set_level(logging.WARNING, logger="test.burst")
    assert log.reject("bad_crc: x", {"bad_crc": 1})  # the first of a burst: at once
    assert not any(log.reject("bad_crc: x", {"bad_crc": n}) for n in range(2, 1001))
    clock.advance(REJECT_LOG_INTERVAL_S - 0.001)
    assert not log.reject("bad_crc: x", {"bad_crc": 1001})
    clock.advance(0.001)
    assert log.reject("too_long: y", {"bad_crc": 1001, "too_long": 1})
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "dev: bad frame (bad_crc: x); 1 since the last report, totals {'bad_crc': 1}",
        "dev: bad frame (too_long: y); 1001 since the last report, "
        "totals {'bad_crc': 1001, 'too_long': 1}",
    ]


async def test_a_full_queue_logs_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    clock = _clock()
    caplog.set_level(logging.WARNING, logger="drivers.base")
    driver = CountingDriver(clock, stop_after=0)
    for i in range(5_000):  # queue_size is 100: 4,900 drops in one burst
        driver._emit(i)
    clock.advance(REJECT_LOG_INTERVAL_S)
    driver._emit(5_000)
    assert driver.queue_stats.dropped == 4_901
    assert [r.getMessage() for r in caplog.records] == [
        "counting: event queue full (drop-oldest); 1 since the last report, totals {'dropped': 1}",
        "counting: event queue full (drop-oldest); 4900 since the last report, "
        "totals {'dropped': 4901}",
    ]
