"""Shared pieces of the outbox tests: a fake clock, event builders and file helpers."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils

from gateway.outbox import EventClass, OutboxConfig, OutboxEvent
from gateway.outbox.schema import MIGRATIONS

#: A config whose cap and TTLs no test hits by accident; tests override what they exercise.
ROOMY: OutboxConfig = OutboxConfig(
    max_bytes=1 << 30,
    ttl_s={c: None for c in EventClass},
    group_commit_window_ms=2.0,
    ack_flush_delay_ms=5.0,
    sweep_interval_s=3600.0,
)


class FakeClock:
    """Time that moves only when told: monotonic and wall clock independently."""

    def __init__(self, monotonic: float = 5000.0) -> None:
        self.mono = monotonic
        self.wall = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)

    def jump_wall(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)


def event(
    event_id: str,
    event_class: EventClass = EventClass.TELEMETRY,
    *,
    source: str = "label-1",
    dedup_key: str | None = None,
    size: int = 300,
) -> OutboxEvent:
    """A ~``size``-byte JSON event."""
    body = {"event_id": event_id, "class": event_class.name.lower(), "source": source}
    payload = json.dumps(body).encode()
    payload += b" " * max(0, size - len(payload))
    return OutboxEvent(
        event_id=event_id,
        event_class=event_class,
        kind="telemetry.reading" if event_class is EventClass.TELEMETRY else "condition.shock",
        payload=payload,
        dedup_key=dedup_key,
        source=source,
    )


def version_2_store(db: Path) -> sqlite3.Connection:
    """A new store file in the version 2 layout (one events table, inline payloads), open in
    autocommit mode for the test to fill; the caller closes it."""
    conn = sqlite3.connect(db, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        migration(sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version = 2")
    return conn


def orphan_blocks(db: Path) -> int:
    """Payload blocks that no event row refers to any more (there must never be any)."""
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM payload_blocks b WHERE NOT EXISTS (SELECT 1 FROM events "
                "WHERE row_id BETWEEN b.first_row_id AND b.last_row_id)"
            ).fetchone()[0]
        )
    finally:
        conn.close()
