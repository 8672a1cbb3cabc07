"""TTL: rows older than their class's time to live are deleted and reported.

Age is counted on the store clock (seconds the store has been open), so a wall clock set
forwards or backwards never expires anything. The sweep also persists the store clock now
and then and prunes the dedup keys.
"""

from __future__ import annotations

import logging
import math
import sqlite3

from gateway.outbox.losses import LostRows
from gateway.outbox.models import (
    EventClass,
)
from gateway.outbox.store_base import (
    LEASED_EXPIRY_RECHECK_S,
    STORE_CLOCK_PERSIST_S,
    StoreBase,
    translate,
)

_log = logging.getLogger(__name__)


class Expiry(StoreBase):
    """TTL: rows older than their class's time to live are deleted and reported."""

    def _expire(self, now_s: float, tally: LostRows) -> int:
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

    def sweep(self) -> int:
        """Expire what is past its TTL; persist the store clock now and then. Returns expired."""
        now_s = self.store_clock()
        tally = LostRows()
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
