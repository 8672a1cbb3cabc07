"""The shape every driver shares: an async context manager that owns its tasks and hands raw
events inward through a bounded queue.

Callbacks stop here. A transport module (BLE, serial, GPS) subclasses :class:`Driver`, runs its
device loop in :meth:`Driver._run` (reconnects and recovery included) and calls
:meth:`Driver._emit` for every raw event. The gateway consumes :meth:`Driver.events`. When the
consumer falls behind, the queue's :class:`OverflowPolicy` decides what is dropped, and every drop
is counted so that supervision and metrics can see it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

from foundation.clock import Clock
from foundation.lifecycle import TaskOwner

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "REJECT_LOG_INTERVAL_S",
    "BurstLog",
    "Driver",
    "EventQueue",
    "OverflowPolicy",
    "QueueStats",
]

T = TypeVar("T")

#: Room for about ten seconds of a busy dock door (hundreds of tags at 10 Hz would be more, but
#: the consumer drains in microseconds per event; a full queue means the gateway is stuck).
DEFAULT_QUEUE_SIZE: Final = 10_000

#: At most one log line per this interval about bad input: a noisy line (EMI, wrong baud rate)
#: produces thousands of rejects a second, and the per-reason counters carry the detail.
REJECT_LOG_INTERVAL_S: Final = 10.0

_log = logging.getLogger(__name__)


class OverflowPolicy(Enum):
    """What a full queue does with a new event."""

    #: Keep the newest data: right for adverts and positions, where a newer reading supersedes.
    DROP_OLDEST = "drop-oldest"
    #: Keep what is queued: right where order matters more than freshness.
    DROP_NEWEST = "drop-newest"


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counters of one driver queue."""

    offered: int
    delivered: int
    dropped: int
    depth: int


class EventQueue(Generic[T]):
    """A bounded FIFO for one consumer, fed without blocking from the event loop.

    ``put`` never waits: a driver callback must return at once. Items past ``maxsize`` are
    dropped by the policy and counted. ``close`` ends the consumer's iteration once the queue
    is drained.
    """

    def __init__(
        self, maxsize: int = DEFAULT_QUEUE_SIZE, policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: collections.deque[T] = collections.deque()
        self._maxsize = maxsize
        self._policy = policy
        self._ready = asyncio.Event()
        self._closed = False
        self._offered = 0
        self._delivered = 0
        self._dropped = 0

    def put(self, item: T) -> bool:
        """Queue ``item``; False when the policy dropped an item (this one or the oldest)."""
        if self._closed:
            raise RuntimeError("queue is closed")
        self._offered += 1
        kept = True
        if len(self._items) >= self._maxsize:
            self._dropped += 1
            kept = False
            if self._policy is OverflowPolicy.DROP_NEWEST:
                return False
            self._items.popleft()
        self._items.append(item)
        self._ready.set()
        return kept

    def close(self) -> None:
        """No more items: the consumer's iteration ends after what is queued."""
        self._closed = True
        self._ready.set()

    async def get(self) -> T:
        """The next item; raises :class:`StopAsyncIteration` once closed and drained."""
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        self._delivered += 1
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    @property
    def stats(self) -> QueueStats:
        return QueueStats(self._offered, self._delivered, self._dropped, len(self._items))

    @property
    def policy(self) -> OverflowPolicy:
        return self._policy


class BurstLog:
    """One warning per burst of bad input or drops: the first at once, then at most one line
    per ``interval_s``, each with how many happened since the previous line and the totals."""

    def __init__(
        self,
        logger: logging.Logger,
        name: str,
        what: str,
        clock: Clock,
        interval_s: float = REJECT_LOG_INTERVAL_S,
    ) -> None:
        self._logger = logger
        self._name = name
        self._what = what
        self._clock = clock
        self._interval_s = interval_s
        self._since_log = 0
        self._logged_at: float | None = None

    def reject(self, detail: str, totals: Mapping[str, int]) -> bool:
        """Note one reject (or drop); True when this one was logged."""
        self._since_log += 1
        now = self._clock.monotonic()
        if self._logged_at is not None and now - self._logged_at < self._interval_s:
            return False
        self._logger.warning(
            "%s: %s (%s); %d since the last report, totals %s",
            self._name,
            self._what,
            detail,
            self._since_log,
            dict(totals),
        )
        self._logged_at = now
        self._since_log = 0
        return True


class Driver(ABC, Generic[T]):
    """Base class of every driver: owns a TaskGroup, runs :meth:`_run`, feeds one queue.

    Use as ``async with driver: async for event in driver.events(): ...``. Leaving the context
    cancels the driver's tasks, awaits them, and ends the iteration.
    """

    def __init__(
        self,
        *,
        name: str,
        clock: Clock,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
    ) -> None:
        self.name = name
        self._clock = clock
        self._queue: EventQueue[T] = EventQueue(queue_size, overflow)
        self._owner = TaskOwner(f"driver:{name}")
        self._last_event_at: float | None = None
        self._drop_log = BurstLog(_log, name, "event queue full", clock)

    @property
    def last_event_at(self) -> float | None:
        """Monotonic time of the last event this driver produced (None before the first)."""
        return self._last_event_at

    @property
    def queue_stats(self) -> QueueStats:
        return self._queue.stats

    def events(self) -> AsyncIterator[T]:
        """The raw events, in arrival order, until the driver stops."""
        return self._queue

    def _emit(self, event: T) -> None:
        """Hand one raw event inward; called from the loop, never blocks."""
        self._last_event_at = self._clock.monotonic()
        if not self._queue.put(event):
            # A stuck consumer drops thousands a second: one line per burst, not per drop.
            self._drop_log.reject(self._queue.policy.value, {"dropped": self._queue.stats.dropped})

    @abstractmethod
    async def _run(self) -> None:
        """The device loop: open, read, recover, repeat, until cancelled."""

    async def __aenter__(self) -> Self:
        # Stopping cancels the loop first, then ends the iteration, then closes the device.
        self._owner.push_async_callback(self._close_quietly)
        self._owner.callback(self._queue.close)
        await self._owner.start()
        self._owner.spawn(self._run(), name="run")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._owner.stop(exc_type, exc, tb)

    async def _close_quietly(self) -> None:
        try:
            await self._close()
        except Exception:
            _log.exception("%s: error while closing the device", self.name)

    async def _close(self) -> None:
        """Release the device once the tasks are gone (override where there is one)."""
