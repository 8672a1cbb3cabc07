"""Payload blocks: the payloads of one class in one commit are stored together and deleted
with the last of their events, whichever way the events leave (ack, eviction, expiry, dead
letter)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.outbox import EventClass, Outbox, OutboxError, OutboxEvent
from gateway.outbox.inspection import iter_rows
from gateway.outbox.schema import BLOCK_MAX_BYTES, BLOCK_MIN_BYTES
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event, orphan_blocks


def _blocks(db: Path) -> list[tuple[int, int, int]]:
    """(first row id, last row id, bytes) of every payload block."""
    conn = sqlite3.connect(db)
    try:
        return [
            (int(a), int(b), int(n))
            for a, b, n in conn.execute(
                "SELECT first_row_id, last_row_id, length(data) FROM payload_blocks ORDER BY id"
            )
        ]
    finally:
        conn.close()


async def _two_blocks(outbox: Outbox) -> tuple[list[OutboxEvent], list[OutboxEvent]]:
    """Two commits of 20 telemetry events: two payload blocks; returns what went in."""
    first = [event(f"a{i}", size=300) for i in range(20)]
    second = [event(f"b{i}", size=300) for i in range(20)]
    await outbox.accept(first)
    await outbox.accept(second)
    return first, second


def _inline(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE payload IS NOT NULL").fetchone()[0]
        )
    finally:
        conn.close()


async def test_one_commit_of_a_class_shares_a_block_and_reads_back_whole(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    # 30 x 300 bytes of one class: above a page, so one block; one alarm alone stays inline.
    batch = [event(f"t{i}", size=300) for i in range(30)] + [event("a", EventClass.ALARM)]
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept(batch)
        blocks = _blocks(db)
        assert len(blocks) == 1
        assert blocks[0][2] == sum(len(e.payload) for e in batch[:30])
        assert _inline(db) == 1
        leased = await outbox.lease(100)
    assert {e.event_id: e.payload for e in leased} == {e.event_id: e.payload for e in batch}


async def test_a_block_goes_with_its_last_event(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    batch = [event(f"t{i}", size=400) for i in range(20)]
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept(batch)
        leased = await outbox.lease(20)
        await outbox.ack([e.row_id for e in leased[:19]])
        await outbox.flush()
        assert len(_blocks(db)) == 1  # one event still refers to it
        await outbox.release([leased[19].row_id])
        (last,) = await outbox.lease(5)
        assert last.payload == batch[19].payload
        await outbox.ack([last.row_id])
        await outbox.flush()
        assert _blocks(db) == []
        assert (await outbox.stats()).depth == 0


async def test_blocks_are_freed_by_eviction_expiry_and_dead_letters(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    clock = FakeClock()
    config = ROOMY.model_copy(
        update={"ttl_s": {**ROOMY.ttl_s, EventClass.PRESENCE: 60.0}, "max_bytes": 50_000}
    )
    async with Outbox(db, config, clock) as outbox:
        presence = [event(f"p{i}", EventClass.PRESENCE, size=500) for i in range(20)]
        handoff = [event(f"h{i}", EventClass.HANDOFF, size=500) for i in range(20)]
        telemetry = [event(f"t{i}", size=500) for i in range(40)]
        await outbox.accept(presence + handoff + telemetry)
        assert len(_blocks(db)) == 3
        # Expiry: the presence block goes with its events.
        clock.advance(61.0)
        await outbox.sweep()
        # Dead letters keep their payload inline: the handoff block goes, the bytes stay.
        rows = await outbox.lease(20, classes=[EventClass.HANDOFF])
        await outbox.reject([e.row_id for e in rows], "schema")
        (old,) = [first for first, _, _ in _blocks(db)]
        # Eviction: more new telemetry than the cap pushes all the old telemetry (and its
        # block) out, and the oldest of the new.
        await outbox.accept([event(f"n{i}", size=500) for i in range(100)])
        ((new, _, _),) = _blocks(db)
        stats = await outbox.stats()
        assert new != old
        assert new >> 48 == EventClass.TELEMETRY
        assert {(c.event_class, c.reason) for c in stats.losses} >= {
            (EventClass.PRESENCE, "expired"),
            (EventClass.TELEMETRY, "evicted"),
        }
        assert await outbox.requeue_dead() == 20
        again = await outbox.lease(20, classes=[EventClass.HANDOFF])
    assert sorted(e.payload for e in again) == sorted(e.payload for e in handoff)
    # Only telemetry blocks still referred to remain; none is orphaned.
    assert orphan_blocks(db) == 0


async def test_a_large_commit_is_split_into_blocks_of_bounded_size(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    size = 1000
    count = 3 * BLOCK_MAX_BYTES // size
    batch = [event(f"t{i}", size=size) for i in range(count)]
    config = ROOMY.model_copy(update={"group_commit_max_events": count})
    async with Outbox(db, config, FakeClock()) as outbox:
        await outbox.accept(batch)
        blocks = _blocks(db)
        leased = await outbox.lease(count)
    assert len(blocks) >= 3
    assert all(BLOCK_MIN_BYTES <= n <= BLOCK_MAX_BYTES for _, _, n in blocks)
    assert sum(n for _, _, n in blocks) == size * count
    assert [e.payload for e in leased] == [e.payload for e in batch]


async def test_blocks_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    batch = [event(f"t{i}", size=300) for i in range(40)]
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept(batch)
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        leased = await outbox.lease(10)
        await outbox.ack([e.row_id for e in leased])
        await outbox.accept([event(f"u{i}", size=300) for i in range(40)])
        rest = await outbox.lease(100)
    assert [e.payload for e in leased + rest[:30]] == [e.payload for e in batch]
    assert len(rest) == 70


async def test_a_failed_block_read_leaves_nothing_leased(tmp_path: Path) -> None:
    """A lease that fails halfway (here a block gone missing under the store, as a damaged
    file would have it) hands out nothing and keeps nothing leased: once the block is back,
    the next lease gets every event."""
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        first, second = await _two_blocks(outbox)
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            ((block, *row),) = conn.execute(
                "SELECT id, first_row_id, last_row_id, data FROM payload_blocks "
                "ORDER BY id DESC LIMIT 1"
            ).fetchall()
            conn.execute("DELETE FROM payload_blocks WHERE id = ?", (block,))
            with pytest.raises(OutboxError) as excinfo:
                await outbox.lease(100)
            stats = await outbox.stats()
            conn.execute("INSERT INTO payload_blocks VALUES (?, ?, ?, ?)", (block, *row))
        finally:
            conn.close()
        leased = await outbox.lease(100)
    assert "payload block" in str(excinfo.value)
    assert stats.leased == 0
    assert [e.payload for e in leased] == [e.payload for e in first + second]


async def test_an_export_reads_one_snapshot_while_the_daemon_writes(tmp_path: Path) -> None:
    """``tagrelay outbox export`` beside a running daemon: while the export is at its last
    row, the daemon delivers that row (its payload block goes with it) and commits new
    events. The export still shows the events as they were when it started, each with its
    own payload."""
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        first, second = await _two_blocks(outbox)
        # Deliver all of the second block but its first event: the last row the export
        # reads is then the only one in its block.
        leased = await outbox.lease(100)
        await outbox.ack([e.row_id for e in leased[21:]])
        await outbox.release([e.row_id for e in leased[:21]])
        await outbox.flush()
        rows = iter_rows(db)
        seen = [next(rows) for _ in range(20)]
        leased = await outbox.lease(100)
        await outbox.ack([e.row_id for e in leased])
        await outbox.flush()
        await outbox.accept([event(f"new{i}", size=300) for i in range(40)])
        seen += list(rows)
    expected = [*first, second[0]]
    assert [r["event_id"] for r in seen] == [e.event_id for e in expected]
    assert [r["payload"] for r in seen] == [json.loads(e.payload) for e in expected]
