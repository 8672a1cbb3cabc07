"""accept: durable on return, idempotent by dedup key, grouped commits, alarms at once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxError, OutboxEvent
from gateway.outbox.store import LOSS_KIND
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event, orphan_blocks


def _stored_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT event_id FROM events ORDER BY row_id")]
    finally:
        conn.close()


async def test_accepted_events_are_on_disk_when_accept_returns(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        result = await outbox.accept([event("a"), event("b", EventClass.ALARM)])
        assert result.statuses == (AcceptStatus.ACCEPTED, AcceptStatus.ACCEPTED)
        # A second connection (another process would see the same) reads the committed rows.
        assert sorted(_stored_ids(db)) == ["a", "b"]
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()


async def test_duplicate_key_is_reported_not_stored_twice(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        first = await outbox.accept([event("x1", dedup_key="label:01:seq:42")])
        again = await outbox.accept(
            [event("x2", dedup_key="label:01:seq:42"), event("x3", dedup_key="label:01:seq:43")]
        )
        same_batch = await outbox.accept([event("y"), event("y")])
        stats = await outbox.stats()
    assert first.statuses == (AcceptStatus.ACCEPTED,)
    assert again.statuses == (AcceptStatus.DUPLICATE, AcceptStatus.ACCEPTED)
    assert same_batch.statuses == (AcceptStatus.ACCEPTED, AcceptStatus.DUPLICATE)
    assert _stored_ids(db) == ["x1", "x3", "y"]
    assert stats.duplicates == 2


async def test_duplicate_after_delivery_is_still_a_duplicate(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("a", dedup_key="label:02:seq:7")])
        leased = await outbox.lease(10)
        await outbox.ack([e.row_id for e in leased])
        await outbox.flush()
        assert (await outbox.stats()).depth == 0
        # The reader re-sends the frame because our serial ACK was lost.
        again = await outbox.accept([event("a", dedup_key="label:02:seq:7")])
    assert again.statuses == (AcceptStatus.DUPLICATE,)


DAY_S = 86400.0


async def test_a_key_is_a_duplicate_for_24_hours_across_delivery_and_restart(
    tmp_path: Path,
) -> None:
    """The reader may re-send a committed frame whose ACK was lost, after a back-off or when
    its serial line returns hours later: the key must still be known, even if the event was
    delivered meanwhile and the gateway restarted (docs/protocol.md: at least 24 h)."""
    db = tmp_path / "o.db"
    frame = event("f", dedup_key="label:03:seq:9")
    clock = FakeClock()
    async with Outbox(db, ROOMY, clock) as outbox:
        assert (await outbox.accept([frame])).statuses == (AcceptStatus.ACCEPTED,)
        leased = await outbox.lease(10)
        await outbox.ack([e.row_id for e in leased])
        await outbox.flush()
        assert (await outbox.stats()).depth == 0
        clock.advance(DAY_S / 2)
    rebooted = FakeClock(monotonic=1.0)  # the monotonic clock restarts; the wall clock is off
    rebooted.jump_wall(-3 * DAY_S)
    async with Outbox(db, ROOMY, rebooted) as outbox:
        rebooted.advance(DAY_S / 2 - 60.0)
        await outbox.sweep()
        late = await outbox.accept([frame])
        assert (await outbox.stats()).dedup_keys == 1
        rebooted.advance(61.0)
        await outbox.sweep()  # the day is over: the key and its stored digests are dropped
        stats = await outbox.stats()
        after_a_day = await outbox.accept([frame])
        await outbox.sweep()  # the day-old digests go from the file too
    assert late.statuses == (AcceptStatus.DUPLICATE,)
    assert stats.dedup_keys == 0
    assert after_a_day.statuses == (AcceptStatus.ACCEPTED,)
    conn = sqlite3.connect(db)
    try:
        # Only the digests of the last accept are left on disk.
        assert conn.execute("SELECT count(*) FROM seen_keys").fetchone()[0] == 1
    finally:
        conn.close()


async def test_the_key_cap_bounds_memory_keeps_the_newest_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    capped = ROOMY.model_copy(update={"dedup_max_keys": 40})
    clock = FakeClock()
    async with Outbox(db, capped, clock) as outbox:
        for i in range(0, 200, 10):
            await outbox.accept([event(f"e{j}", dedup_key=f"k{j}") for j in range(i, i + 10)])
            clock.advance(60.0)
        await outbox.sweep()
        stats = await outbox.stats()
        newest = [event(f"again{i}", dedup_key=f"k{i}") for i in range(160, 200)]
        in_memory = await outbox.accept(newest)
    async with Outbox(db, capped, FakeClock()) as outbox:
        reloaded = await outbox.accept(newest)
        oldest = await outbox.accept([event("again0", dedup_key="k0")])
    # Memory holds the newest 40 keys and at most one generation (40 / 8) more ...
    assert 40 <= stats.dedup_keys <= 45
    # ... it says how long it covers instead of the day it promises ...
    assert stats.dedup_shortened_to_s is not None
    assert stats.dedup_shortened_to_s < 10 * 60.0
    assert any("dedup_max_keys" in r.message for r in caplog.records)
    # ... the newest keys are always remembered, also across a restart ...
    assert in_memory.statuses == (AcceptStatus.DUPLICATE,) * 40
    assert reloaded.statuses == (AcceptStatus.DUPLICATE,) * 40
    # ... and the oldest fell out early: accepted again (the platform de-duplicates it by its
    # deterministic event id).
    assert oldest.statuses == (AcceptStatus.ACCEPTED,)


async def test_concurrent_accepts_share_transactions(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        before = (await outbox.stats()).commits
        results = await asyncio.gather(
            *(outbox.accept([event(f"t{i}-{j}") for j in range(5)]) for i in range(200))
        )
        stats = await outbox.stats()
    assert all(s is AcceptStatus.ACCEPTED for r in results for s in r.statuses)
    assert stats.depth == 1000
    # 200 callers, far fewer fsyncs: that is the point of group commit.
    assert stats.commits - before < 50


async def test_alarm_commits_without_waiting_for_the_window(tmp_path: Path) -> None:
    slow = ROOMY.model_copy(update={"group_commit_window_ms": 60_000.0})
    async with Outbox(tmp_path / "o.db", slow, FakeClock()) as outbox:
        async with asyncio.timeout(10):
            result = await outbox.accept([event("shock", EventClass.ALARM)])
        assert result.statuses == (AcceptStatus.ACCEPTED,)
        # A telemetry event alone waits for the window; an alarm arriving takes it along.
        waiting = asyncio.create_task(outbox.accept([event("tele")]))
        await asyncio.sleep(0)
        assert not waiting.done()
        async with asyncio.timeout(10):
            await outbox.accept([event("fire", EventClass.ALARM)])
            assert (await waiting).statuses == (AcceptStatus.ACCEPTED,)


async def test_full_group_commits_without_waiting_for_the_window(tmp_path: Path) -> None:
    slow = ROOMY.model_copy(
        update={"group_commit_window_ms": 60_000.0, "group_commit_max_events": 10}
    )
    async with Outbox(tmp_path / "o.db", slow, FakeClock()) as outbox:
        async with asyncio.timeout(10):
            result = await outbox.accept([event(f"e{i}") for i in range(10)])
    assert result.statuses == (AcceptStatus.ACCEPTED,) * 10


async def test_use_after_close_is_a_typed_error(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", ROOMY, FakeClock())
    async with outbox:
        pass
    with pytest.raises(OutboxError):
        await outbox.accept([event("late")])


async def test_pending_accepts_are_committed_on_close(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    slow = ROOMY.model_copy(update={"group_commit_window_ms": 60_000.0})
    async with Outbox(db, slow, FakeClock()) as outbox:
        task = asyncio.create_task(outbox.accept([event("last-words")]))
        await asyncio.sleep(0)
    assert (await task).statuses == (AcceptStatus.ACCEPTED,)
    assert _stored_ids(db) == ["last-words"]


_text = st.text(min_size=0, max_size=40)
_events = st.lists(
    st.builds(
        OutboxEvent,
        event_id=st.text(min_size=1, max_size=40),
        event_class=st.sampled_from(EventClass),
        kind=_text,
        payload=st.binary(max_size=600),
        dedup_key=st.none() | st.text(min_size=1, max_size=20),
        source=_text,
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(_events, min_size=1, max_size=4))
async def test_any_input_keeps_the_store_consistent(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[OutboxEvent]]
) -> None:
    """Arbitrary ids, payloads and keys: every key accepted once, every accepted event either
    stored as it came (inline or in a payload block) or counted as evicted, and the totals
    match the file."""
    db = tmp_path_factory.mktemp("fuzz") / "o.db"
    cap = ROOMY.model_copy(update={"max_bytes": 8000})
    accepted: list[OutboxEvent] = []
    async with Outbox(db, cap, FakeClock()) as outbox:
        for batch in batches:
            result = await outbox.accept(batch)
            assert len(result.statuses) == len(batch)
            accepted += [
                e for e, s in zip(batch, result.statuses, strict=True) if s is AcceptStatus.ACCEPTED
            ]
        stats = await outbox.stats()
        leased = await outbox.lease(10_000)
    conn = sqlite3.connect(db)
    try:
        sizes = conn.execute("SELECT coalesce(sum(size), 0) FROM events").fetchone()[0]
    finally:
        conn.close()
    keys = [e.key for e in accepted]
    assert len(keys) == len(set(keys))
    # The store's own loss records, by their id (a fuzzed event may use any kind).
    loss = f"{LOSS_KIND}:{stats.store_epoch}:"
    stored = Counter(
        (e.event_id, e.kind, e.source, e.payload) for e in leased if not e.event_id.startswith(loss)
    )
    came = Counter((e.event_id, e.kind, e.source, e.payload) for e in accepted)
    assert stored <= came
    evicted = sum(n.count for n in stats.losses if n.reason == "evicted")
    assert came.total() - stored.total() == evicted
    assert len(leased) == stats.depth
    assert sizes == stats.total_bytes
    assert orphan_blocks(db) == 0
    # Over the cap only by loss records, which bypass it so that losses are never silent.
    assert stats.total_bytes <= cap.max_bytes + 600 * (stats.lost > 0) * len(batches)


async def test_an_accept_does_not_wait_behind_a_slow_ack_batch(tmp_path: Path) -> None:
    lazy_acks = ROOMY.model_copy(update={"ack_flush_delay_ms": 60_000.0})
    async with Outbox(tmp_path / "o.db", lazy_acks, FakeClock()) as outbox:
        await outbox.accept([event("a")])
        leased = await outbox.lease(1)
        await outbox.ack([e.row_id for e in leased])
        for _ in range(3):  # let the flusher wake and start waiting out the ack delay
            await asyncio.sleep(0)
        assert (await outbox.stats()).leased == 1  # the ack is held back, not committed
        async with asyncio.timeout(5):
            result = await outbox.accept([event("b")])
        # The ack rode along in the same commit.
        stats = await outbox.stats()
    assert result.statuses == (AcceptStatus.ACCEPTED,)
    assert stats.depth == 1
    assert stats.leased == 0
