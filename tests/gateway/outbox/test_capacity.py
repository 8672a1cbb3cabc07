"""Byte cap, per-class TTL on a clock that ignores wall-clock jumps, losses, disk full."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import (
    LOSS_KIND,
    AcceptStatus,
    EventClass,
    LeasedEvent,
    Outbox,
    OutboxConfig,
    OutboxError,
    OutboxErrorReason,
)
from tests.gateway.outbox.helpers import ROOMY, FakeClock, assert_still_waiting, event

HOUR_S = 3600.0


def _ttl_config() -> OutboxConfig:
    ttl: dict[EventClass, float | None] = {c: None for c in EventClass}
    ttl[EventClass.TELEMETRY] = 2 * HOUR_S
    ttl[EventClass.STATUS] = 10 * HOUR_S
    return ROOMY.model_copy(update={"ttl_s": ttl})


def _losses(leased: list[LeasedEvent]) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in leased if e.kind == LOSS_KIND]


async def test_ttl_expires_on_elapsed_time_not_wall_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    async with Outbox(tmp_path / "o.db", _ttl_config(), clock) as outbox:
        await outbox.accept([event("old-tele"), event("old-status", EventClass.STATUS)])
        clock.jump_wall(10 * 365 * 86400.0)  # the RTC jumps ten years ahead
        assert await outbox.sweep() == 0
        clock.advance(HOUR_S)
        (tele,) = await outbox.lease(1, classes={EventClass.TELEMETRY})
        assert tele.expires_in_s == pytest.approx(HOUR_S)
        await outbox.release_all()
        clock.jump_wall(-20 * 365 * 86400.0)  # ... and then twenty years back
        clock.advance(HOUR_S + 1)
        assert await outbox.sweep() == 1
        leased = await outbox.lease(10)
        stats = await outbox.stats()
    assert [e.event_id for e in leased if e.kind != LOSS_KIND] == ["old-status"]
    (loss,) = _losses(leased)
    assert loss["count"] == 1
    assert loss["losses"] == [{"class": "telemetry", "reason": "expired", "count": 1}]
    assert loss["first_event_id"] == loss["last_event_id"] == "old-tele"
    assert [(x.event_class, x.reason, x.count) for x in stats.losses] == [
        (EventClass.TELEMETRY, "expired", 1)
    ]


async def test_expired_events_are_not_leased_even_before_the_sweep(tmp_path: Path) -> None:
    clock = FakeClock()
    async with Outbox(tmp_path / "o.db", _ttl_config(), clock) as outbox:
        await outbox.accept([event("t0")])
        clock.advance(HOUR_S)
        await outbox.accept([event("t1")])
        clock.advance(HOUR_S + 1)
        leased = await outbox.lease(10)
        # ... and the lease swept it: only its loss record is left to lease, then nothing
        # wakes the uplink.
        stats = await outbox.stats()
        (loss,) = await outbox.lease(10)
        assert loss.kind == LOSS_KIND
        waiter = asyncio.create_task(outbox.wait_available())
        await assert_still_waiting(outbox, waiter)
        waiter.cancel()
    assert [e.event_id for e in leased] == ["t1"]
    assert leased[0].expires_in_s == pytest.approx(HOUR_S - 1)
    assert stats.depth == 2  # t1 (leased) and the loss record for t0
    assert stats.lost == 1


async def test_age_is_carried_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    clock = FakeClock(monotonic=10_000.0)
    async with Outbox(db, _ttl_config(), clock) as outbox:
        await outbox.accept([event("t")])
        clock.advance(1.5 * HOUR_S)
    # Reboot: the monotonic clock restarts near zero, the wall clock is wrong (no RTC).
    rebooted = FakeClock(monotonic=3.0)
    rebooted.jump_wall(-400 * 86400.0)
    async with Outbox(db, _ttl_config(), rebooted) as outbox:
        (alive,) = await outbox.lease(1)
        assert alive.expires_in_s == pytest.approx(0.5 * HOUR_S)
        await outbox.release_all()
        rebooted.advance(0.5 * HOUR_S + 1)
        assert await outbox.sweep() == 1


async def test_a_power_cut_keeps_the_store_clock(tmp_path: Path) -> None:
    """The store clock rides in each commit, not only in a clean close: after a power cut the
    ages (and so the TTLs) carry on from the last commit."""
    db = tmp_path / "o.db"
    cut = tmp_path / "cut"
    cut.mkdir()
    clock = FakeClock()
    async with Outbox(db, _ttl_config(), clock) as outbox:
        await outbox.accept([event("t0")])
        clock.advance(HOUR_S)
        await outbox.accept([event("t1")])
        # The power goes now: what is on the card is the main file and the committed WAL.
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{db}{suffix}", cut / f"o.db{suffix}")
    async with Outbox(cut / "o.db", _ttl_config(), FakeClock(monotonic=1.0)) as outbox:
        leased = await outbox.lease(10)
    assert [e.event_id for e in leased] == ["t0", "t1"]
    assert [e.expires_in_s for e in leased] == [pytest.approx(HOUR_S), pytest.approx(2 * HOUR_S)]


async def test_eviction_takes_oldest_of_the_lowest_class_first(tmp_path: Path) -> None:
    # Each event counts ~380 bytes; 10 fit.
    config = ROOMY.model_copy(update={"max_bytes": 10 * 380})
    async with Outbox(tmp_path / "o.db", config, FakeClock()) as outbox:
        await outbox.accept([event(f"p{i}", EventClass.PRESENCE) for i in range(3)])
        await outbox.accept([event(f"t{i}") for i in range(5)])
        await outbox.accept([event(f"a{i}", EventClass.ALARM) for i in range(2)])
        result = await outbox.accept([event(f"h{i}", EventClass.HANDOFF) for i in range(3)])
        assert result.statuses == (AcceptStatus.ACCEPTED,) * 3
        stats = await outbox.stats()
        leased = await outbox.lease(50)
    ids = [e.event_id for e in leased if e.kind != LOSS_KIND]
    # Three handoffs in: the three oldest telemetry rows (and the loss record's room) out.
    assert not {"t0", "t1", "t2"} & set(ids)
    assert {"a0", "a1", "h0", "h1", "h2", "p0", "p1", "p2"} <= set(ids)
    (loss,) = _losses(leased)
    assert loss["first_event_id"] == "t0"
    evicted = {x.event_class: x.count for x in stats.losses if x.reason == "evicted"}
    assert set(evicted) == {EventClass.TELEMETRY}
    assert loss["count"] == evicted[EventClass.TELEMETRY]


async def test_alarms_are_never_evicted_for_telemetry(tmp_path: Path) -> None:
    config = ROOMY.model_copy(update={"max_bytes": 4 * 380})
    async with Outbox(tmp_path / "o.db", config, FakeClock()) as outbox:
        await outbox.accept([event(f"a{i}", EventClass.ALARM) for i in range(4)])
        refused = await outbox.accept([event("t0"), event("t1")])
        # A new alarm may push out the oldest alarm: the newest evidence wins, and it is reported.
        alarm = await outbox.accept([event("a4", EventClass.ALARM)])
        stats = await outbox.stats()
        leased = await outbox.lease(20)
    assert refused.statuses == (AcceptStatus.REFUSED, AcceptStatus.REFUSED)
    assert alarm.statuses == (AcceptStatus.ACCEPTED,)
    assert stats.refused == 2
    alarms = [e.event_id for e in leased if e.event_class is EventClass.ALARM]
    assert alarms[-1] == "a4"
    assert "a0" not in alarms


async def test_leased_rows_are_not_evicted(tmp_path: Path) -> None:
    config = ROOMY.model_copy(update={"max_bytes": 4 * 380})
    async with Outbox(tmp_path / "o.db", config, FakeClock()) as outbox:
        await outbox.accept([event(f"t{i}") for i in range(4)])
        in_flight = await outbox.lease(2)
        await outbox.accept([event("t4")])
        await outbox.ack([e.row_id for e in in_flight])
        await outbox.flush()
        rest = await outbox.lease(20)
    assert [e.event_id for e in in_flight] == ["t0", "t1"]
    # t2 made room (oldest unleased), not the in-flight t0 / t1.
    assert "t2" not in [e.event_id for e in rest]
    assert "t4" in [e.event_id for e in rest]


@contextlib.contextmanager
def _failing_writes(path: Path) -> Iterator[None]:
    """A real write fault under SQLite: the store's open file descriptors for ``path`` (the
    writer's and the checkpointer's connection) are swapped for a read-only one on the same
    file, so reads work and every write(2) fails with EBADF, as on a card that fails its
    writes. The original descriptors are put back after."""
    target = str(path)
    fds = [
        int(name)
        for name in os.listdir("/proc/self/fd")
        if os.path.realpath(f"/proc/self/fd/{name}") == os.path.realpath(target)
    ]
    assert fds
    saved = [os.dup(fd) for fd in fds]
    read_only = os.open(target, os.O_RDONLY)
    try:
        for fd in fds:
            os.dup2(read_only, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(read_only)


async def test_a_write_error_is_typed_rolled_back_and_survived(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("before")])
        with _failing_writes(Path(f"{db}-wal")):
            with pytest.raises(OutboxError) as excinfo:
                await outbox.accept([event("during")])
            assert excinfo.value.reason is OutboxErrorReason.IO_ERROR
            # Acks fail the same way; the rows stay stored and leased, the flusher retries.
            (before,) = await outbox.lease(1)
            await outbox.ack([before.row_id])
            stats = await outbox.stats()
            assert stats.depth == 1  # nothing half-counted
            assert stats.leased == 1
        after = await outbox.accept([event("during"), event("after")])
        await outbox.flush()  # the retried ack goes through now
        leased = await outbox.lease(10)
        final = await outbox.stats()
    assert after.statuses == (AcceptStatus.ACCEPTED, AcceptStatus.ACCEPTED)
    assert [e.event_id for e in leased] == ["during", "after"]
    assert final.depth == 2
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


async def test_expired_rows_go_before_live_ones_at_the_cap(tmp_path: Path) -> None:
    clock = FakeClock()
    ttl: dict[EventClass, float | None] = {c: None for c in EventClass}
    ttl[EventClass.PRESENCE] = HOUR_S
    config = ROOMY.model_copy(update={"max_bytes": 4 * 380, "ttl_s": ttl})
    async with Outbox(tmp_path / "o.db", config, clock) as outbox:
        await outbox.accept([event("p-old", EventClass.PRESENCE)])
        await outbox.accept([event(f"t{i}") for i in range(3)])
        clock.advance(2 * HOUR_S)  # p-old has expired; no sweep has run yet
        await outbox.accept([event("t3")])
        stats = await outbox.stats()
        leased = await outbox.lease(10)
    ids = [e.event_id for e in leased if e.kind != LOSS_KIND]
    # A presence row outranks telemetry, but an expired one goes first.
    assert ids == ["t0", "t1", "t2", "t3"]
    reasons = {(x.event_class, x.reason): x.count for x in stats.losses}
    assert reasons == {(EventClass.PRESENCE, "expired"): 1}
