"""De-duplication keys on disk: each commit's key digests, read back at open, pruned.

The keys accepted in the last ``dedup_retention_s`` live in RAM (:class:`DedupMemory`); each
commit appends its keys' digests as one ``seen_keys`` row, so a restart forgets nothing a
reader may still re-send. This room loads them at open and prunes them in the sweep.
"""

from __future__ import annotations

import logging

from gateway.outbox.dedup import unpack
from gateway.outbox.store_base import (
    SCAN_CHUNK_ROWS,
    StoreBase,
    _chunks,
)

_log = logging.getLogger(__name__)


class SeenKeys(StoreBase):
    """De-duplication keys on disk: each commit's key digests, read back at open, pruned."""

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
