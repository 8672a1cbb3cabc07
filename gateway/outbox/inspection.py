"""Read-only inspection of an outbox file for operators (``tagrelay outbox ...``).

Works beside a running daemon: it opens the file read-only (WAL readers never block the
writer) and never takes the store lock, runs migrations or quarantines anything. Re-queueing
dead letters writes, so it goes through :class:`gateway.outbox.store.Store` and its lock.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from foundation.clock import SystemClock
from gateway.outbox.config import OutboxConfig
from gateway.outbox.errors import OutboxError, OutboxErrorReason
from gateway.outbox.models import ClassStats, EventClass, LossCount, OutboxStats
from gateway.outbox.schema import (
    CLASS_SHIFT,
    SCHEMA_VERSION,
    PayloadReader,
    class_range,
    last_commit_marks,
    oldest_store_s,
)
from gateway.outbox.store import Store

JsonRow = dict[str, object]


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.exists():
        raise OutboxError(OutboxErrorReason.IO_ERROR, f"{path}: no such outbox file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise OutboxError(OutboxErrorReason.IO_ERROR, f"{path}: {exc}") from exc
    try:
        # One read transaction for everything this connection reads: an export sees one
        # snapshot, rows and their payload blocks alike, while the daemon goes on writing.
        conn.execute("BEGIN")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version != SCHEMA_VERSION:
            raise OutboxError(
                OutboxErrorReason.SCHEMA_TOO_NEW
                if version > SCHEMA_VERSION
                else OutboxErrorReason.IO_ERROR,
                f"{path}: schema version {version}, this tagrelay reads {SCHEMA_VERSION}"
                + (
                    " (the file is older: the daemon migrates it when it next starts)"
                    if version < SCHEMA_VERSION
                    else ""
                ),
            )
        yield conn
    except sqlite3.Error as exc:
        raise OutboxError(OutboxErrorReason.IO_ERROR, f"{path}: {exc}") from exc
    finally:
        conn.close()


def _store_clock(db: sqlite3.Connection) -> float:
    """The store clock as of the daemon's last commit (ages are relative to that moment)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'store_clock_s'").fetchone()
    meta_s = 0.0 if row is None else float(row[0])
    last = last_commit_marks(db)
    return meta_s if last is None else max(meta_s, last[0])


def file_stats(path: Path) -> OutboxStats:
    """Depth and bytes per class, oldest age, dead letters and losses, read from the file.

    ``leased``, ``duplicates``, ``refused``, ``commits``, the dedup memory, the disk-full cap
    and ``quarantined`` live in the daemon's memory: they read as 0 / empty here, and callers
    must not present them (``tagrelay outbox stats`` names them as daemon-only). ``max_bytes``
    is the default unless the daemon's config is known.
    """
    with _read_only(path) as db:
        now_s = _store_clock(db)
        epoch_row = db.execute("SELECT value FROM meta WHERE key = 'store_epoch'").fetchone()
        totals = {
            int(cls): (int(n), int(b))
            for cls, n, b in db.execute(
                f"SELECT row_id >> {CLASS_SHIFT}, count(*), sum(size) FROM events GROUP BY 1"
            )
        }
        classes = []
        for event_class in EventClass:
            oldest = oldest_store_s(db, event_class)
            depth, nbytes = totals.get(int(event_class), (0, 0))
            classes.append(
                ClassStats(
                    event_class=event_class,
                    depth=depth,
                    bytes=nbytes,
                    oldest_age_s=None if oldest is None else max(0.0, now_s - oldest),
                )
            )
        dead = int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
        losses = tuple(
            LossCount(event_class=EventClass(c), reason=str(r), count=int(n))
            for c, r, n in db.execute(
                "SELECT event_class, reason, count FROM losses ORDER BY event_class, reason"
            )
        )
    return OutboxStats(
        store_epoch="" if epoch_row is None else str(epoch_row[0]),
        schema_version=SCHEMA_VERSION,
        classes=tuple(classes),
        total_bytes=sum(c.bytes for c in classes),
        max_bytes=OutboxConfig().max_bytes,
        disk_full_cap_bytes=None,
        leased=0,
        dead_letters=dead,
        losses=losses,
        quarantined=(),
        duplicates=0,
        refused=0,
        commits=0,
    )


def _payload_json(payload: bytes) -> object:
    """The event's JSON as JSON when it is JSON, else its bytes in base64 (never lost)."""
    try:
        parsed: object = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"base64": base64.b64encode(payload).decode()}
    return parsed


def _text(value: object, name: str, damaged: list[str]) -> str | None:
    """A text column read as bytes: decoded, or (damage on the card) shown with its bad bytes
    escaped (``\\xff``) and named in ``damaged``, so that one bad row does not stop a peek or
    an export."""
    if value is None:
        return None
    raw = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else str(value).encode()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        damaged.append(f"{name} is not valid UTF-8")
        return raw.decode("utf-8", "backslashreplace")


def _iso(wall_s: float | None) -> str | None:
    return None if wall_s is None else datetime.fromtimestamp(wall_s, UTC).isoformat()


def iter_rows(
    path: Path,
    *,
    dead: bool = False,
    event_class: EventClass | None = None,
    limit: int | None = None,
) -> Iterator[JsonRow]:
    """Queued events (or dead letters) as JSON-able dicts, in lease order within a class."""
    with _read_only(path) as db:
        now_s = _store_clock(db)
        where, params = "", []
        if event_class is not None:
            lo, hi = class_range(event_class)
            where, params = "WHERE row_id >= ? AND row_id < ?", [lo, hi]
        table = "dead_letters" if dead else "events"
        place = (
            "NULL AS block, NULL AS block_offset, NULL AS block_length"
            if dead
            else "block, block_offset, block_length"
        )
        # Text columns and the payload are read as bytes: a value that is not valid UTF-8
        # (damage) would otherwise fail the whole read; it is shown escaped and flagged.
        extra = ", CAST(reason AS BLOB) AS reason, rejected_wall_s" if dead else ""
        sql = (
            "SELECT row_id, CAST(event_id AS BLOB) AS event_id, CAST(kind AS BLOB) AS kind, "
            "CAST(source AS BLOB) AS source, CAST(payload AS BLOB) AS payload, size, "
            f"accepted_wall_s, accepted_store_s, {place}{extra} FROM {table} {where} "
            "ORDER BY row_id"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        payloads = PayloadReader(db)
        db.row_factory = sqlite3.Row
        for row in db.execute(sql, params):
            damaged: list[str] = []
            out: JsonRow = {
                "row_id": row["row_id"],
                "event_id": _text(row["event_id"], "event_id", damaged),
                "class": EventClass(int(row["row_id"]) >> CLASS_SHIFT).name.lower(),
                "kind": _text(row["kind"], "kind", damaged),
                "source": _text(row["source"], "source", damaged),
                "size": row["size"],
                "accepted_at": _iso(row["accepted_wall_s"]),
                "age_s": round(max(0.0, now_s - float(row["accepted_store_s"])), 3),
            }
            if dead:
                out["reason"] = _text(row["reason"], "reason", damaged)
                out["rejected_at"] = _iso(row["rejected_wall_s"])
            payload = payloads.read(
                row["payload"], row["block"], row["block_offset"], row["block_length"]
            )
            out["payload"] = _payload_json(payload)
            if damaged:
                out["damaged"] = damaged
            yield out


def requeue_dead_letters(path: Path, config: OutboxConfig | None = None) -> int:
    """Move every dead letter back into the queue; refused while a daemon holds the store."""
    store = Store(path, config or OutboxConfig(), SystemClock())
    store.open()
    try:
        return store.requeue_dead()
    finally:
        store.close()
