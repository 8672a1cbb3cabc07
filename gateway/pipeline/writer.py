"""The pipeline's way into the outbox for derived events (presence, telemetry, status).

Stages that have no one to acknowledge to (BLE adverts, timers, GPS) hand events to
:class:`EventWriter` without waiting; its task commits everything queued in one
:meth:`Outbox.accept` call, so a burst of adverts becomes one group commit instead of one per
event. The queue is bounded: when the outbox cannot keep up (a disk that stopped answering),
events are dropped, counted and logged once per burst, so the stages never block on storage.
SmartLabel frames do not come this way: they wait for their own commit before the ACK.

:meth:`close` ends intake; :meth:`run` returns once everything queued is committed, which is how
SIGTERM drains.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from typing import Final

from drivers import BurstLog
from foundation.clock import Clock
from gateway.health import StageBeat
from gateway.outbox import AcceptStatus, Outbox, OutboxError, OutboxEvent

__all__ = ["MAX_EVENTS_PER_ACCEPT", "EventWriter"]

_log = logging.getLogger(__name__)

#: One accept call takes at most this many events: a group commit of a few hundred kilobytes.
MAX_EVENTS_PER_ACCEPT: Final = 2_000
#: After a failed commit (disk full, I/O error) wait this long before retrying the same events.
RETRY_AFTER_S: Final = 1.0
#: While stopping, give a failing outbox this many tries: the stop timeout must hold.
RETRIES_WHEN_CLOSING: Final = 3


class EventWriter:
    """Bounded, non-blocking intake in front of :meth:`Outbox.accept`."""

    def __init__(
        self,
        outbox: Outbox,
        clock: Clock,
        *,
        maxsize: int,
        extend: Callable[[Iterable[OutboxEvent]], list[OutboxEvent]] | None = None,
        beat: StageBeat | None = None,
    ) -> None:
        self._outbox = outbox
        #: Busy while a commit is in flight (the watchdog's view, gateway.health).
        self._beat = beat if beat is not None else StageBeat("writer")
        #: Adds derived rows (the EPCIS profile) to what is submitted.
        self._extend = extend
        self._items: collections.deque[OutboxEvent] = collections.deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self._closed = False
        self._drop_log = BurstLog(_log, "pipeline", "event queue full, events dropped", clock)
        self._fail_log = BurstLog(_log, "pipeline", "outbox commit failed, retrying", clock)
        self.submitted = 0
        self.committed = 0
        self.duplicates = 0
        self.refused = 0
        self.dropped = 0

    def submit(self, events: Iterable[OutboxEvent]) -> None:
        """Queue events for the next commit; never waits."""
        if self._closed:
            raise RuntimeError("the event writer is closed")
        if self._extend is not None:
            events = self._extend(events)
        for event in events:
            self.submitted += 1
            if len(self._items) >= self._maxsize:
                self.dropped += 1
                self._drop_log.reject(event.kind, {"dropped": self.dropped})
                continue
            self._items.append(event)
        self._ready.set()

    @property
    def depth(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """No more events: :meth:`run` returns once the queue is committed."""
        self._closed = True
        self._ready.set()

    async def run(self) -> None:
        """Commit queued events until closed and drained."""
        closing_failures = 0
        while True:
            if not self._items:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            n = min(len(self._items), MAX_EVENTS_PER_ACCEPT)
            batch = [self._items[i] for i in range(n)]
            self._beat.busy()
            try:
                result = await self._outbox.accept(batch)
            except OutboxError as exc:
                self._beat.idle()
                self._fail_log.reject(str(exc), {"queued": len(self._items)})
                if self._closed:
                    closing_failures += 1
                    if closing_failures >= RETRIES_WHEN_CLOSING:
                        self.dropped += len(self._items)
                        _log.error(
                            "stopping with %d derived events not committed: %s",
                            len(self._items),
                            exc,
                        )
                        self._items.clear()
                        return
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            self._beat.idle()
            for _ in range(n):
                self._items.popleft()
            for status in result.statuses:
                if status is AcceptStatus.ACCEPTED:
                    self.committed += 1
                elif status is AcceptStatus.DUPLICATE:
                    self.duplicates += 1
                else:
                    self.refused += 1
