"""The outbox's on-disk layout: pragmas, schema migrations and corrupt-file quarantine.

The schema version is recorded in ``PRAGMA user_version``; each migration moves it up by one
inside a transaction. The layout is plain SQLite DDL, written out below: the outbox needs
nothing from SQLite that the standard library's ``sqlite3`` does not give it.

Each class has its own events table (``events_alarm`` ... ``events_telemetry``, version 3;
``events`` is a read-only view over them). Row ids carry the class in their high bits
(``class << 48 | sequence``) and grow with arrival, so every accept appends at the end of its
class's b-tree (full pages, written once) and leasing a class or finding its oldest rows is a
scan from the start of its primary key. In one shared table the classes' inserts landed in
the middle of the tree, where each page split rewrote its neighbours. There is deliberately no
secondary index: an index on random keys (dedup keys, event ids) dirties one page per event
per commit, which would multiply the bytes written to flash per event. De-duplication keys are
remembered in memory instead, and persisted as one append-only row of 8-byte digests per
commit (``seen_keys``), see gateway/outbox/dedup.py.

Payload blocks (version 3): the payloads of one class in one group commit are stored together,
concatenated, as one row of ``payload_blocks`` (at most ``BLOCK_MAX_BYTES``); each event row
keeps only its place in the block (``block``, ``block_offset``, ``block_length``). Block ids
grow, so blocks are appended at the end of their b-tree. A block records the first and last
row id of its events: no other row of that class falls in between, so "is any event of this
block left" is a range probe on the primary key. Why: deleting a row rewrites its page (and
SQLite's rebalancing rewrites its neighbours), so every delivered event used to cost its whole
row again, in the WAL and in the main file. A block large enough to spill into overflow pages
is deleted without writing those pages at all; only the small event rows are rewritten. Small
groups (an alarm on its own) stay inline in ``payload``.

Row checksums (version 4): each event row carries ``crc``, a CRC-32 of its event id, kind,
source and payload (:func:`row_crc`), checked when the row is leased: a row damaged on the card
is dead-lettered and reported instead of delivered. Rows from before version 4 have none
(NULL) and are not checked.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from gateway.outbox.dedup import digest, pack
from gateway.outbox.models import EventClass
from gateway.sqlite_file import fsync_dir

_log = logging.getLogger(__name__)

#: The schema version this code writes; migrations bring older files up to it.
SCHEMA_VERSION: Final = 4

#: Bits of the row id below the class: room for 2**48 events per store epoch.
CLASS_SHIFT: Final = 48
SEQ_MASK: Final = (1 << CLASS_SHIFT) - 1

#: A payload block holds at most this much: a reader keeps the block it reads in memory.
BLOCK_MAX_BYTES: Final = 256 * 1024
#: The payloads of one class in one commit go into a block from this many bytes on (one
#: database page): a smaller block would sit on a b-tree page like inline rows do, and gain
#: nothing when it is deleted.
BLOCK_MIN_BYTES: Final = 4096

#: A writer waits this long for a reader (the CLI) to finish before failing.
BUSY_TIMEOUT_MS: Final = 5000

#: The WAL file is truncated back to this after a checkpoint, so a burst does not keep
#: hundreds of MB allocated on the card.
JOURNAL_SIZE_LIMIT_BYTES: Final = 64 * 1024 * 1024


#: The events of each class, in class order: each table grows at its end only, so an accept
#: appends to full pages instead of splitting pages in the middle of a shared b-tree.
EVENT_TABLES: Final = tuple(f"events_{c.name.lower()}" for c in EventClass)


def row_id_for(event_class: EventClass, seq: int) -> int:
    return (int(event_class) << CLASS_SHIFT) | seq


def class_of(row_id: int) -> EventClass:
    return EventClass(row_id >> CLASS_SHIFT)


def class_range(event_class: EventClass) -> tuple[int, int]:
    """Half-open row id range [lo, hi) of one class."""
    return int(event_class) << CLASS_SHIFT, (int(event_class) + 1) << CLASS_SHIFT


def row_crc(event_id: str, kind: str, source: str, payload: bytes) -> int:
    """The checksum stored with an event row: CRC-32 over its ids and payload. CRC-32 finds
    every burst of up to 32 flipped bits and costs ~1 us an event (zlib, in C)."""
    head = f"{event_id}\0{kind}\0{source}".encode("utf-8", "surrogatepass")
    return zlib.crc32(payload, zlib.crc32(head))


def oldest_store_s(conn: sqlite3.Connection, event_class: EventClass) -> float | None:
    """Store-clock time at which the oldest queued event of a class was accepted."""
    row = conn.execute(
        f"SELECT accepted_store_s FROM {EVENT_TABLES[event_class]} ORDER BY row_id LIMIT 1"
    ).fetchone()
    return None if row is None else float(row[0])


def last_commit_marks(conn: sqlite3.Connection) -> tuple[float, int] | None:
    """Store clock and next sequence number as of the last commit that accepted events (its
    ``seen_keys`` row); ``meta`` holds them only as of the last idle moment or close."""
    row = conn.execute(
        "SELECT newest_store_s, next_seq FROM seen_keys ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else (float(row[0]), int(row[1]))


def _create_table(
    conn: sqlite3.Connection, name: str, columns: str, *, if_not_exists: bool = False
) -> None:
    """``CREATE TABLE`` with the columns given as SQL (quoted names, types, constraints)."""
    guard = "IF NOT EXISTS " if if_not_exists else ""
    conn.execute(f'CREATE TABLE {guard}"{name}" (\n   {columns}\n)')


def _create_events_view(conn: sqlite3.Connection) -> None:
    union = " UNION ALL ".join(f"SELECT * FROM {t}" for t in EVENT_TABLES)
    conn.execute(f'CREATE VIEW "events" AS {union}')


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    _create_table(
        conn,
        "events",
        '"row_id" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "dedup_key" TEXT NOT NULL, '
        '"kind" TEXT NOT NULL, "source" TEXT NOT NULL, "payload" BLOB NOT NULL, '
        '"size" INTEGER NOT NULL, "accepted_wall_s" REAL, "accepted_store_s" REAL',
    )
    _create_table(
        conn,
        "dead_letters",
        '"row_id" INTEGER PRIMARY KEY, "event_id" TEXT, "dedup_key" TEXT, "event_class" INTEGER, '
        '"kind" TEXT, "source" TEXT, "payload" BLOB, "size" INTEGER, "accepted_wall_s" REAL, '
        '"accepted_store_s" REAL, "reason" TEXT, "rejected_wall_s" REAL',
    )
    _create_table(
        conn,
        "losses",
        '"event_class" INTEGER, "reason" TEXT, "count" INTEGER, '
        'PRIMARY KEY ("event_class", "reason")',
    )
    _create_table(conn, "meta", '"key" TEXT PRIMARY KEY, "value" TEXT')


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Persist the de-duplication keys of each commit (with the store clock and the next
    sequence number at that commit); seed it with the keys still stored."""
    _create_table(
        conn,
        "seen_keys",
        '"id" INTEGER PRIMARY KEY, "newest_store_s" REAL NOT NULL, "next_seq" INTEGER NOT NULL, '
        '"digests" BLOB NOT NULL',
    )
    keys: list[int] = []
    newest = 0.0
    for table in ("events", "dead_letters"):
        for key, accepted_s in conn.execute(f"SELECT dedup_key, accepted_store_s FROM {table}"):
            keys.append(digest(str(key)))
            newest = max(newest, float(accepted_s or 0.0))
    if keys:
        conn.execute(
            "INSERT INTO seen_keys (newest_store_s, next_seq, digests) VALUES (?, 0, ?)",
            (newest, pack(keys)),
        )


#: A long migration logs its progress this often.
MIGRATION_LOG_S: Final = 5.0
#: Rows moved per transaction when a migration moves a whole backlog: each step is small in
#: the WAL, and the pages it frees are reused by the next, so the file barely grows.
MIGRATION_CHUNK_ROWS: Final = 5000

_V3_COLUMNS: Final = (
    '"row_id" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "kind" TEXT NOT NULL, '
    '"source" TEXT NOT NULL, "payload" BLOB, "size" INTEGER NOT NULL, "accepted_wall_s" REAL, '
    '"accepted_store_s" REAL, "block" INTEGER, "block_offset" INTEGER, "block_length" INTEGER'
)


def _prepare_3(conn: sqlite3.Connection) -> None:
    """Before version 3: move the rows of the shared ``events`` table into one table per
    class, in transactions of MIGRATION_CHUNK_ROWS rows. A store of a million events is then
    never copied in one transaction (that would need its size again in the WAL and on the
    card), and a power cut halfway leaves a store this step simply resumes. Rows keep their
    payload inline; the dedup key string is not carried (its digest is in ``seen_keys``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in EVENT_TABLES:
            _create_table(conn, table, _V3_COLUMNS, if_not_exists=True)
        _create_table(
            conn,
            "payload_blocks",
            '"id" INTEGER PRIMARY KEY, "first_row_id" INTEGER NOT NULL, '
            '"last_row_id" INTEGER NOT NULL, "data" BLOB NOT NULL',
            if_not_exists=True,
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    total = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    moved = 0
    logged_at = time.monotonic()
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            top = conn.execute(
                "SELECT max(row_id) FROM (SELECT row_id FROM events ORDER BY row_id LIMIT ?)",
                (MIGRATION_CHUNK_ROWS,),
            ).fetchone()[0]
            if top is not None:
                for event_class, table in zip(EventClass, EVENT_TABLES, strict=True):
                    lo, hi = class_range(event_class)
                    conn.execute(
                        f"INSERT INTO {table} (row_id, event_id, kind, source, payload, size, "
                        "accepted_wall_s, accepted_store_s) SELECT row_id, event_id, kind, "
                        "source, payload, size, accepted_wall_s, accepted_store_s FROM events "
                        "WHERE row_id >= ? AND row_id < ? AND row_id <= ?",
                        (lo, hi, top),
                    )
                moved += conn.execute("DELETE FROM events WHERE row_id <= ?", (top,)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if top is None:
            break
        if time.monotonic() - logged_at >= MIGRATION_LOG_S or moved == total:
            _log.info("outbox schema 3: %d of %d events moved to their class's table", moved, total)
            logged_at = time.monotonic()


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """One events table per class (filled by :func:`_prepare_3`), payload blocks, and no
    dedup key string in the rows. ``events`` stays, as a view over the five tables, for
    reading."""
    # _prepare_3 emptied it; should a row be left (it cannot, under the store's lock), fail
    # here: the next start moves it first.
    if conn.execute("SELECT count(*) FROM events").fetchone()[0]:
        raise sqlite3.DatabaseError("outbox schema 3: rows left in the old events table")
    conn.execute('DROP TABLE "events"')
    _create_events_view(conn)
    # SQLite 3.35 and later (bookworm ships 3.40): rewrites the table without the column.
    conn.execute('ALTER TABLE "dead_letters" DROP COLUMN "dedup_key"')


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    """A checksum column in each events table (NULL, not checked, for the rows already
    there; adding a column rewrites no row), and the ``events`` view over the new columns."""
    for table in EVENT_TABLES:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER")
    conn.execute("DROP VIEW IF EXISTS events")
    _create_events_view(conn)


#: MIGRATIONS[n] takes a store at version n to version n + 1, in one transaction ...
MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
)
#: ... after PREPARE[n], if there is one: work too large for one transaction, in several, done
#: so that it can be interrupted and run again.
PREPARE: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {2: _prepare_3}


class PayloadReader:
    """Reads event payloads, inline or from their payload block.

    Rows are read in row id order, so consecutive rows of a class share a block: the block
    being read is kept (one, at most ``BLOCK_MAX_BYTES``) and sliced in memory."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._block: int | None = None
        self._data = b""

    def read(
        self, payload: bytes | None, block: int | None, offset: int | None, length: int | None
    ) -> bytes:
        if block is None or offset is None or length is None:
            if payload is None:
                raise sqlite3.DatabaseError("an event row has neither a payload nor a block")
            return bytes(payload)
        if block != self._block:
            row = self._conn.execute(
                "SELECT data FROM payload_blocks WHERE id = ?", (block,)
            ).fetchone()
            if row is None:
                raise sqlite3.DatabaseError(f"payload block {block} is missing")
            self._block, self._data = block, bytes(row[0])
        return self._data[offset : offset + length]

    def forget(self, block: int) -> None:
        """The block was deleted (its id, the sequence number of its first event, is never
        used again within a store epoch)."""
        if block == self._block:
            self._block, self._data = None, b""


class SchemaTooNewError(Exception):
    def __init__(self, found: int) -> None:
        super().__init__(f"store schema version {found} is newer than {SCHEMA_VERSION}")
        self.found = found


def configure(conn: sqlite3.Connection, checkpoint_pages: int) -> None:
    """WAL + synchronous=FULL: a commit is on disk when it returns, readers never block it."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not switch to WAL (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    # Debian builds default to secure_delete = ON, which writes every freed page full of zeros:
    # that doubles the flash writes of an ack. FAST zeroes only what is written anyway.
    conn.execute("PRAGMA secure_delete = FAST")
    conn.execute(f"PRAGMA wal_autocheckpoint = {checkpoint_pages}")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")


def refuse_newer(conn: sqlite3.Connection) -> int:
    """Raise :class:`SchemaTooNewError` for a file of a newer tagrelay; return its version.

    Runs before :func:`configure`: switching to WAL rewrites the file header, and a file we
    cannot read must be left exactly as it is."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(found)
    return found


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; return the version found before."""
    found = refuse_newer(conn)
    for version in range(found, SCHEMA_VERSION):
        if version in PREPARE:
            PREPARE[version](conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        _log.info("outbox schema migrated to version %d", version + 1)
    return found


def keep_damaged_wal(path: Path, when: datetime) -> str | None:
    """Copy the store's -wal aside as ``<file>-wal.damaged-<UTC time>`` (for forensics)
    before the store writes again; return the copy's name, or None if there is no -wal or
    no room for the copy."""
    src = Path(f"{path}-wal")
    if not src.exists():
        return None
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    dst = Path(f"{path}-wal.damaged-{stamp}")
    n = 1
    while dst.exists():
        dst = Path(f"{path}-wal.damaged-{stamp}.{n}")
        n += 1
    try:
        shutil.copyfile(src, dst)
        with dst.open("rb+") as handle:
            os.fsync(handle.fileno())
        fsync_dir(path.parent)
    except OSError as exc:
        _log.error("outbox: could not keep the damaged WAL %s: %s", src, exc)
        dst.unlink(missing_ok=True)
        return None
    return str(dst)
