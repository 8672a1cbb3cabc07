"""The synchronous heart of the outbox: every SQL statement the daemon runs on its store.

A :class:`Store` is used from exactly one thread at a time (the outbox's writer thread); the
async :class:`gateway.outbox.Outbox` hands it work and carries results back to the event loop.
It owns the in-memory state that must never reach the disk: leases, lease cursors, the fair
scheduler's virtual times, per-class depth and byte totals.

TTL rule (robust to wall-clock jumps): the store keeps its own clock, ``store_s`` = seconds the
store has been open, accumulated across restarts (persisted with every commit, in its
``seen_keys`` row or in ``meta``; resumed at open; advanced by ``Clock.monotonic``). Each
row records ``accepted_store_s``; its age is ``store_s - accepted_store_s``. The wall clock is
recorded for information only, so setting it forwards or backwards never expires anything.
Time while the gateway is powered off does not count: an event may outlive its TTL in wall
time, never the reverse.

De-duplication: the keys accepted in the last ``dedup_retention_s`` (24 h) are remembered in
RAM (:class:`DedupMemory`, capped at ``dedup_max_keys``) instead of a unique index on disk: an
index on random keys would dirty one more page per event per commit on the flash. Each commit
appends its keys' digests as one row to ``seen_keys`` (8 bytes a key), read back at open and
pruned by the sweep, so a restart forgets nothing a reader may still re-send.

Failures: SQLite errors are rolled back (in-memory totals with them) and raised as
:class:`OutboxError` with a reason; SQLITE_FULL is first answered by evicting and retrying.
"""

from __future__ import annotations

import fcntl
import heapq
import json
import logging
import math
import os
import sqlite3
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from drivers.clock import Clock
from gateway.outbox.checkpoint import LOW_SPACE_WAL_FRACTION, Checkpointer, WalIndex
from gateway.outbox.config import OutboxConfig
from gateway.outbox.dedup import DedupMemory, digest, pack, unpack
from gateway.outbox.errors import OutboxError, OutboxErrorReason
from gateway.outbox.highwater import HighWater
from gateway.outbox.models import (
    AcceptStatus,
    ClassStats,
    EventClass,
    LeasedEvent,
    LossCount,
    OutboxEvent,
    OutboxStats,
)
from gateway.outbox.schema import (
    BLOCK_MAX_BYTES,
    BLOCK_MIN_BYTES,
    CLASS_SHIFT,
    EVENT_TABLES,
    SCHEMA_VERSION,
    SEQ_MASK,
    PayloadReader,
    SchemaTooNewError,
    class_range,
    configure,
    keep_damaged_wal,
    last_commit_marks,
    migrate,
    oldest_store_s,
    refuse_newer,
    row_crc,
    row_id_for,
)
from gateway.outbox.space import RECOVER_MARGIN_BYTES, SpaceReserve, free_bytes
from gateway.sqlite_file import check_integrity, quarantine

_log = logging.getLogger(__name__)

#: Bytes counted per row on top of its strings and payload: b-tree cell header, row id and the
#: numeric columns. Keeps the byte cap close to real file usage.
ROW_OVERHEAD_BYTES: Final = 48
#: Rows read per step when scanning a class for leasing, expiry or eviction.
SCAN_CHUNK_ROWS: Final = 256
#: Host parameters per ``IN (...)``: SQLite builds older than 3.32 allow only 999.
IN_CHUNK_IDS: Final = 500
#: When idle, the store clock is persisted this often: a crash then loses at most this much
#: age (events live longer, never shorter) at the cost of one page write per period.
STORE_CLOCK_PERSIST_S: Final = 300.0
#: After SQLITE_FULL the store caps itself at this fraction of what it held, so that deleting
#: rows frees pages for new ones.
DISK_FULL_SHRINK_RATIO: Final = 0.9
#: ... and at least this much lower: only pages emptied entirely are reused by new rows.
DISK_FULL_SLACK_BYTES: Final = 32 * 1024
#: One warning log line per this many seconds for evictions, expiry and refusals.
LOG_BURST_S: Final = 60.0
#: A leased row that has expired is re-examined after this long (it may be acked meanwhile).
LEASED_EXPIRY_RECHECK_S: Final = 1.0
#: Checkpoints run beside the writer (gateway/outbox/checkpoint.py); the writer's own automatic
#: checkpoint, inside a commit, is only a backstop at this many times the threshold.
CHECKPOINT_BACKSTOP_FACTOR: Final = 4

#: Below this much free space on its file system the writer checkpoints the WAL itself,
#: right after a commit, once the WAL holds LOW_SPACE_WAL_FRACTION of the free space: the
#: checkpoint thread may run too late when one commit is a large part of what is left.
LOW_SPACE_BYTES: Final = 64 * 1024 * 1024

LOSS_KIND: Final = "outbox.loss"
#: The ``source`` of a loss report.
LOSS_SOURCE: Final = "outbox"

_SQLITE_FULL: Final = 13

_EVENT_COLUMNS: Final = (
    "row_id, event_id, kind, source, payload, size, accepted_wall_s, accepted_store_s, "
    "block, block_offset, block_length, crc"
)
_MARKS: Final = ", ".join("?" * 12)
#: The block columns of a row whose payload is inline.
_INLINE: Final = (None, None, None)
#: INSERT statement per class (EVENT_TABLES order).
_INSERT: Final = tuple(
    f"INSERT INTO {t} ({_EVENT_COLUMNS}) VALUES ({_MARKS})" for t in EVENT_TABLES
)


def translate(exc: sqlite3.Error) -> OutboxError:
    """Map a SQLite failure to the outbox's typed error (by error code, never by message)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        return OutboxError(OutboxErrorReason.DISK_FULL, str(exc))
    return OutboxError(OutboxErrorReason.IO_ERROR, f"{type(exc).__name__}: {exc} (code {code})")


def is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL


#: A row about to be inserted: row id, event, counted size.
_NewRow = tuple[int, OutboxEvent, int]


def _block_groups(items: list[_NewRow]) -> Iterator[tuple[list[_NewRow], int]]:
    """Split one class's new rows into runs of at most BLOCK_MAX_BYTES of payload (an event
    larger than that is a run of its own); yield each run with its payload bytes."""
    group: list[_NewRow] = []
    nbytes = 0
    for item in items:
        size = len(item[1].payload)
        if group and nbytes + size > BLOCK_MAX_BYTES:
            yield group, nbytes
            group, nbytes = [], 0
        group.append(item)
        nbytes += size
    if group:
        yield group, nbytes


def _by_class(row_ids: Iterable[int]) -> Iterator[tuple[EventClass, list[int]]]:
    """Row ids split by class (from their high bits), in order; ids of no class are dropped
    (no row has them)."""
    split: dict[int, list[int]] = {}
    for row_id in row_ids:
        split.setdefault(row_id >> CLASS_SHIFT, []).append(row_id)
    for cls in EventClass:
        if cls in split:
            yield cls, split[cls]


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), IN_CHUNK_IDS):
        yield ids[start : start + IN_CHUNK_IDS]


@dataclass(slots=True)
class _LossTally:
    """Rows lost within one transaction; becomes one ``outbox.loss`` event."""

    counts: dict[tuple[EventClass, str], int] = field(default_factory=dict)
    first_row_id: int | None = None
    last_row_id: int | None = None
    first_event_id: str = ""
    last_event_id: str = ""

    def add(self, event_class: EventClass, reason: str, row_id: int, event_id: str) -> None:
        key = (event_class, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.extend(row_id, event_id)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def merged(self, other: _LossTally) -> _LossTally:
        out = _LossTally(dict(self.counts))
        for key, count in other.counts.items():
            out.counts[key] = out.counts.get(key, 0) + count
        for tally in (self, other):
            for row_id, event_id in (
                (tally.first_row_id, tally.first_event_id),
                (tally.last_row_id, tally.last_event_id),
            ):
                if row_id is not None:
                    out.extend(row_id, event_id)
        return out

    def extend(self, row_id: int, event_id: str) -> None:
        """Widen the id range to include ``row_id``."""
        seq = row_id & SEQ_MASK
        if self.first_row_id is None or seq < self.first_row_id & SEQ_MASK:
            self.first_row_id, self.first_event_id = row_id, event_id
        if self.last_row_id is None or seq > self.last_row_id & SEQ_MASK:
            self.last_row_id, self.last_event_id = row_id, event_id


@dataclass(frozen=True, slots=True)
class _OpenLoss:
    """The queued loss event that later losses are merged into."""

    row_id: int
    event_id: str
    tally: _LossTally
    since: datetime


@dataclass(slots=True)
class _Snapshot:
    depth: list[int]
    nbytes: list[int]
    next_seq: int
    losses: dict[tuple[EventClass, str], int]
    next_expiry_s: float
    open_loss: _OpenLoss | None


class _BurstLog:
    """One log line per burst: counts pile up and are reported at most every LOG_BURST_S."""

    def __init__(self, what: str, unit: str = "events") -> None:
        self._what = what
        self._unit = unit
        self._pending = 0
        self._last_s = -math.inf

    def add(self, count: int, now_s: float, detail: str) -> None:
        self._pending += count
        if now_s - self._last_s >= LOG_BURST_S:
            _log.warning("outbox %s: %d %s (%s)", self._what, self._pending, self._unit, detail)
            self._pending = 0
            self._last_s = now_s


class Store:
    """One outbox database file; not thread-safe: one caller thread at a time."""

    def __init__(self, path: Path, config: OutboxConfig, clock: Clock) -> None:
        self._path = path
        self._config = config
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._wal = WalIndex(path)
        self._lock_fd: int | None = None
        self._epoch = ""
        self._quarantined: tuple[str, ...] = ()
        self._next_seq = 1
        self._clock_base_s = 0.0
        self._mono_base = 0.0
        self._persisted_clock_s = 0.0
        self._depth = [0] * len(EventClass)
        self._bytes = [0] * len(EventClass)
        self._leased: list[set[int]] = [set() for _ in EventClass]
        #: Per class: leasing reads a class in order, so each keeps its current block.
        self._payloads: list[PayloadReader] = []
        self._cursor = [class_range(c)[0] - 1 for c in EventClass]
        self._vtime = [0.0] * len(EventClass)
        self._global_vtime = 0.0
        self._dedup = DedupMemory(config.dedup_retention_s, config.dedup_max_keys)
        #: Keys in the ``seen_keys`` table, to prune it to the same cap as the memory.
        self._persisted_keys = 0
        self._dedup_warned = False
        self._losses: dict[tuple[EventClass, str], int] = {}
        self._next_expiry_s = -math.inf
        self._open_loss: _OpenLoss | None = None
        self._saw_expired = False
        self._disk_cap: int | None = None
        self._reserve = SpaceReserve(Path(f"{path}.reserve"), config.disk_reserve_bytes)
        self._high_water = HighWater(Path(f"{path}.seq"))
        self._page_bytes = 4096
        self._disk_full_log = _BurstLog("disk full", "commits")
        self._room_log = _BurstLog("disk has room again", "times")
        self._damage_log = _BurstLog("found damaged rows", "rows")
        #: Rows a lease found damaged (row id, why), dead-lettered at the end of the lease.
        self._damaged: list[tuple[int, str]] = []
        self._duplicates = 0
        self._refused = 0
        self._commits = 0
        self._evict_log = _BurstLog("evicted")
        self._expire_log = _BurstLog("expired")
        self._refuse_log = _BurstLog("refused (full, nothing evictable)")

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def store_epoch(self) -> str:
        return self._epoch

    @property
    def quarantined(self) -> tuple[str, ...]:
        return self._quarantined

    def open(self) -> None:
        """Lock, check, (quarantine), migrate and load the store."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._open_locked()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        fd = os.open(f"{self._path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutboxError(
                OutboxErrorReason.LOCKED, f"{self._path} is open in another process"
            ) from None
        self._lock_fd = fd

    def _open_locked(self) -> None:
        problem = check_integrity(self._path)
        if problem is not None:
            self._quarantined = quarantine(self._path, self._clock.now())
            _log.error(
                "outbox store %s is corrupt (%s); moved aside as %s, starting a new store",
                self._path,
                problem,
                ", ".join(self._quarantined),
            )
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        self._conn = conn
        self._payloads = [PayloadReader(conn) for _ in EventClass]
        try:
            refuse_newer(conn)
            configure(conn, self._config.checkpoint_pages * CHECKPOINT_BACKSTOP_FACTOR)
            migrate(conn)
            self._page_bytes = int(conn.execute("PRAGMA page_size").fetchone()[0])
            self._load()
            # Before anything is written: the next commit would overwrite what is left of a
            # damaged WAL, and the copy kept for forensics must be the file as found.
            damage = self._check_high_water()
            self._high_water.open(self._epoch)
            self._checkpointer = Checkpointer(self._path, self._config.checkpoint_pages, self._wal)
        except SchemaTooNewError as exc:
            raise OutboxError(OutboxErrorReason.SCHEMA_TOO_NEW, str(exc)) from exc
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        if not self._reserve.ensure():
            _log.warning(
                "outbox: no room for the %d-byte space reserve %s; a full disk will be "
                "handled with less headroom",
                self._config.disk_reserve_bytes,
                self._reserve.path,
            )
        if damage is not None:
            with self._transaction():
                self._record_loss_event(_LossTally(), self.store_clock(), damage)
        self._high_water.write(self._next_seq)
        if self._quarantined:
            tally = _LossTally()
            with self._transaction():
                self._record_loss_event(
                    tally,
                    self.store_clock(),
                    {"reason": "store_corrupt", "quarantined": list(self._quarantined)},
                )
        _log.info(
            "outbox store %s open: epoch %s, %d events, %d bytes",
            self._path,
            self._epoch,
            sum(self._depth),
            sum(self._bytes),
        )

    def _load(self) -> None:
        conn = self._db()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if "store_epoch" not in meta:
            meta = {
                "store_epoch": uuid.uuid4().hex,
                "created_at": self._clock.now().isoformat(),
                "next_seq": "1",
                "store_clock_s": "0",
            }
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
        self._epoch = str(meta["store_epoch"])
        clock_s = float(meta["store_clock_s"])
        next_seq = int(meta["next_seq"])
        # A commit that accepted events wrote both into its seen_keys row, not into meta.
        last = last_commit_marks(conn)
        if last is not None:
            clock_s = max(clock_s, last[0])
            next_seq = max(next_seq, last[1])
        self._clock_base_s = clock_s
        self._mono_base = self._clock.monotonic()
        self._persisted_clock_s = clock_s
        for event_class, table in zip(EventClass, EVENT_TABLES, strict=True):
            lo, hi = class_range(event_class)
            tops = (
                conn.execute(f"SELECT max(row_id) FROM {table}").fetchone()[0],
                conn.execute(
                    "SELECT max(row_id) FROM dead_letters WHERE row_id >= ? AND row_id < ?",
                    (lo, hi),
                ).fetchone()[0],
            )
            for top in tops:
                if top is not None:
                    next_seq = max(next_seq, (int(top) & SEQ_MASK) + 1)
            count, nbytes = conn.execute(
                f"SELECT count(*), coalesce(sum(size), 0) FROM {table}"
            ).fetchone()
            self._depth[event_class] = int(count)
            self._bytes[event_class] = int(nbytes)
        self._next_seq = next_seq
        self._load_seen_keys()
        for cls, reason, count in conn.execute("SELECT event_class, reason, count FROM losses"):
            self._losses[(EventClass(cls), str(reason))] = int(count)

    def _check_high_water(self) -> dict[str, object] | None:
        """Compare the sequence number the side file recorded at the last commits with what
        the database holds. More recorded than held means committed transactions went missing
        (SQLite dropped damaged WAL frames and all after them): keep the -wal aside and return
        what the loss report must say. Their sequence numbers are not used again."""
        mark = self._high_water.read(self._epoch)
        if mark is None or mark <= self._next_seq:
            return None
        missing = mark - self._next_seq
        kept = keep_damaged_wal(self._path, self._clock.now())
        _log.error(
            "outbox store %s: up to %d committed events are missing (sequence %d to %d): the "
            "WAL was damaged and SQLite dropped its frames from the damage on; %s",
            self._path,
            missing,
            self._next_seq,
            mark - 1,
            f"the WAL is kept as {kept}" if kept else "no WAL left to keep",
        )
        notice: dict[str, object] = {
            "reason": "storage_damage",
            "count": missing,
            "first_missing_seq": self._next_seq,
            "last_missing_seq": mark - 1,
            "kept": [kept] if kept else [],
        }
        self._next_seq = mark
        return notice

    def _load_seen_keys(self) -> None:
        """Refill the dedup memory from the digests of past commits, newest first, down to the
        retention or the key cap, so that a label re-sending frames after a restart is still
        answered "duplicate"."""
        conn = self._db()
        now_s = self.store_clock()
        self._persisted_keys = int(
            conn.execute("SELECT coalesce(sum(length(digests)), 0) FROM seen_keys").fetchone()[0]
            // 8
        )
        newest_first: list[tuple[float, bytes]] = []
        held = 0
        for newest_s, blob in conn.execute(
            "SELECT newest_store_s, digests FROM seen_keys ORDER BY id DESC"
        ):
            if newest_s + self._config.dedup_retention_s <= now_s:
                break
            newest_first.append((float(newest_s), bytes(blob)))
            held += len(blob) // 8
            if held >= self._config.dedup_max_keys:
                break
        for newest_s, blob in reversed(newest_first):
            self._dedup.add(unpack(blob), newest_s)

    def _prune_seen_keys(self, now_s: float) -> None:
        """Drop persisted digests past the retention, or beyond the key cap (oldest first)."""
        conn = self._db()
        doomed: list[int] = []
        after = 0
        keys = self._persisted_keys
        # The newest row stays: it carries the store clock and the next sequence number.
        newest_id = conn.execute("SELECT max(id) FROM seen_keys").fetchone()[0]
        while True:
            rows = conn.execute(
                "SELECT id, newest_store_s, length(digests) FROM seen_keys WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after, SCAN_CHUNK_ROWS),
            ).fetchall()
            for row_id, newest_s, nbytes in rows:
                expired = newest_s + self._config.dedup_retention_s <= now_s
                if row_id == newest_id or (
                    not expired and keys - nbytes // 8 < self._config.dedup_max_keys
                ):
                    break
                doomed.append(row_id)
                keys -= nbytes // 8
            else:
                if rows:
                    after = rows[-1][0]
                    continue
            break
        if doomed:
            with self._transaction():
                for chunk in _chunks(doomed):
                    marks = ",".join("?" * len(chunk))
                    conn.execute(f"DELETE FROM seen_keys WHERE id IN ({marks})", tuple(chunk))
            self._persisted_keys = keys

    def close(self) -> None:
        """Persist the store clock and close; the last connection's close checkpoints the WAL."""
        if self._conn is not None:
            try:
                if self._epoch:
                    with self._transaction():
                        self._write_meta(self.store_clock())
            except (sqlite3.Error, OutboxError) as exc:
                _log.warning("outbox: could not persist the store clock at close: %s", exc)
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            self._conn.close()
            self._conn = None
            self._wal.close()  # after the connections: see WalIndex
            self._high_water.close()
            # The keys are on disk; give their memory back now, not when this object goes.
            self._dedup = DedupMemory(self._config.dedup_retention_s, self._config.dedup_max_keys)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(OutboxErrorReason.CLOSED)
        return self._conn

    def store_clock(self) -> float:
        """Seconds this store has been open, across restarts (the TTL clock)."""
        return self._clock_base_s + (self._clock.monotonic() - self._mono_base)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        conn = self._db()
        snapshot = _Snapshot(
            list(self._depth),
            list(self._bytes),
            self._next_seq,
            dict(self._losses),
            self._next_expiry_s,
            self._open_loss,
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
            self._commits += 1
            self._high_water.write(self._next_seq)
            self._checkpoint_if_low_on_space()
            if self._checkpointer is not None:
                self._checkpointer.poke()
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    _log.warning("outbox: rollback failed: %s", exc)
            self._depth, self._bytes = snapshot.depth, snapshot.nbytes
            self._next_seq, self._losses = snapshot.next_seq, snapshot.losses
            self._next_expiry_s = snapshot.next_expiry_s
            self._open_loss = snapshot.open_loss
            raise

    def _checkpoint_if_low_on_space(self) -> None:
        """Near a full disk, keep the WAL small and give its file back (see LOW_SPACE_BYTES):
        one statvfs a commit, and a look at the WAL's frame count only when space is low.

        TRUNCATE, not PASSIVE: a WAL file that keeps its size is reused from its start, so
        commits would go on succeeding in it while the main file can no longer grow to take
        their pages, and the checkpoint would then fail for good (the store wedges with a WAL
        it can neither copy nor restart). With the WAL file given back, a commit that needs
        space fails at once, with SQLITE_FULL, and the store evicts."""
        free = free_bytes(self._path.parent)
        if free is None or free >= LOW_SPACE_BYTES:
            return
        frames = self._wal.frames()
        if frames is None or frames[0] <= frames[1]:
            return
        if (frames[0] - frames[1]) * self._page_bytes < free * LOW_SPACE_WAL_FRACTION:
            return
        try:
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            _log.debug("outbox: checkpoint on low space failed: %s", exc)

    def _write_meta(self, now_s: float) -> None:
        conn = self._db()
        conn.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(self._next_seq),))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'store_clock_s'", (repr(now_s),))
        self._persisted_clock_s = now_s

    def _delete_rows(
        self, row_ids: Sequence[int], *, event_ids: bool = False
    ) -> list[tuple[int, int, str]]:
        """Delete rows; return (row_id, size, event_id) of those that existed. The event id is
        read only when asked for (losses): acks are the hot path."""
        conn = self._db()
        gone: list[tuple[int, int, str]] = []
        # As bytes: an event id that is not valid UTF-8 (damage) must not fail an eviction.
        returning = (
            "row_id, size, CAST(event_id AS BLOB), block"
            if event_ids
            else "row_id, size, '', block"
        )
        for cls, ids in _by_class(row_ids):
            table = EVENT_TABLES[cls]
            blocks: set[int] = set()
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                for row_id, size, event_id, block in conn.execute(
                    f"DELETE FROM {table} WHERE row_id IN ({marks}) RETURNING {returning}",
                    tuple(chunk),
                ).fetchall():
                    if event_ids:
                        event_id = bytes(event_id or b"").decode("utf-8", "replace")
                    gone.append((row_id, size, event_id))
                    self._depth[cls] -= 1
                    self._bytes[cls] -= size
                    if block is not None:
                        blocks.add(block)
            for block in blocks:
                self._payloads[cls].forget(block)
                # Gone with its last event: a range probe on the primary key.
                conn.execute(
                    "DELETE FROM payload_blocks WHERE id = ? AND NOT EXISTS ("
                    f"SELECT 1 FROM {table} WHERE row_id >= payload_blocks.first_row_id "
                    "AND row_id <= payload_blocks.last_row_id)",
                    (block,),
                )
        return gone

    def _insert(self, pending: list[list[_NewRow]], wall_s: float, now_s: float) -> None:
        """Insert accepted rows (per class: row id, event, size, in order) and empty
        ``pending``. Per class, consecutive payloads go into payload blocks of at most
        BLOCK_MAX_BYTES; a group smaller than BLOCK_MIN_BYTES (or a single event) stays
        inline."""
        conn = self._db()
        blocks: list[tuple[int, int, int, bytes]] = []
        # Short names keep each row on one line: r = row id, e = event, z = counted size,
        # w / t = wall and store clock of this commit.
        w, t = wall_s, now_s
        for cls, items in enumerate(pending):
            if not items:
                continue
            rows: list[tuple[object, ...]] = []
            add = rows.append
            for group, nbytes in _block_groups(items):
                if len(group) == 1 or nbytes < BLOCK_MIN_BYTES:
                    for r, e, z in group:
                        c = row_crc(e.event_id, e.kind, e.source, e.payload)
                        add(
                            (
                                r,
                                e.event_id,
                                e.kind,
                                e.source,
                                e.payload,
                                z,
                                w,
                                t,
                                None,
                                None,
                                None,
                                c,
                            )
                        )
                    continue
                # The sequence number of its first event: unique for the store's life
                # (never reused, unlike max(id) + 1 after the table empties) and growing
                # from commit to commit.
                block = group[0][0] & SEQ_MASK
                blocks.append(
                    (block, group[0][0], group[-1][0], b"".join(e.payload for _, e, _ in group))
                )
                offset = 0
                for r, e, z in group:
                    n = len(e.payload)
                    c = row_crc(e.event_id, e.kind, e.source, e.payload)
                    add((r, e.event_id, e.kind, e.source, None, z, w, t, block, offset, n, c))
                    offset += n
            items.clear()
            conn.executemany(_INSERT[cls], rows)
        # In id order: each one is then appended at the end of the b-tree.
        blocks.sort()
        conn.executemany(
            "INSERT INTO payload_blocks (id, first_row_id, last_row_id, data) VALUES (?, ?, ?, ?)",
            blocks,
        )

    # -- accept / ack -------------------------------------------------------------------------

    def commit(self, events: Sequence[OutboxEvent], acks: Collection[int]) -> list[AcceptStatus]:
        """Insert ``events`` and delete ``acks`` in one transaction; return per-event status.

        On a full disk: release the space reserve, checkpoint the WAL, cap the store below
        what it holds, evict by the rules and retry once. If the events still do not fit, the
        acks are deleted on their own (that frees space and needs little) and the events get
        DISK_FULL."""
        now_s = self.store_clock()
        if self._disk_cap is not None:
            self._recover_space()
        try:
            try:
                return self._commit_once(events, acks, now_s)
            except sqlite3.Error as exc:
                if not is_disk_full(exc):
                    raise
                self._on_disk_full(now_s, events)
            try:
                return self._commit_once(events, acks, now_s)
            except sqlite3.Error as exc:
                if not is_disk_full(exc) or not acks or not events:
                    raise
                with suppress(sqlite3.Error):
                    self._commit_once((), acks, now_s)
                raise
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _evict_to_disk_cap(
        self, events: Sequence[OutboxEvent], now_s: float, tally: _LossTally
    ) -> None:
        """Under a learned disk-full cap, evict (by the rules) what ``events`` need."""
        if not events or self._disk_cap is None:
            return
        incoming = sum(len(event.payload) + ROW_OVERHEAD_BYTES for event in events)
        excess = sum(self._bytes) + incoming - self._disk_cap
        if excess > 0:
            top = min(event.event_class for event in events)
            self._make_room(excess, top, now_s, tally)

    def _on_disk_full(self, now_s: float, events: Sequence[OutboxEvent]) -> None:
        """SQLITE_FULL: make room for the store's own housekeeping and cap it below its size."""
        released = self._reserve.release()
        try:
            # The WAL's pages go to the main file and the WAL file is given back: what the
            # eviction below writes to the WAL comes from that space and the reserve's.
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            _log.debug("outbox: checkpoint on a full disk failed: %s", exc)
        total = sum(self._bytes)
        cap = max(0, min(int(total * DISK_FULL_SHRINK_RATIO), total - DISK_FULL_SLACK_BYTES))
        self._disk_cap = cap if self._disk_cap is None else min(cap, self._disk_cap)
        if events:
            # Evict in a transaction of its own (few pages: the rows' leaves and the free
            # list), then checkpoint again: the pages it freed are then free pages of the main
            # file, and the WAL is empty again for the insert that reuses them. In the same
            # transaction, the WAL would have to hold both at once.
            tally = _LossTally()
            try:
                with self._transaction():
                    self._evict_to_disk_cap(events, now_s, tally)
                    if tally:
                        self._record_loss_event(tally, now_s)
                self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                _log.debug("outbox: evicting on a full disk failed: %s", exc)
        self._disk_full_log.add(
            1,
            now_s,
            f"{total} bytes stored, capped at {self._disk_cap}"
            + (", space reserve released" if released else ""),
        )

    def _recover_space(self) -> None:
        """Drop the learned cap once the file system has room again: the reserve back, and a
        margin beyond it. Checked only while capped (one statvfs a commit)."""
        if not self._reserve.ensure():
            return
        free = free_bytes(self._path.parent)
        if free is not None and free >= RECOVER_MARGIN_BYTES:
            self._room_log.add(
                1, self.store_clock(), f"{free} bytes free, no longer capped at {self._disk_cap}"
            )
            self._disk_cap = None

    def _commit_once(
        self, events: Sequence[OutboxEvent], acks: Collection[int], now_s: float
    ) -> list[AcceptStatus]:
        conn = self._db()
        statuses: list[AcceptStatus] = []
        tally = _LossTally()
        wall_s = self._clock.now().timestamp()
        batch_seen: dict[int, None] = {}
        refused = 0
        with self._transaction():
            if acks:
                self._delete_rows(sorted(acks))
            cap = self._config.max_bytes
            # The disk filled up below the configured cap: make room for this batch first,
            # within what it may evict. If that is not enough the insert fails again and the
            # caller gets DISK_FULL.
            self._evict_to_disk_cap(events, now_s, tally)
            # Rows go in with one executemany (far cheaper than a call per row); they are
            # flushed before anything is evicted, so eviction sees every row of this batch.
            pending: list[list[_NewRow]] = [[] for _ in EventClass]
            room = cap - sum(self._bytes)
            seen, depth, nbytes = self._dedup, self._depth, self._bytes
            accepted, duplicate = AcceptStatus.ACCEPTED, AcceptStatus.DUPLICATE
            for event in events:
                key = event.event_id if event.dedup_key is None else event.dedup_key
                key_digest = digest(key)
                if key_digest in seen or key_digest in batch_seen:
                    statuses.append(duplicate)
                    continue
                size = (
                    len(event.payload)
                    + len(event.event_id)
                    + len(key)
                    + len(event.kind)
                    + len(event.source)
                    + ROW_OVERHEAD_BYTES
                )
                if size > room:
                    self._insert(pending, wall_s, now_s)
                    made = self._make_room(size - room, event.event_class, now_s, tally)
                    room = cap - sum(self._bytes)
                    if not made:
                        statuses.append(AcceptStatus.REFUSED)
                        refused += 1
                        continue
                room -= size
                cls = event.event_class
                seq = self._next_seq
                self._next_seq = seq + 1
                pending[cls].append(((cls << CLASS_SHIFT) | seq, event, size))
                batch_seen[key_digest] = None
                depth[cls] += 1
                nbytes[cls] += size
                statuses.append(accepted)
            self._insert(pending, wall_s, now_s)
            if tally:
                self._record_loss_event(tally, now_s)
            if batch_seen:
                # This row also carries the store clock and the next sequence number, so the
                # meta page need not be rewritten by every commit (one page less per commit).
                conn.execute(
                    "INSERT INTO seen_keys (newest_store_s, next_seq, digests) VALUES (?, ?, ?)",
                    (now_s, self._next_seq, pack(batch_seen)),
                )
            elif events or tally:
                self._write_meta(now_s)
        # Committed: only now may in-memory state that has no rollback change.
        for row_id in acks:
            self._leased[row_id >> CLASS_SHIFT].discard(row_id)
        if batch_seen:
            self._dedup.add(batch_seen, now_s)
            self._persisted_keys += len(batch_seen)
            self._persisted_clock_s = now_s
        self._duplicates += statuses.count(AcceptStatus.DUPLICATE)
        if refused:
            self._refused += refused
            self._refuse_log.add(refused, now_s, f"store at {sum(self._bytes)} bytes")
        return statuses

    # -- capacity -----------------------------------------------------------------------------

    def _scan(self, event_class: EventClass, column: str) -> Iterator[list[tuple[int, Any, int]]]:
        """(row_id, column, is a loss report) of one class, oldest first, in chunks; the
        caller may delete the rows of a chunk before asking for the next."""
        after = class_range(event_class)[0] - 1
        # Compared in SQL: a kind that is not valid UTF-8 must not fail the scan.
        is_loss = f"kind = '{LOSS_KIND}'" if event_class is EventClass.STATUS else "0"
        while (
            rows := self._db()
            .execute(
                f"SELECT row_id, {column}, {is_loss} FROM {EVENT_TABLES[event_class]} "
                "WHERE row_id > ? ORDER BY row_id LIMIT ?",
                (after, SCAN_CHUNK_ROWS),
            )
            .fetchall()
        ):
            yield rows
            after = rows[-1][0]

    def _make_room(
        self, needed: int, for_class: EventClass, now_s: float, tally: _LossTally
    ) -> bool:
        """Free ``needed`` bytes: expired rows first, then the oldest of the lowest classes,
        never a class above ``for_class``. Leased rows are left alone (they may be delivered),
        and so are loss reports: they are the only trace of what was lost."""
        freed = self._expire(now_s, tally)
        for event_class in sorted(EventClass, reverse=True):
            if event_class < for_class:
                break
            leased = self._leased[event_class]
            if freed >= needed or self._depth[event_class] <= len(leased):
                continue
            for rows in self._scan(event_class, "size"):
                doomed: list[int] = []
                for row_id, size, is_loss in rows:
                    if is_loss or row_id in leased:
                        continue
                    doomed.append(row_id)
                    freed += size
                    if freed >= needed:
                        break
                gone = self._delete_rows(doomed, event_ids=True)
                for row_id, _size, event_id in gone:
                    tally.add(event_class, "evicted", row_id, event_id)
                if gone:
                    self._evict_log.add(
                        len(gone), now_s, f"class {event_class.name.lower()} at the byte cap"
                    )
                if freed >= needed or self._depth[event_class] <= len(leased):
                    break
            if freed >= needed:
                return True
        return freed >= needed

    def _expire(self, now_s: float, tally: _LossTally) -> int:
        """Delete rows older than their class's TTL; return the bytes freed."""
        if now_s < self._next_expiry_s:
            return 0
        freed = 0
        next_check = math.inf
        for event_class in EventClass:
            ttl = self._config.ttl_for(event_class)
            if ttl is None or self._depth[event_class] == 0:
                continue
            for rows in self._scan(event_class, "accepted_store_s"):
                doomed = []
                young = False
                for row_id, accepted_s, is_loss in rows:
                    if is_loss:
                        continue  # a loss report does not expire: it must reach the platform
                    if accepted_s + ttl > now_s:
                        # accepted_store_s grows with the row id within a class: all later
                        # rows are younger.
                        next_check = min(next_check, accepted_s + ttl)
                        young = True
                        break
                    if row_id in self._leased[event_class]:
                        next_check = min(next_check, now_s + LEASED_EXPIRY_RECHECK_S)
                        continue
                    doomed.append(row_id)
                gone = self._delete_rows(doomed, event_ids=True)
                for row_id, size, event_id in gone:
                    tally.add(event_class, "expired", row_id, event_id)
                    freed += size
                if gone:
                    self._expire_log.add(
                        len(gone), now_s, f"class {event_class.name.lower()} past its TTL"
                    )
                if young:
                    break
        self._next_expiry_s = next_check
        return freed

    def _record_loss_event(
        self, tally: _LossTally, now_s: float, notice: dict[str, object] | None = None
    ) -> None:
        """Count the losses and report them in an ``outbox.loss`` event (class STATUS).

        While the previous loss event is still queued and has never been leased, it is updated
        instead of adding another: a store evicting at the cap on every commit then carries
        one growing loss record, not one per commit. Once leased, a report is never changed
        again (it goes out under the same event id). It bypasses the byte cap, and is neither
        evicted nor expired: it is small and is the only trace of what was lost.

        ``notice`` makes a report of its own, never merged into: fields that override or
        extend the body (``reason`` ``store_corrupt`` or ``storage_damage``, a ``count``).
        """
        conn = self._db()
        for (event_class, reason), count in tally.counts.items():
            conn.execute(
                "INSERT INTO losses (event_class, reason, count) VALUES (?, ?, ?) "
                "ON CONFLICT (event_class, reason) DO UPDATE SET count = count + excluded.count",
                (int(event_class), reason, count),
            )
            self._losses[(event_class, reason)] = self._losses.get((event_class, reason), 0) + count
        wall = self._clock.now()
        open_loss = self._open_loss
        if (
            open_loss is not None
            and notice is None
            and open_loss.row_id not in self._leased[EventClass.STATUS]
        ):
            merged = open_loss.tally.merged(tally)
            payload = self._loss_payload(open_loss.event_id, merged, open_loss.since, wall, None)
            old = conn.execute(
                "SELECT size FROM events_status WHERE row_id = ?", (open_loss.row_id,)
            ).fetchone()
            if old is not None:
                size = self._loss_size(payload, open_loss.event_id)
                crc = row_crc(open_loss.event_id, LOSS_KIND, LOSS_SOURCE, payload)
                conn.execute(
                    "UPDATE events_status SET payload = ?, size = ?, crc = ? WHERE row_id = ?",
                    (payload, size, crc, open_loss.row_id),
                )
                self._bytes[EventClass.STATUS] += size - int(old[0])
                self._open_loss = _OpenLoss(
                    open_loss.row_id, open_loss.event_id, merged, open_loss.since
                )
                return
        seq = self._next_seq
        row_id = row_id_for(EventClass.STATUS, seq)
        event_id = f"{LOSS_KIND}:{self._epoch}:{seq}"
        payload = self._loss_payload(event_id, tally, wall, wall, notice)
        size = self._loss_size(payload, event_id)
        conn.execute(
            _INSERT[EventClass.STATUS],
            (
                row_id,
                event_id,
                LOSS_KIND,
                LOSS_SOURCE,
                payload,
                size,
                wall.timestamp(),
                now_s,
                *_INLINE,
                row_crc(event_id, LOSS_KIND, LOSS_SOURCE, payload),
            ),
        )
        self._next_seq += 1
        self._depth[EventClass.STATUS] += 1
        self._bytes[EventClass.STATUS] += size
        self._open_loss = None if notice else _OpenLoss(row_id, event_id, tally, wall)
        # The sequence number is on disk even after the report is delivered and deleted: the
        # high-water check at start must not mistake it for a commit that went missing.
        self._write_meta(now_s)

    @staticmethod
    def _loss_size(payload: bytes, event_id: str) -> int:
        return len(payload) + 2 * len(event_id) + len(LOSS_KIND) + ROW_OVERHEAD_BYTES

    def _loss_payload(
        self,
        event_id: str,
        tally: _LossTally,
        since: datetime,
        wall: datetime,
        notice: dict[str, object] | None,
    ) -> bytes:
        body: dict[str, object] = {
            "kind": LOSS_KIND,
            "event_id": event_id,
            "store_epoch": self._epoch,
            "since": since.isoformat(),
            "at": wall.isoformat(),
            "count": sum(tally.counts.values()),
            "losses": [
                {"class": c.name.lower(), "reason": r, "count": n}
                for (c, r), n in sorted(tally.counts.items())
            ],
            "first_row_id": tally.first_row_id,
            "last_row_id": tally.last_row_id,
            "first_event_id": tally.first_event_id or None,
            "last_event_id": tally.last_event_id or None,
        }
        if notice:
            body.update(notice)
        return json.dumps(body, separators=(",", ":")).encode()

    def sweep(self) -> int:
        """Expire what is past its TTL; persist the store clock now and then. Returns expired."""
        now_s = self.store_clock()
        tally = _LossTally()
        if self._disk_cap is not None:
            self._recover_space()
        try:
            if now_s >= self._next_expiry_s:
                with self._transaction():
                    self._expire(now_s, tally)
                    if tally:
                        self._record_loss_event(tally, now_s)
                        self._write_meta(now_s)
            if now_s - self._persisted_clock_s >= STORE_CLOCK_PERSIST_S:
                with self._transaction():
                    self._write_meta(now_s)
            self._dedup.expire(now_s)
            self._prune_seen_keys(now_s)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        shortened = self._dedup.shortened_to_s
        if shortened is not None and not self._dedup_warned:
            _log.warning(
                "outbox: more than %d dedup keys in %.0f s: keys are remembered for only the "
                "last %.0f s (raise dedup_max_keys)",
                self._config.dedup_max_keys,
                self._config.dedup_retention_s,
                shortened,
            )
        self._dedup_warned = shortened is not None
        return sum(tally.counts.values())

    # -- lease / release / reject -------------------------------------------------------------

    def leasable(self) -> int:
        return sum(self._depth[c] - len(self._leased[c]) for c in EventClass)

    def _allocate(self, available: dict[EventClass, int], max_events: int) -> dict[EventClass, int]:
        """Weighted fair queueing over classes: each pick costs 1/weight of virtual time, the
        backlogged class with the smallest virtual time (then the higher class) goes next.
        Virtual times persist across calls, so even ``lease(1)`` serves every class in turn."""
        backlog = {c: n for c, n in available.items() if n > 0}
        for c in backlog:
            # A class that was idle gets no credit for the time it had nothing to send.
            self._vtime[c] = max(self._vtime[c], self._global_vtime)
        cost = {c: 1.0 / self._config.weight_for(c) for c in backlog}
        # (virtual time, class): the heap's order is the pick order, ties to the higher class.
        heap = [(self._vtime[c], c) for c in backlog]
        heapq.heapify(heap)
        alloc: dict[EventClass, int] = {}
        remaining = max_events
        while remaining and heap:
            vtime, pick = heap[0]
            # The class on top keeps picking while it stays below the runner-up (the smaller
            # of the heap's two children): the same picks as one heap step each, fewer steps.
            runner_up = min(heap[1:3]) if len(heap) > 1 else None
            step, left, picks = cost[pick], backlog[pick], 0
            while True:
                self._global_vtime = vtime
                vtime += step
                picks += 1
                left -= 1
                if picks == remaining or not left:
                    break
                if runner_up is not None and (vtime, pick) > runner_up:
                    break
            self._vtime[pick] = vtime
            alloc[pick] = alloc.get(pick, 0) + picks
            remaining -= picks
            backlog[pick] = left
            if left:
                heapq.heapreplace(heap, (vtime, pick))
            else:
                heapq.heappop(heap)
        return alloc

    def lease(
        self, max_events: int, classes: Collection[EventClass] | None = None
    ) -> list[LeasedEvent]:
        """Hand out up to ``max_events`` unleased rows: by weighted share across classes, in
        arrival order within a class (and so within a source). Higher classes come first."""
        if max_events <= 0:
            return []
        wanted = EventClass if classes is None else sorted(set(classes))
        available = {c: self._depth[c] - len(self._leased[c]) for c in wanted}
        alloc = self._allocate(available, max_events)
        now_s = self.store_clock()
        out: list[LeasedEvent] = []
        self._saw_expired = False
        cursors = list(self._cursor)
        try:
            for event_class in sorted(alloc):
                out.extend(self._fetch(event_class, alloc[event_class], now_s))
        except sqlite3.Error as exc:
            # Nothing of this lease was handed out: un-lease it and read it again next time.
            for event in out:
                self._leased[event.event_class].discard(event.row_id)
            self._cursor = cursors
            raise translate(exc) from exc
        if self._damaged:
            self._dead_letter_damaged(now_s)
        if self._saw_expired:
            # Expired rows still count as leasable until deleted: remove them now, or the
            # uplink would be woken for rows it can never lease.
            self._next_expiry_s = -math.inf
            try:
                self.sweep()
            except OutboxError as exc:
                _log.warning("outbox: sweeping expired rows failed: %s", exc)
        return out

    def _fetch(self, event_class: EventClass, count: int, now_s: float) -> list[LeasedEvent]:
        table = EVENT_TABLES[event_class]
        ttl = self._config.ttl_for(event_class)
        leased = self._leased[event_class]
        out: list[LeasedEvent] = []
        payloads = self._payloads[event_class]
        # Exactly what is wanted first (a class with a small share wants one or two rows);
        # more each round when rows had to be skipped (still leased after a release).
        limit = count
        damaged = self._damaged
        while len(out) < count:
            rows, unreadable = self._read_rows(table, self._cursor[event_class], limit)
            limit *= 2
            if not rows:
                break
            last = rows[-1][0]
            for row_id, event_id, kind, source, inline, wall_s, accepted_s, *place, crc in rows:
                if row_id in leased:
                    continue
                if unreadable and row_id in unreadable:
                    damaged.append((row_id, unreadable[row_id]))
                    leased.add(row_id)  # not handed out, nor evicted, until dead-lettered
                    continue
                expires_in = None if ttl is None else ttl - (now_s - accepted_s)
                if expires_in is not None and expires_in <= 0 and kind != LOSS_KIND:
                    self._saw_expired = True  # swept at the end of this lease
                    continue
                if ttl is not None and kind == LOSS_KIND:
                    expires_in = None  # a loss report never expires, not at the broker either
                payload = payloads.read(inline, *place)
                if crc is not None and row_crc(event_id, kind, source, payload) != crc:
                    damaged.append((row_id, "checksum mismatch"))
                    leased.add(row_id)
                    continue
                out.append(
                    LeasedEvent(
                        row_id, event_id, event_class, kind, payload, source, wall_s, expires_in
                    )
                )
                if len(out) == count:
                    last = row_id
                    break
            self._cursor[event_class] = last
        # Marked leased only now: if a read above failed, none of these rows is lost to a
        # lease that was never handed out.
        leased.update(event.row_id for event in out)
        open_loss = self._open_loss
        if open_loss is not None and open_loss.row_id in leased:
            # Handed out: from now on it is what the platform may have, byte for byte. Later
            # losses go into a new report, even if this one comes back unacknowledged.
            self._open_loss = None
        return out

    def _read_rows(
        self, table: str, after: int, limit: int
    ) -> tuple[list[tuple[Any, ...]], dict[int, str]]:
        """The next rows of a class to lease, and which of them cannot be read (by row id,
        with why). A text column that is not valid UTF-8 (a damaged card) fails the whole
        query in the sqlite3 module: the rows are then read again as bytes and decoded here,
        so one bad row is dead-lettered instead of failing every lease."""
        conn = self._db()
        columns = (
            "payload, accepted_wall_s, accepted_store_s, block, block_offset, block_length, crc "
            f"FROM {table} WHERE row_id > ? ORDER BY row_id LIMIT ?"
        )
        try:
            rows = conn.execute(
                f"SELECT row_id, event_id, kind, source, {columns}", (after, limit)
            ).fetchall()
            return rows, {}
        except sqlite3.Error:
            raw = conn.execute(
                "SELECT row_id, CAST(event_id AS BLOB), CAST(kind AS BLOB), "
                f"CAST(source AS BLOB), {columns}",
                (after, limit),
            ).fetchall()
        out: list[tuple[Any, ...]] = []
        unreadable: dict[int, str] = {}
        for row_id, *texts, rest in ((r[0], r[1], r[2], r[3], r[4:]) for r in raw):
            decoded: list[str] = []
            for name, value in zip(("event_id", "kind", "source"), texts, strict=True):
                try:
                    decoded.append(bytes(value or b"").decode("utf-8"))
                except UnicodeDecodeError:
                    unreadable.setdefault(row_id, f"{name} is not valid UTF-8")
                    decoded.append("")
            out.append((row_id, *decoded, *rest))
        return out, unreadable

    def _dead_letter_damaged(self, now_s: float) -> None:
        """Move the rows found damaged by a lease to the dead letters, with the reason, and
        report them (``outbox.loss``, reason ``damaged``). If that cannot be written now,
        they stay leased (skipped) and are found again after the next ``release_all``."""
        damaged, self._damaged = self._damaged, []
        conn = self._db()
        now_wall = self._clock.now().timestamp()
        why = dict(damaged)
        ids = sorted(why)
        tally = _LossTally()
        try:
            with self._transaction():
                for event_class, class_ids in _by_class(ids):
                    payloads = PayloadReader(conn)
                    for chunk in _chunks(class_ids):
                        marks = ",".join("?" * len(chunk))
                        rows = conn.execute(
                            "SELECT row_id, CAST(event_id AS BLOB), CAST(kind AS BLOB), "
                            "CAST(source AS BLOB), payload, size, accepted_wall_s, "
                            "accepted_store_s, block, block_offset, block_length "
                            f"FROM {EVENT_TABLES[event_class]} WHERE row_id IN ({marks})",
                            tuple(chunk),
                        ).fetchall()
                        for row_id, eid, kind, source, inline, size, wall_s, st_s, *place in rows:
                            event_id = bytes(eid or b"").decode("utf-8", "replace")
                            try:
                                payload = payloads.read(inline, *place)
                            except sqlite3.DatabaseError:
                                payload = b""
                            conn.execute(
                                "INSERT OR REPLACE INTO dead_letters (row_id, event_id, "
                                "event_class, kind, source, payload, size, accepted_wall_s, "
                                "accepted_store_s, reason, rejected_wall_s) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (
                                    row_id,
                                    event_id,
                                    int(event_class),
                                    bytes(kind or b"").decode("utf-8", "replace"),
                                    bytes(source or b"").decode("utf-8", "replace"),
                                    payload,
                                    size,
                                    wall_s,
                                    st_s,
                                    f"damaged on storage: {why[row_id]}",
                                    now_wall,
                                ),
                            )
                            tally.add(event_class, "damaged", row_id, event_id)
                self._delete_rows(ids)
                if tally:
                    self._record_loss_event(tally, now_s)
        except sqlite3.Error as exc:
            _log.warning("outbox: could not dead-letter %d damaged rows yet: %s", len(ids), exc)
            return
        for event_class, class_ids in _by_class(ids):
            self._leased[event_class].difference_update(class_ids)
        self._damage_log.add(
            len(ids), now_s, f"moved to dead letters: {'; '.join(sorted(set(why.values())))}"
        )

    def release(self, row_ids: Iterable[int]) -> None:
        """Un-lease rows (not delivered); they are handed out again, in order."""
        for row_id in row_ids:
            cls = row_id >> CLASS_SHIFT
            if 0 <= cls < len(EventClass) and row_id in self._leased[cls]:
                self._leased[cls].discard(row_id)
                self._cursor[cls] = min(self._cursor[cls], row_id - 1)

    def release_all(self, keep: Collection[int] = frozenset()) -> None:
        """Un-lease everything but ``keep`` (acked rows whose delete is not written yet)."""
        for event_class in EventClass:
            leased = self._leased[event_class]
            kept = [row_id for row_id in keep if row_id in leased]
            leased.clear()
            leased.update(kept)
            self._cursor[event_class] = class_range(event_class)[0] - 1

    def reject(self, row_ids: Iterable[int], reason: str) -> int:
        """Move rows to the dead-letter table with ``reason``; return how many moved."""
        ids = sorted(set(row_ids))
        now_wall = self._clock.now().timestamp()
        try:
            with self._transaction():
                for event_class, class_ids in _by_class(ids):
                    self._copy_to_dead_letters(event_class, class_ids, reason, now_wall)
                gone = self._delete_rows(ids)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        for event_class, class_ids in _by_class(ids):
            self._leased[event_class].difference_update(class_ids)
        if gone:
            _log.warning("outbox: %d events dead-lettered: %s", len(gone), reason)
        return len(gone)

    def _copy_to_dead_letters(
        self, event_class: EventClass, row_ids: Sequence[int], reason: str, now_wall: float
    ) -> None:
        """Copy rows of one class into the dead-letter table, payloads inline."""
        conn = self._db()
        payloads = PayloadReader(conn)
        for chunk in _chunks(row_ids):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT row_id, event_id, kind, source, payload, size, accepted_wall_s, "
                "accepted_store_s, block, block_offset, block_length "
                f"FROM {EVENT_TABLES[event_class]} WHERE row_id IN ({marks})",
                tuple(chunk),
            ).fetchall()
            conn.executemany(
                "INSERT OR REPLACE INTO dead_letters (row_id, event_id, event_class, kind, source, "
                "payload, size, accepted_wall_s, accepted_store_s, reason, rejected_wall_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self._dead_letter(row, payloads, reason, now_wall) for row in rows],
            )

    @staticmethod
    def _dead_letter(
        row: tuple[Any, ...], payloads: PayloadReader, reason: str, now_wall: float
    ) -> tuple[object, ...]:
        """A dead-letter row from an events row; the payload is copied inline (it outlives
        its block)."""
        row_id, event_id, kind, source, inline, size, wall_s, store_s, *place = row
        payload = payloads.read(inline, *place)
        cls = row_id >> CLASS_SHIFT
        return (
            row_id,
            event_id,
            cls,
            kind,
            source,
            payload,
            size,
            wall_s,
            store_s,
            reason,
            now_wall,
        )

    def requeue_dead(self, row_ids: Collection[int] | None = None) -> int:
        """Move dead letters back into the queue (new position, fresh TTL); return how many.

        An operator's decision: no dedup check (the platform de-duplicates by event id).
        """
        conn = self._db()
        now_s = self.store_clock()
        query = (
            "SELECT row_id, event_id, event_class, kind, source, payload, size, "
            "accepted_wall_s FROM dead_letters"
        )
        if row_ids is None:
            rows = conn.execute(query + " ORDER BY row_id").fetchall()
        else:
            rows = []
            for chunk in _chunks(sorted(set(row_ids))):
                marks = ",".join("?" * len(chunk))
                rows.extend(conn.execute(query + f" WHERE row_id IN ({marks})", tuple(chunk)))
        requeued = 0
        try:
            with self._transaction():
                for old_id, event_id, cls, kind, source, payload, size, wall_s in rows:
                    row_id = row_id_for(EventClass(cls), self._next_seq)
                    crc = row_crc(event_id, kind, source, payload)
                    conn.execute(
                        _INSERT[cls],
                        (
                            row_id,
                            event_id,
                            kind,
                            source,
                            payload,
                            size,
                            wall_s,
                            now_s,
                            *_INLINE,
                            crc,
                        ),
                    )
                    conn.execute("DELETE FROM dead_letters WHERE row_id = ?", (old_id,))
                    self._next_seq += 1
                    self._depth[cls] += 1
                    self._bytes[cls] += size
                    requeued += 1
                self._write_meta(now_s)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        return requeued

    # -- inspection ---------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        conn = self._db()
        now_s = self.store_clock()
        classes: list[ClassStats] = []
        try:
            for event_class in EventClass:
                oldest = oldest_store_s(conn, event_class)
                classes.append(
                    ClassStats(
                        event_class=event_class,
                        depth=self._depth[event_class],
                        bytes=self._bytes[event_class],
                        oldest_age_s=None if oldest is None else max(0.0, now_s - oldest),
                    )
                )
            dead = int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        return OutboxStats(
            store_epoch=self._epoch,
            schema_version=SCHEMA_VERSION,
            classes=tuple(classes),
            total_bytes=sum(self._bytes),
            max_bytes=self._config.max_bytes,
            disk_full_cap_bytes=self._disk_cap,
            leased=sum(len(s) for s in self._leased),
            dead_letters=dead,
            losses=tuple(
                LossCount(event_class=c, reason=r, count=n)
                for (c, r), n in sorted(self._losses.items())
            ),
            quarantined=self._quarantined,
            duplicates=self._duplicates,
            refused=self._refused,
            commits=self._commits,
            dedup_keys=len(self._dedup),
            dedup_shortened_to_s=self._dedup.shortened_to_s,
        )
