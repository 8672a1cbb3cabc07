"""The schema version is recorded; older files are migrated, newer ones are refused untouched."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxError, OutboxErrorReason
from gateway.outbox.dedup import digest, pack
from gateway.outbox.schema import (
    EVENT_TABLES,
    MIGRATION_CHUNK_ROWS,
    MIGRATIONS,
    PREPARE,
    SCHEMA_VERSION,
    migrate,
    row_id_for,
)
from gateway.outbox.store import CHECKPOINT_BACKSTOP_FACTOR
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event, version_2_store


def _pragma(db: Path, name: str) -> object:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


async def test_a_new_store_records_its_schema_and_runs_wal_full(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        conn = outbox._store._db()
        # synchronous is per connection: read it on the store's own.
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # Checkpoint policy for SD-card wear, and no zero-filling of freed pages. The writer's
        # own checkpoint is only a backstop: checkpoints run beside it at checkpoint_pages.
        assert (
            conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            == ROOMY.checkpoint_pages * CHECKPOINT_BACKSTOP_FACTOR
        )
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] != 1
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0  # no VACUUM work
        assert (await outbox.stats()).schema_version == SCHEMA_VERSION
    assert _pragma(db, "user_version") == SCHEMA_VERSION


async def test_a_version_1_file_is_migrated_and_keeps_its_events_and_keys(
    tmp_path: Path,
) -> None:
    db = tmp_path / "o.db"
    conn = sqlite3.connect(db, isolation_level=None)
    MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO events VALUES (?, 'old', 'label:01:seq:5', 'k', 's', x'7b7d', 60, 0, 0)",
        (row_id_for(EventClass.ALARM, 1),),
    )
    conn.close()
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        (leased,) = await outbox.lease(10)
        again = await outbox.accept([event("old", dedup_key="label:01:seq:5")])
    assert leased.event_id == "old"
    assert again.statuses == (AcceptStatus.DUPLICATE,)
    assert _pragma(db, "user_version") == SCHEMA_VERSION


async def test_a_version_2_file_is_migrated_to_payload_blocks(tmp_path: Path) -> None:
    """Rows of a version 2 file move to their class's table with their payloads inline; dead
    letters too; new commits use payload blocks beside them."""
    db = tmp_path / "o.db"
    conn = version_2_store(db)
    conn.execute(
        "INSERT INTO events VALUES (?, 'old', 'label:01:seq:5', 'k', 's', x'7b7d', 60, 0, 0)",
        (row_id_for(EventClass.TELEMETRY, 1),),
    )
    conn.execute(
        "INSERT INTO dead_letters VALUES (?, 'dead', 'label:01:seq:6', 4, 'k', 's', "
        "x'5b5d', 60, 0, 0, 'schema', 0)",
        (row_id_for(EventClass.TELEMETRY, 2),),
    )
    conn.execute(
        "INSERT INTO seen_keys (newest_store_s, next_seq, digests) VALUES (0, 3, ?)",
        (pack([digest("label:01:seq:5"), digest("label:01:seq:6")]),),
    )
    conn.close()
    fresh = [event(f"new{i}", size=500) for i in range(20)]
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        again = await outbox.accept([event("old", dedup_key="label:01:seq:5"), *fresh])
        assert await outbox.requeue_dead() == 1
        leased = await outbox.lease(100)
    assert again.statuses == (AcceptStatus.DUPLICATE,) + (AcceptStatus.ACCEPTED,) * 20
    assert [(e.event_id, e.payload) for e in leased] == [
        ("old", b"{}"),
        *((e.event_id, e.payload) for e in fresh),
        ("dead", b"[]"),
    ]
    assert _pragma(db, "user_version") == SCHEMA_VERSION == 4
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM payload_blocks").fetchone()[0] == 1
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'events%'"))
        columns = {r[1] for r in conn.execute("PRAGMA table_info(events_telemetry)")}
    finally:
        conn.close()
    # One table per class, and the old name as a view over them.
    assert kinds == {"events": "view"} | {t: "table" for t in EVENT_TABLES}
    assert "dedup_key" not in columns
    assert {"block", "block_offset", "block_length"} <= columns


def _version_2_store(db: Path, events: int) -> None:
    """A version 2 file holding ``events`` telemetry and alarm rows, payload = their number."""
    conn = version_2_store(db)
    rows = []
    for n in range(events):
        event_class = EventClass.ALARM if n % 3 == 0 else EventClass.TELEMETRY
        rows.append((row_id_for(event_class, n + 1), f"e{n}", f"key{n}", str(n).encode()))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, 'k', 's', ?, 60, 0, 0)", rows)
    conn.execute("COMMIT")
    conn.close()


class _FailingSecondChunk(sqlite3.Connection):
    """A connection whose second delete from the old events table fails like a bad card."""

    deletes = 0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql.startswith("DELETE FROM events "):
            self.deletes += 1
            if self.deletes == 2:
                raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, parameters)


async def test_a_migration_cut_off_halfway_resumes_without_loss(tmp_path: Path) -> None:
    """Moving a large backlog to the per-class tables happens in chunks, each its own
    transaction: cut off in the second (here by an I/O error on its delete), the file is
    still version 2 with the first chunk moved, and the next start goes on from there."""
    db = tmp_path / "o.db"
    total = 2 * MIGRATION_CHUNK_ROWS + 1234
    _version_2_store(db, total)
    conn = sqlite3.connect(db, isolation_level=None, factory=_FailingSecondChunk)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        migrate(conn)
    left = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    moved = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in EVENT_TABLES)
    conn.close()
    assert _pragma(db, "user_version") == 2
    assert (moved, left) == (MIGRATION_CHUNK_ROWS, total - MIGRATION_CHUNK_ROWS)
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        leased = await outbox.lease(total)
    assert _pragma(db, "user_version") == SCHEMA_VERSION
    alarms = [n for n in range(total) if n % 3 == 0]
    telemetry = [n for n in range(total) if n % 3 != 0]
    assert [(e.event_id, e.payload) for e in leased if e.event_class is EventClass.ALARM] == [
        (f"e{n}", str(n).encode()) for n in alarms
    ]
    assert [e.event_id for e in leased if e.event_class is EventClass.TELEMETRY] == [
        f"e{n}" for n in telemetry
    ]


async def test_a_version_3_file_gets_row_checksums(tmp_path: Path) -> None:
    """Rows of a version 3 file have no checksum (not checked, still leased); rows written
    after the migration have one, and damage to them is found."""
    db = tmp_path / "o.db"
    conn = version_2_store(db)
    PREPARE[2](conn)
    conn.execute("BEGIN")
    MIGRATIONS[2](conn)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("COMMIT")
    conn.execute(
        "INSERT INTO events_alarm (row_id, event_id, kind, source, payload, size, "
        "accepted_wall_s, accepted_store_s) VALUES (?, 'old', 'k', 's', x'7b7d', 60, 0, 0)",
        (row_id_for(EventClass.ALARM, 1),),
    )
    conn.close()
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("new", EventClass.ALARM)])
    assert _pragma(db, "user_version") == SCHEMA_VERSION == 4
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        crcs = dict(conn.execute("SELECT event_id, crc FROM events"))
        # The new row's payload changes on the card.
        conn.execute("UPDATE events_alarm SET payload = x'7b7e' WHERE event_id = 'new'")
    finally:
        conn.close()
    assert crcs["old"] is None
    assert isinstance(crcs["new"], int)
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        leased = await outbox.lease(10)
        stats = await outbox.stats()
    assert [(e.event_id, e.payload) for e in leased] == [("old", b"{}")]
    assert stats.dead_letters == 1


async def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(OutboxError) as excinfo:
        async with Outbox(db, ROOMY, FakeClock()):
            pass
    assert excinfo.value.reason is OutboxErrorReason.SCHEMA_TOO_NEW
    assert db.read_bytes() == before
    assert [n for n in os.listdir(tmp_path) if "corrupt" in n] == []
