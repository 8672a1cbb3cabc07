"""Liveness: waiting for input is healthy however long; one item worked on too long is a stall."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.health import Liveness


class Now:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def test_idle_is_healthy_busy_too_long_is_a_stall() -> None:
    now = Now()
    live = Liveness(now)
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    seen: list[int] = []
    worked = asyncio.Event()
    release = asyncio.Event()

    async def items() -> AsyncIterator[int]:
        while (item := await queue.get()) is not None:
            yield item

    async def stage() -> None:
        async for item in live.each("ble:hci0", items()):
            seen.append(item)
            worked.set()
            await release.wait()  # the work on this item takes as long as the test says

    task = asyncio.create_task(stage())
    await asyncio.sleep(0)
    now.t += 3600.0  # an hour with nothing to do
    assert live.stalled(30.0) == []
    queue.put_nowait(1)
    await worked.wait()
    now.t += 29.0
    assert live.stalled(30.0) == []
    now.t += 2.0
    (stall,) = live.stalled(30.0)
    assert stall.stage == "ble:hci0"
    assert stall.busy_s == 31.0
    assert str(stall) == "ble:hci0 busy for 31 s"
    release.set()
    queue.put_nowait(None)
    await task
    assert live.stalled(0.0) == []
    assert live.beat("ble:hci0").items == 1
    assert seen == [1]


async def test_a_timer_round_and_the_wedge_hook() -> None:
    now = Now()
    live = Liveness(now, wedge=["ticker"])
    async with live.working("gps"):
        now.t += 5.0
        assert [s.stage for s in live.stalled(1.0)] == ["gps"]
    assert live.stalled(1.0) == []

    async def ticker() -> None:
        async with live.working("ticker"):
            raise AssertionError("the wedged round never gets here")

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    now.t += 10.0
    assert [s.stage for s in live.stalled(1.0)] == ["ticker"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert live.stalled(1.0) == []
