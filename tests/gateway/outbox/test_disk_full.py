"""A really full file system (a small tmpfs): eviction, alarms, acks, recovery, shutdown.

``PRAGMA max_page_count`` limits only the main file, never the WAL, so it cannot show what a
full card does to SQLite: every transaction (an eviction, the delete of acknowledged rows)
must first write its pages to the WAL. These tests mount a real 3 MB file system.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import (
    LOSS_KIND,
    AcceptStatus,
    EventClass,
    Outbox,
    OutboxError,
    OutboxErrorReason,
)
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event, fill, shrink, small_filesystem

#: The events of the tests: ~4 per commit, as a reader's frames arrive.
BATCH = 4


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "fs") as mount:
        yield mount


async def _fill_store(
    outbox: Outbox, batches: int, tag: str = "t", batch: int = BATCH, size: int = 300
) -> tuple[int, int]:
    """Accept ``batches`` batches of telemetry; return (accepted, DISK_FULL errors)."""
    accepted = errors = 0
    reasons: set[OutboxErrorReason] = set()
    for i in range(batches):
        try:
            result = await outbox.accept([event(f"{tag}{i}-{j}", size=size) for j in range(batch)])
        except OutboxError as exc:
            reasons.add(exc.reason)
            errors += 1
            continue
        accepted += result.statuses.count(AcceptStatus.ACCEPTED)
    assert reasons <= {OutboxErrorReason.DISK_FULL}
    return accepted, errors


@pytest.mark.parametrize(
    ("batches", "batch", "size"),
    [
        (3000, BATCH, 300),  # inline payloads: about twice what the 3 MB hold
        (800, 8, 900),  # a payload block per commit: eviction frees whole blocks
    ],
)
async def test_a_full_disk_evicts_by_the_rules_and_keeps_accepting(
    disk: Path, batches: int, batch: int, size: int
) -> None:
    """The file system fills up (with the store's own events): telemetry is evicted, alarms
    still get in by evicting telemetry, and acked rows are deleted."""
    async with Outbox(disk / "o.db", ROOMY, FakeClock()) as outbox:
        accepted, errors = await _fill_store(outbox, batches, batch=batch, size=size)
        stats = await outbox.stats()
        assert stats.disk_full_cap_bytes is not None  # it did hit the disk's limit
        assert errors == 0
        assert accepted == batches * batch
        evicted = sum(x.count for x in stats.losses if x.reason == "evicted")
        assert evicted > accepted // 3
        # The disk is still full; an alarm gets in by evicting telemetry.
        alarm = await outbox.accept([event("alarm", EventClass.ALARM, size=3000)])
        assert alarm.statuses == (AcceptStatus.ACCEPTED,)
        # Acked rows are deleted.
        rows = await outbox.lease(200)
        assert rows[0].event_id == "alarm"
        await outbox.ack([e.row_id for e in rows])
        await outbox.flush()
        after = await outbox.stats()
        assert after.leased == 0
        assert after.depth <= stats.depth + 1 - 200
        # ... and the rest is all there and in order: the newest telemetry.
        rest = [e.event_id for e in await outbox.lease(100_000) if e.kind != LOSS_KIND]
    assert len(rest) == sum(c.depth for c in after.classes if c.event_class != EventClass.STATUS)
    every = [f"t{i}-{j}" for i in range(batches) for j in range(batch)]
    assert rest == every[len(every) - len(rest) :]


async def test_the_store_recovers_as_soon_as_a_little_space_returns(disk: Path) -> None:
    async with Outbox(disk / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("seed")])
        ballast = fill(disk, leave_bytes=600 * 1024)
        await _fill_store(outbox, 1000, "a")
        capped = await outbox.stats()
        assert capped.disk_full_cap_bytes is not None
        # Another program frees 1 MB: the next commits use it, no cap lingers.
        shrink(ballast, 1024 * 1024)
        accepted, errors = await _fill_store(outbox, 200, "b")
        freed = await outbox.stats()
    assert (accepted, errors) == (200 * BATCH, 0)
    assert freed.disk_full_cap_bytes is None
    evicted = sum(x.count for x in capped.losses if x.reason == "evicted")
    # Nothing more was evicted: the 800 new events went into the space that came back.
    assert sum(x.count for x in freed.losses if x.reason == "evicted") == evicted
    assert freed.total_bytes > capped.total_bytes + 200 * BATCH * 300


async def test_release_and_flush_do_not_raise_and_close_is_bounded_on_a_full_disk(
    disk: Path,
) -> None:
    """1,500 acks that cannot be written (the disk is full to the last byte, no reserve):
    release_all keeps them leased instead of raising, flush returns, and close gives up on
    them within its bound (they are sent again after the restart)."""
    config = ROOMY.model_copy(update={"disk_reserve_bytes": 0, "ack_batch_max": 1000})
    db = disk / "o.db"
    async with Outbox(db, config, FakeClock()) as outbox:
        for i in range(4):
            await outbox.accept([event(f"t{i}-{j}", size=200) for j in range(500)])
        rows = await outbox.lease(1500)
        # The WAL given back to the file system, and every byte of it taken.
        await outbox._call(
            lambda: outbox._store._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        )
        fill(disk)
        await outbox.ack([e.row_id for e in rows])
        async with asyncio.timeout(10):
            await outbox.flush()
            await outbox.release_all()
        again = await outbox.lease(10_000)
        assert not {e.row_id for e in again} & {e.row_id for e in rows}
        started = time.monotonic()
    closed_in_s = time.monotonic() - started
    assert closed_in_s < 5.0
    (disk / "ballast").unlink()
    async with Outbox(db, config, FakeClock()) as outbox:
        assert (await outbox.stats()).depth == 2000  # the acks were not written: sent again


async def test_failed_commits_are_logged_once_per_burst(
    disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ROOMY.model_copy(update={"disk_reserve_bytes": 0})
    async with Outbox(disk / "o.db", config, FakeClock()) as outbox:
        await outbox.accept([event(f"a{i}", EventClass.ALARM) for i in range(50)])
        await outbox._call(
            lambda: outbox._store._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        )
        fill(disk)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="gateway.outbox"):
            # Alarms only, nothing they may evict for telemetry: every commit fails.
            _accepted, errors = await _fill_store(outbox, 300)
    assert errors == 300
    lines = [r for r in caplog.records if r.name.startswith("gateway.outbox")]
    assert 1 <= len(lines) <= 4, [r.getMessage() for r in lines]
