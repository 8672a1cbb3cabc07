"""Dead letters: rows the platform refused, or found damaged, kept aside with the reason.

A refused row is never retried in a loop; an operator can inspect it and put it back in the
queue (:meth:`DeadLetters.requeue_dead`, ``tagrelay outbox requeue``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from gateway.outbox.losses import LostRows
from gateway.outbox.models import (
    EventClass,
)
from gateway.outbox.schema import (
    CLASS_SHIFT,
    EVENT_TABLES,
    PayloadReader,
    row_crc,
    row_id_for,
)
from gateway.outbox.store_base import (
    _INLINE,
    _INSERT,
    StoreBase,
    _by_class,
    _chunks,
    translate,
)

_log = logging.getLogger(__name__)


class DeadLetters(StoreBase):
    """Dead letters: rows the platform refused, or found damaged, kept aside with the reason."""

    def _dead_letter_damaged(self, now_s: float) -> None:
        """Move the rows found damaged by a lease to the dead letters, with the reason, and
        report them (``outbox.loss``, reason ``damaged``). If that cannot be written now,
        they stay leased (skipped) and are found again after the next ``release_all``."""
        damaged, self._damaged = self._damaged, []
        conn = self._db()
        now_wall = self._clock.now().timestamp()
        why = dict(damaged)
        ids = sorted(why)
        tally = LostRows()
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
