"""lease / ack / release: priority with no starvation, order within class and source."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path

from gateway.outbox import EventClass, Outbox
from tests.gateway.outbox.helpers import ROOMY, FakeClock, assert_still_waiting, event


async def test_higher_classes_first_in_arrival_order(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("t1"), event("s1", EventClass.STATUS)])
        await outbox.accept([event("a1", EventClass.ALARM), event("t2")])
        await outbox.accept([event("a2", EventClass.ALARM), event("h1", EventClass.HANDOFF)])
        leased = await outbox.lease(10)
    assert [e.event_id for e in leased] == ["a1", "a2", "h1", "s1", "t1", "t2"]
    assert leased[0].event_class is EventClass.ALARM
    assert leased[0].payload.startswith(b'{"event_id": "a1"')


async def test_no_class_starves_under_mixed_load(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        for i in range(40):
            await outbox.accept([event(f"{c.name}-{i}", c) for c in EventClass])
        served: Counter[EventClass] = Counter()
        # The uplink takes one at a time, always with every class backlogged.
        for _ in range(100):
            (one,) = await outbox.lease(1)
            served[one.event_class] += 1
            await outbox.ack([one.row_id])
    assert all(served[c] >= 1 for c in EventClass)
    assert served[EventClass.ALARM] > served[EventClass.HANDOFF] > served[EventClass.TELEMETRY]


async def test_order_is_kept_within_class_and_source_across_leases(tmp_path: Path) -> None:
    sources = ["label-a", "label-b", "label-c"]
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        seqs = {s: itertools.count() for s in sources}
        for i in range(60):
            src = sources[i % 3]
            cls = EventClass.PRESENCE if i % 4 else EventClass.TELEMETRY
            await outbox.accept([event(f"{src}:{next(seqs[src])}", cls, source=src)])
        seen: dict[tuple[EventClass, str], list[int]] = {}
        while leased := await outbox.lease(7):
            for e in leased:
                seen.setdefault((e.event_class, e.source), []).append(int(e.event_id.split(":")[1]))
            await outbox.ack([e.row_id for e in leased])
    assert sum(len(v) for v in seen.values()) == 60
    for order in seen.values():
        assert order == sorted(order)


async def test_leased_rows_are_not_handed_out_twice_until_released(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept([event(f"e{i}") for i in range(6)])
        first = await outbox.lease(4)
        second = await outbox.lease(4)
        assert [e.event_id for e in first] == ["e0", "e1", "e2", "e3"]
        assert [e.event_id for e in second] == ["e4", "e5"]
        assert await outbox.lease(4) == []
        await outbox.release([first[1].row_id, first[2].row_id])
        again = await outbox.lease(4)
        assert [e.event_id for e in again] == ["e1", "e2"]
        await outbox.ack([e.row_id for e in first])
        await outbox.release_all()
        rest = await outbox.lease(10)
    # Acked rows never come back, even across release_all; everything else does, in order.
    assert [e.event_id for e in rest] == ["e4", "e5"]


async def test_unacked_events_are_leased_again_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept([event(f"e{i}") for i in range(5)])
        leased = await outbox.lease(5)
        await outbox.ack([leased[0].row_id, leased[3].row_id])
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        again = await outbox.lease(10)
        epoch = outbox.store_epoch
    assert [e.event_id for e in again] == ["e1", "e2", "e4"]
    assert len(epoch) == 32


async def test_lease_can_be_limited_to_classes(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept(
            [event("t"), event("a", EventClass.ALARM), event("s", EventClass.STATUS)]
        )
        only = await outbox.lease(10, classes={EventClass.TELEMETRY, EventClass.STATUS})
    assert [e.event_id for e in only] == ["s", "t"]


async def test_wait_available_wakes_on_accept_and_release(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        waiter = asyncio.create_task(outbox.wait_available())
        await assert_still_waiting(outbox, waiter)
        await outbox.accept([event("e")])
        async with asyncio.timeout(5):
            await waiter
        leased = await outbox.lease(1)
        waiter = asyncio.create_task(outbox.wait_available())
        await assert_still_waiting(outbox, waiter)
        await outbox.release([leased[0].row_id])
        async with asyncio.timeout(5):
            await waiter


async def test_accepts_from_many_tasks_while_leasing_and_acking(tmp_path: Path) -> None:
    """Producers and the uplink run concurrently: everything accepted is delivered once."""
    n_producers, per_producer = 20, 50
    delivered: list[str] = []
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:

        async def producer(p: int) -> None:
            for i in range(0, per_producer, 5):
                batch = [
                    event(f"p{p}-{j}", EventClass(j % 5), source=f"p{p}") for j in range(i, i + 5)
                ]
                await outbox.accept(batch)

        async def uplink() -> None:
            while len(delivered) < n_producers * per_producer:
                await outbox.wait_available()
                leased = await outbox.lease(32)
                delivered.extend(e.event_id for e in leased)
                await outbox.ack([e.row_id for e in leased])

        async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
            tg.create_task(uplink())
            for p in range(n_producers):
                tg.create_task(producer(p))
        await outbox.flush()
        stats = await outbox.stats()
    assert len(delivered) == len(set(delivered)) == n_producers * per_producer
    assert stats.depth == 0
    assert stats.leased == 0


async def test_acks_are_deleted_in_batches_not_one_commit_each(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept([event(f"e{i}") for i in range(200)])
        leased = await outbox.lease(200)
        before = (await outbox.stats()).commits
        for e in leased:  # the uplink acks each PUBACK as it comes
            await outbox.ack([e.row_id])
        await outbox.flush()
        stats = await outbox.stats()
    assert stats.depth == 0
    assert stats.commits - before <= 2
