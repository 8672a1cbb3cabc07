"""The ground floor of the outbox store: its in-memory state, transactions, row I/O.

:class:`StoreBase` holds what every room of the store shares (the connection, per-class depth
and byte totals, leases, the sequence number, the store clock) and the primitives they build
on: :meth:`StoreBase._transaction` (commit, or roll back the in-memory totals with the
database), :meth:`StoreBase._insert` and :meth:`StoreBase._delete_rows`. The rooms are mixins
on it, each in its own module; :class:`gateway.outbox.store.Store` puts them together.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from foundation.clock import Clock
from gateway.outbox.checkpoint import LOW_SPACE_WAL_FRACTION, Checkpointer, WalIndex
from gateway.outbox.config import OutboxConfig
from gateway.outbox.dedup import DedupMemory
from gateway.outbox.errors import OutboxError, OutboxErrorReason
from gateway.outbox.highwater import HighWater
from gateway.outbox.models import (
    EventClass,
    OutboxEvent,
)
from gateway.outbox.schema import (
    BLOCK_MAX_BYTES,
    BLOCK_MIN_BYTES,
    CLASS_SHIFT,
    EVENT_TABLES,
    SEQ_MASK,
    PayloadReader,
    class_range,
    row_crc,
)
from gateway.outbox.space import SpaceReserve, free_bytes

if TYPE_CHECKING:
    from gateway.outbox.losses import LostRows, QueuedLossReport

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
class _Snapshot:
    depth: list[int]
    nbytes: list[int]
    next_seq: int
    losses: dict[tuple[EventClass, str], int]
    next_expiry_s: float
    open_loss: QueuedLossReport | None


class BurstLog:
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


class StoreBase:
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
        self._open_loss: QueuedLossReport | None = None
        self._saw_expired = False
        self._disk_cap: int | None = None
        self._reserve = SpaceReserve(Path(f"{path}.reserve"), config.disk_reserve_bytes)
        self._high_water = HighWater(Path(f"{path}.seq"))
        self._page_bytes = 4096
        self._disk_full_log = BurstLog("disk full", "commits")
        self._room_log = BurstLog("disk has room again", "times")
        self._damage_log = BurstLog("found damaged rows", "rows")
        #: Rows a lease found damaged (row id, why), dead-lettered at the end of the lease.
        self._damaged: list[tuple[int, str]] = []
        self._duplicates = 0
        self._refused = 0
        self._commits = 0
        self._evict_log = BurstLog("evicted")
        self._expire_log = BurstLog("expired")
        self._refuse_log = BurstLog("refused (full, nothing evictable)")

    @property
    def store_epoch(self) -> str:
        return self._epoch

    @property
    def quarantined(self) -> tuple[str, ...]:
        return self._quarantined

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

    # -- implemented by the other rooms (see gateway/outbox/store.py) ------------------------

    def _record_loss_event(
        self, tally: LostRows, now_s: float, notice: dict[str, object] | None = None
    ) -> None:
        raise NotImplementedError  # LossReports

    def _expire(self, now_s: float, tally: LostRows) -> int:
        raise NotImplementedError  # Expiry

    def sweep(self) -> int:
        raise NotImplementedError  # Expiry

    def _make_room(self, needed: int, for_class: EventClass, now_s: float, tally: LostRows) -> bool:
        raise NotImplementedError  # Capacity

    def _evict_to_disk_cap(
        self, events: Sequence[OutboxEvent], now_s: float, tally: LostRows
    ) -> None:
        raise NotImplementedError  # Capacity

    def _on_disk_full(self, now_s: float, events: Sequence[OutboxEvent]) -> None:
        raise NotImplementedError  # Capacity

    def _recover_space(self) -> None:
        raise NotImplementedError  # Capacity

    def _load_seen_keys(self) -> None:
        raise NotImplementedError  # SeenKeys

    def _prune_seen_keys(self, now_s: float) -> None:
        raise NotImplementedError  # SeenKeys

    def _dead_letter_damaged(self, now_s: float) -> None:
        raise NotImplementedError  # DeadLetters
