"""reject moves rows to dead letters (kept, counted, inspectable); they can be re-queued."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.outbox import AcceptStatus, EventClass, Outbox
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event


async def test_rejected_rows_become_dead_letters_and_can_be_requeued(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("ok"), event("bad", EventClass.HANDOFF), event("bad2")])
        leased = await outbox.lease(10)
        bad = [e.row_id for e in leased if e.event_id.startswith("bad")]
        await outbox.reject(bad, "payload rejected: 0x99 payload format invalid")
        await outbox.ack([e.row_id for e in leased if e.event_id == "ok"])
        await outbox.flush()
        stats = await outbox.stats()
        assert stats.dead_letters == 2
        assert stats.depth == 0
        assert await outbox.lease(10) == []
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT event_id, event_class, reason FROM dead_letters").fetchall()
    finally:
        conn.close()
    assert sorted(rows) == [
        ("bad", int(EventClass.HANDOFF), "payload rejected: 0x99 payload format invalid"),
        ("bad2", int(EventClass.TELEMETRY), "payload rejected: 0x99 payload format invalid"),
    ]
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        assert await outbox.requeue_dead() == 2
        again = await outbox.lease(10)
        stats = await outbox.stats()
    assert [(e.event_id, e.event_class) for e in again] == [
        ("bad", EventClass.HANDOFF),
        ("bad2", EventClass.TELEMETRY),
    ]
    assert stats.dead_letters == 0


async def test_a_dead_lettered_key_stays_a_duplicate(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("e", dedup_key="label:9:seq:1")])
        (leased,) = await outbox.lease(1)
        await outbox.reject([leased.row_id], "rejected")
        # The reader re-sends the frame: it was accepted once, so it is not queued again...
        result = await outbox.accept([event("e", dedup_key="label:9:seq:1")])
        assert result.statuses == (AcceptStatus.DUPLICATE,)
        # ... only the operator's requeue brings it back.
        assert await outbox.requeue_dead() == 1
        stats = await outbox.stats()
    assert stats.depth == 1
    assert stats.dead_letters == 0
