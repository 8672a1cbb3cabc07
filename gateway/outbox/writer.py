"""The outbox's writer thread: the one thread that runs SQLite for the store, by priority.

SQLite never runs on the event loop, and one connection must not be used by two threads at
once, so every store operation is a job for this thread. Jobs run one at a time, the most
urgent first and in submission order within a priority: an alarm's commit must not wait behind
a lease or an ack batch that happened to be queued before it (the uplink's drain keeps the
writer busy with those). A job that has started always runs to its end: priorities reorder
the queue, they do not interrupt a transaction.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from enum import IntEnum
from typing import Any, TypeVar

_T = TypeVar("_T")


class WriterJobOrder(IntEnum):
    """Which queued store job the writer thread runs next; lower runs first. (Not the event
    classes' priority, :class:`gateway.outbox.EventClass`, which orders what is sent.)"""

    #: Commits holding accepted events: a reader or an alarm waits for them.
    ACCEPT = 0
    #: Leases: the uplink's window waits for them (and a just committed alarm goes out with
    #: the next one); an acked row merely stays leased a little longer.
    LEASE = 1
    #: Ack batches, sweeps, inspection: nobody waits for them.
    NORMAL = 2
    #: Closing the store: after everything handed in before it.
    LAST = 3


_Job = tuple[Callable[[], Any], "Future[Any]"]


class WriterThread:
    """A single worker thread with a priority queue of jobs; results come back as futures."""

    def __init__(self, name: str) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, priority: WriterJobOrder, func: Callable[[], _T]) -> Future[_T]:
        future: Future[_T] = Future()
        self._queue.put((priority, next(self._order), (func, future)))
        return future

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread and wait for it."""
        self._queue.put((WriterJobOrder.LAST + 1, next(self._order), None))
        self._thread.join()

    def _run(self) -> None:
        while True:
            _priority, _order, job = self._queue.get()
            if job is None:
                return
            func, future = job
            if not future.set_running_or_notify_cancel():
                continue  # the caller gave up before it started
            try:
                result = func()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
