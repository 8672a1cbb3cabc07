"""Loss accounting: every evicted, expired or damaged row is counted and reported.

:class:`LostRows` collects what one transaction lost; :meth:`LossReports._record_loss_event`
adds it to the per class and reason totals and to an ``outbox.loss`` event (class STATUS),
merged into the queued report while the uplink has not leased it yet
(:class:`QueuedLossReport`). docs/outbox.md, "Loss reports".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from gateway.outbox.models import (
    EventClass,
)
from gateway.outbox.schema import (
    SEQ_MASK,
    row_crc,
    row_id_for,
)
from gateway.outbox.store_base import (
    _INLINE,
    _INSERT,
    LOSS_KIND,
    LOSS_SOURCE,
    ROW_OVERHEAD_BYTES,
    StoreBase,
)

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class LostRows:
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

    def merged(self, other: LostRows) -> LostRows:
        out = LostRows(dict(self.counts))
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
class QueuedLossReport:
    """The queued loss event that later losses are merged into."""

    row_id: int
    event_id: str
    tally: LostRows
    since: datetime


class LossReports(StoreBase):
    """Loss accounting: every evicted, expired or damaged row is counted and reported."""

    def _record_loss_event(
        self, tally: LostRows, now_s: float, notice: dict[str, object] | None = None
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
                self._open_loss = QueuedLossReport(
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
        self._open_loss = None if notice else QueuedLossReport(row_id, event_id, tally, wall)
        # The sequence number is on disk even after the report is delivered and deleted: the
        # high-water check at start must not mistake it for a commit that went missing.
        self._write_meta(now_s)

    @staticmethod
    def _loss_size(payload: bytes, event_id: str) -> int:
        return len(payload) + 2 * len(event_id) + len(LOSS_KIND) + ROW_OVERHEAD_BYTES

    def _loss_payload(
        self,
        event_id: str,
        tally: LostRows,
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
