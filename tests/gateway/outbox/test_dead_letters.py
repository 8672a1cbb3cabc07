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


async def test_requeue_skips_a_key_queued_again_meanwhile(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("e", dedup_key="label:9:seq:1")])
        (leased,) = await outbox.lease(1)
        await outbox.reject([leased.row_id], "rejected")
        # Not in the queue any more, so the same key is accepted again...
        result = await outbox.accept([event("e", dedup_key="label:9:seq:1")])
        assert result.statuses == (AcceptStatus.ACCEPTED,)
        # ... and the dead letter is then dropped as a duplicate, not queued twice.
        assert await outbox.requeue_dead() == 0
        stats = await outbox.stats()
    assert stats.depth == 1
    assert stats.dead_letters == 0
