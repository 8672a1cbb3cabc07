"""The synchronous heart of the outbox: the store, put together from its rooms.

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

The rooms, one module each, all mixins on :class:`gateway.outbox.store_base.StoreBase`:
``store_file`` (lock, integrity check and quarantine, open, load, close), ``seen_keys``
(dedup keys on disk), ``capacity`` (byte cap, eviction, a full disk), ``expiry`` (TTL),
``losses`` (loss accounting and reports), ``leasing`` (the fair scheduler) and
``dead_letters``. docs/outbox.md shows how the store, the writer thread and the checkpointer
fit together.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Sequence
from contextlib import suppress

from gateway.outbox.capacity import Capacity
from gateway.outbox.dead_letters import DeadLetters
from gateway.outbox.dedup import digest, pack
from gateway.outbox.expiry import Expiry
from gateway.outbox.leasing import Leasing
from gateway.outbox.losses import LossReports, LostRows
from gateway.outbox.models import (
    AcceptStatus,
    ClassStats,
    EventClass,
    LossCount,
    OutboxEvent,
    OutboxStats,
)
from gateway.outbox.schema import (
    CLASS_SHIFT,
    SCHEMA_VERSION,
    oldest_store_s,
)
from gateway.outbox.seen_keys import SeenKeys
from gateway.outbox.store_base import (
    CHECKPOINT_BACKSTOP_FACTOR,
    LOSS_KIND,
    ROW_OVERHEAD_BYTES,
    _NewRow,
    is_disk_full,
    translate,
)
from gateway.outbox.store_file import StoreFile

__all__ = ["CHECKPOINT_BACKSTOP_FACTOR", "LOSS_KIND", "Store", "translate"]

_log = logging.getLogger(__name__)


class Store(StoreFile, SeenKeys, Leasing, DeadLetters, Expiry, Capacity, LossReports):
    """One outbox database file; not thread-safe: one caller thread at a time.

    Accepting and acknowledging (one transaction each commit) and the statistics are here;
    the rest is in the rooms it is made of."""

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

    def _commit_once(
        self, events: Sequence[OutboxEvent], acks: Collection[int], now_s: float
    ) -> list[AcceptStatus]:
        conn = self._db()
        statuses: list[AcceptStatus] = []
        tally = LostRows()
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
