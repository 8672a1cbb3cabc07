"""Capacity: the byte cap, eviction by class, and a disk that fills up before the cap.

Room is made from expired rows first, then from the oldest rows of the lowest classes, never
from a class above the one that needs it; leased rows and loss reports are left alone. On
SQLITE_FULL the store releases its space reserve, checkpoints, caps itself below what it
holds and evicts to that cap; the cap is dropped once the file system has room again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from gateway.outbox.losses import LostRows
from gateway.outbox.models import (
    EventClass,
    OutboxEvent,
)
from gateway.outbox.space import RECOVER_MARGIN_BYTES, free_bytes
from gateway.outbox.store_base import (
    DISK_FULL_SHRINK_RATIO,
    DISK_FULL_SLACK_BYTES,
    ROW_OVERHEAD_BYTES,
    StoreBase,
)

_log = logging.getLogger(__name__)


class Capacity(StoreBase):
    """Capacity: the byte cap, eviction by class, and a disk that fills up before the cap."""

    def _make_room(self, needed: int, for_class: EventClass, now_s: float, tally: LostRows) -> bool:
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

    def _evict_to_disk_cap(
        self, events: Sequence[OutboxEvent], now_s: float, tally: LostRows
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
            tally = LostRows()
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
