"""The event writer in front of a real outbox: grouped commits, drain on close, counted drops."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from foundation.clock import SystemClock
from gateway.outbox import EventClass, Outbox, OutboxConfig, OutboxEvent
from gateway.pipeline.writer import EventWriter


def ev(n: int) -> OutboxEvent:
    return OutboxEvent(f"e{n}", EventClass.PRESENCE, "presence.enter", b"{}", source="tag")


def stored(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


async def test_everything_submitted_before_close_is_committed(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    async with Outbox(db, OutboxConfig(), SystemClock()) as outbox:
        writer = EventWriter(outbox, SystemClock(), maxsize=10_000)
        task = asyncio.create_task(writer.run())
        for i in range(0, 3_000, 100):
            writer.submit(ev(n) for n in range(i, i + 100))
            await asyncio.sleep(0)
        writer.submit([ev(0)])  # a duplicate of a committed event
        writer.close()
        await task
        assert writer.committed == 3_000
        assert writer.duplicates == 1
        assert writer.depth == 0
    assert stored(db) == 3_000


async def test_a_full_queue_drops_newest_and_counts_them(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", OutboxConfig(), SystemClock()) as outbox:
        writer = EventWriter(outbox, SystemClock(), maxsize=100)
        writer.submit(ev(n) for n in range(150))  # nothing drains while we do not yield
        assert (writer.depth, writer.dropped, writer.submitted) == (100, 50, 150)
        writer.close()
        await writer.run()
        assert writer.committed == 100
