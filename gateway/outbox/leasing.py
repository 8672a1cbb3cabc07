"""Leasing: the fair scheduler across classes, in order within a class.

:meth:`Leasing.lease` hands out unleased rows by weighted fair queueing over the classes
(virtual times persist across calls, so even ``lease(1)`` serves every class in turn) and in
arrival order within a class; each row's checksum is checked on the way out. Leases live in
memory only: :meth:`Leasing.release_all` after a lost connection, nothing at a restart.
"""

from __future__ import annotations

import heapq
import logging
import math
import sqlite3
from collections.abc import Collection, Iterable
from typing import Any

from gateway.outbox.errors import OutboxError
from gateway.outbox.models import (
    EventClass,
    LeasedEvent,
)
from gateway.outbox.schema import (
    CLASS_SHIFT,
    EVENT_TABLES,
    class_range,
    row_crc,
)
from gateway.outbox.store_base import (
    LOSS_KIND,
    StoreBase,
    translate,
)

_log = logging.getLogger(__name__)


class Leasing(StoreBase):
    """Leasing: the fair scheduler across classes, in order within a class."""

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
