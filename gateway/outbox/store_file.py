"""The store's file: lock it, check it (and move a corrupt one aside), open, load, close.

One process at a time holds ``<file>.lock`` (flock); a file that fails SQLite's integrity
check is quarantined (moved aside with its WAL) and a new store started, with a loss report
saying so; committed events that a damaged WAL lost are found against the high-water side
file and reported (docs/outbox.md, "Damage on the card").
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import uuid

from gateway.outbox.checkpoint import Checkpointer
from gateway.outbox.dedup import DedupMemory
from gateway.outbox.errors import OutboxError, OutboxErrorReason
from gateway.outbox.losses import LostRows
from gateway.outbox.models import (
    EventClass,
)
from gateway.outbox.schema import (
    EVENT_TABLES,
    SEQ_MASK,
    PayloadReader,
    SchemaTooNewError,
    class_range,
    configure,
    keep_damaged_wal,
    last_commit_marks,
    migrate,
    refuse_newer,
)
from gateway.outbox.store_base import (
    CHECKPOINT_BACKSTOP_FACTOR,
    StoreBase,
    translate,
)
from gateway.sqlite_file import check_integrity, quarantine

_log = logging.getLogger(__name__)


class StoreFile(StoreBase):
    """The store's file: lock it, check it (and move a corrupt one aside), open, load, close."""

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
                self._record_loss_event(LostRows(), self.store_clock(), damage)
        self._high_water.write(self._next_seq)
        if self._quarantined:
            tally = LostRows()
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
