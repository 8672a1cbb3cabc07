"""Alarm latency under a drain: alarms jump the writer's queue, checkpoints run beside it.

Order is asserted by what the queued work saw or by the order jobs finished, never by timing.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from pathlib import Path

from gateway.outbox import EventClass, Outbox
from gateway.outbox.store import CHECKPOINT_BACKSTOP_FACTOR
from gateway.outbox.writer import WriterJobOrder, WriterThread
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event

#: Loop turns that let freshly created tasks hand their jobs to the writer thread (no I/O in
#: between: the tasks' first steps only queue work).
_TURNS = 20


async def _turns() -> None:
    for _ in range(_TURNS):
        await asyncio.sleep(0)


def test_writer_runs_accept_jobs_ahead_of_queued_normal_jobs_in_order() -> None:
    writer = WriterThread("test-writer")
    done: list[str] = []
    started = threading.Event()
    gate = threading.Event()

    def busy() -> None:
        started.set()
        gate.wait(10)
        done.append("busy")

    try:
        blocked = writer.submit(WriterJobOrder.NORMAL, busy)
        assert started.wait(10)
        queued = [
            writer.submit(WriterJobOrder.NORMAL, lambda: done.append("lease")),
            writer.submit(WriterJobOrder.NORMAL, lambda: done.append("ack batch")),
            writer.submit(WriterJobOrder.ACCEPT, lambda: done.append("alarm 1")),
            writer.submit(WriterJobOrder.NORMAL, lambda: done.append("sweep")),
            writer.submit(WriterJobOrder.ACCEPT, lambda: done.append("alarm 2")),
        ]
        gate.set()
        for future in (blocked, *queued):
            future.result(timeout=10)
    finally:
        gate.set()
        writer.shutdown()
    # The running job finishes first (a transaction is never interrupted); then the accepts,
    # in the order they came; then the rest, in the order they came.
    assert done == ["busy", "alarm 1", "alarm 2", "lease", "ack batch", "sweep"]


def test_writer_shutdown_runs_what_was_queued_first() -> None:
    writer = WriterThread("test-writer")
    done: list[int] = []
    futures = [
        writer.submit(WriterJobOrder.NORMAL, functools.partial(done.append, i)) for i in range(5)
    ]
    writer.shutdown()
    assert all(f.done() for f in futures)
    assert done == [0, 1, 2, 3, 4]


async def test_a_queued_alarm_is_leased_ahead_of_the_backlog(
    tmp_path: Path,
) -> None:
    db = tmp_path / "o.db"
    config = ROOMY.model_copy(update={"ack_batch_max": 100})
    async with Outbox(db, config, FakeClock()) as outbox:
        await outbox.accept([event(f"t{i}") for i in range(300)])
        leased = await outbox.lease(200)
        # Another connection holds the write lock: the writer thread stalls in the next
        # transaction (it waits for the lock), and everything after it queues up.
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            first_alarm = asyncio.create_task(outbox.accept([event("a1", EventClass.ALARM)]))
            await _turns()
            # 200 acks >= ack_batch_max: an ack-only commit is handed to the writer at once.
            await outbox.ack([e.row_id for e in leased])
            queued_lease = asyncio.create_task(outbox.lease(3))
            await _turns()
            second_alarm = asyncio.create_task(outbox.accept([event("a2", EventClass.ALARM)]))
            await _turns()
            assert not first_alarm.done()
            assert not queued_lease.done()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await asyncio.gather(first_alarm, second_alarm)
        lease = await queued_lease
        await outbox.flush()
        stats = await outbox.stats()
    # a1's commit was queued before the lease: the lease ran after it and hands a1 out first,
    # ahead of the backlog. a2 reaches the writer only once a1's commit has come back to the
    # loop, so whether it overtakes the lease is a race; when it does, it too comes first.
    ids = [e.event_id for e in lease]
    assert ids[0] == "a1"
    assert ids[1:] in (["a2", "t200"], ["t200", "t201"])
    assert stats.depth == 300 + 2 - 200  # the ack batch went through too


async def test_checkpoints_run_beside_the_writer_at_the_threshold(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    pages = 64
    config = ROOMY.model_copy(update={"checkpoint_pages": pages})
    async with Outbox(db, config, FakeClock()) as outbox:
        checkpointer = outbox._store._checkpointer
        assert checkpointer is not None
        # Well past the threshold: each 40-event commit writes about 4 pages of rows.
        for i in range(100):
            await outbox.accept([event(f"t{i}-{j}") for j in range(40)])
            leased = await outbox.lease(40)
            await outbox.ack([e.row_id for e in leased])
        await outbox.flush()
        frames = checkpointer.wal.frames()
        assert checkpointer.checkpoints >= 1
    assert frames is not None
    # The background checkpoints let the writer restart the WAL long before its own backstop
    # checkpoint (inside a commit) would have fired.
    assert frames[0] < pages * CHECKPOINT_BACKSTOP_FACTOR


async def test_a_pile_of_acks_is_deleted_in_transactions_of_at_most_ack_batch_max(
    tmp_path: Path,
) -> None:
    config = ROOMY.model_copy(update={"ack_batch_max": 100})
    async with Outbox(tmp_path / "o.db", config, FakeClock()) as outbox:
        await outbox.accept([event(f"t{i}") for i in range(300)])
        leased = await outbox.lease(250)
        before = (await outbox.stats()).commits
        await outbox.ack([e.row_id for e in leased])
        await outbox.flush()
        stats = await outbox.stats()
    # No single transaction holds the writer for all 250 deletes (an alarm may be waiting).
    assert stats.commits - before == 3
    assert stats.depth == 50


async def test_alarms_arriving_while_an_alarm_commits_share_the_next_commit(
    tmp_path: Path,
) -> None:
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        before = (await outbox.stats()).commits
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            first = asyncio.create_task(outbox.accept([event("a0", EventClass.ALARM)]))
            await _turns()
            rest = [
                asyncio.create_task(outbox.accept([event(f"a{i}", EventClass.ALARM)]))
                for i in range(1, 11)
            ]
            await _turns()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await asyncio.gather(first, *rest)
        stats = await outbox.stats()
    # Group commit holds for alarms too: one fsync for the ten that waited, not ten.
    assert stats.commits - before == 2
    assert stats.depth == 11
