"""The async face of the outbox: the pipeline's ``accept`` and the uplink's lease / ack / reject.

SQLite never runs on the event loop. One dedicated writer thread owns the connection; this
class batches work for it and hands results back through futures:

- group commit: accepts arriving within ``group_commit_window_ms`` (or until
  ``group_commit_max_events``) share one transaction and one fsync. While a commit is running,
  new accepts queue up and go in the next one.
- alarms take a fast lane: an accept holding an alarm is committed at once, with whatever
  accepts are waiting and without the pending acks, as a job that the writer thread runs ahead
  of queued leases and ack batches (see gateway/outbox/writer.py). Accept commits keep their
  order among themselves, so order within a class and source is unchanged.
- acks are deleted in batches, riding the next commit (or after ``ack_flush_delay_ms``); an
  acked row stays leased until then, so it is never handed out twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, TypeVar

from foundation.clock import Clock
from foundation.lifecycle import TaskOwner
from gateway.outbox.config import OutboxConfig
from gateway.outbox.errors import OutboxError, OutboxErrorReason
from gateway.outbox.models import (
    AcceptResult,
    AcceptStatus,
    EventClass,
    LeasedEvent,
    OutboxEvent,
    OutboxStats,
)
from gateway.outbox.store import Store
from gateway.outbox.writer import WriterJobOrder, WriterThread

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Seconds between retries of a failed ack flush (e.g. during an I/O error burst).
ACK_RETRY_DELAY_S: Final = 1.0
#: A failing card fails every commit: one error line per this many seconds, with a count.
ERROR_LOG_BURST_S: Final = 60.0


class _Pending:
    __slots__ = ("events", "future")

    def __init__(self, events: Sequence[OutboxEvent], future: asyncio.Future[AcceptResult]) -> None:
        self.events = events
        self.future = future


class Outbox:
    """Durable store and forward for events; an async context manager owning its tasks."""

    def __init__(self, path: Path, config: OutboxConfig, clock: Clock) -> None:
        self._config = config
        self._store = Store(path, config, clock)
        self._writer: WriterThread | None = None
        self._owner = TaskOwner("outbox")
        self._pending: list[_Pending] = []
        self._pending_events = 0
        self._pending_acks: set[int] = set()
        #: Events committed since start, by kind (for metrics; duplicates and refusals not).
        self.accepted_by_kind: collections.Counter[str] = collections.Counter()
        #: Acks in the commit that is running: they stay leased until it has committed.
        self._committing_acks: set[int] = set()
        #: Rejects that could not be written (disk full, I/O error): retried with the next
        #: commit, the rows stay leased meanwhile.
        self._pending_rejects: list[tuple[list[int], str]] = []
        self._last_commit_failed = False
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        # Set when the next commit should not wait for its window (alarm, full group, flush).
        self._urgent = False
        self._available = asyncio.Event()
        self._open = False
        self._closing = False
        self._in_flight = False
        #: The alarm fast lane's task while it has commits to make (flush waits for it too).
        self._lane: asyncio.Task[None] | None = None
        self._alarm_waiting = False
        #: Set when an alarm commit completes: the uplink sends it ahead of its leased backlog.
        self._alarm_committed = asyncio.Event()
        self._failed_commits = 0
        self._last_error_log_s = -ERROR_LOG_BURST_S

    # -- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Outbox:
        self._writer = WriterThread("outbox-writer")
        try:
            await self._call(self._store.open)
        except BaseException:
            self._writer.shutdown()
            self._writer = None
            raise
        self._open = True
        await self._owner.start()
        self._owner.spawn(self._flusher(), name="flusher")
        self._owner.spawn(self._sweeper(), name="sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Drain: everything handed to accept() and ack() before this point is committed.
        self._closing = True
        self._urgent = True
        self._wake.set()
        try:
            # The flusher (and an alarm lane) end by themselves once drained.
            await self._owner.stop(cancel=("sweeper",))
        finally:
            self._open = False
            writer = self._writer
            if writer is not None:
                try:
                    await self._call(self._store.close, priority=WriterJobOrder.LAST)
                finally:
                    # Even when cancelled: the close job finishes in the thread before this
                    # returns, so the file is never left open.
                    self._writer = None
                    writer.shutdown()
            for pending in self._pending:
                if not pending.future.done():
                    pending.future.set_exception(OutboxError(OutboxErrorReason.CLOSED))

    @property
    def store_epoch(self) -> str:
        return self._store.store_epoch

    async def _call(
        self,
        func: Callable[..., _T],
        *args: object,
        priority: WriterJobOrder = WriterJobOrder.NORMAL,
    ) -> _T:
        if self._writer is None:
            raise OutboxError(OutboxErrorReason.CLOSED)
        store = self._store

        def job() -> tuple[_T, int]:
            return func(*args), store.leasable() if store.store_epoch else 0

        result, leasable = await asyncio.wrap_future(self._writer.submit(priority, job))
        if leasable > 0:
            self._available.set()
        else:
            self._available.clear()
        return result

    def _check_open(self) -> None:
        if not self._open or self._closing:
            raise OutboxError(OutboxErrorReason.CLOSED)

    # -- the pipeline's side ------------------------------------------------------------------

    async def accept(self, events: Sequence[OutboxEvent]) -> AcceptResult:
        """Store events durably; returns once they are committed (or refused / duplicate)."""
        self._check_open()
        if not events:
            return AcceptResult(statuses=())
        future: asyncio.Future[AcceptResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(events, future))
        self._pending_events += len(events)
        if any(event.event_class is EventClass.ALARM for event in events):
            # Now, not when the flusher is back from a commit that may be deleting a
            # thousand acked rows. Alarms arriving while the lane's commit runs go together
            # in its next one (group commit holds here too).
            self._alarm_waiting = True
            if self._lane is None or self._lane.done():
                self._lane = self._owner.spawn(self._alarm_lane(), name="alarm-lane")
        else:
            if self._pending_events >= self._config.group_commit_max_events:
                self._urgent = True
            self._wake.set()
        result = await future
        self.accepted_by_kind.update(
            e.kind
            for e, s in zip(events, result.statuses, strict=True)
            if s is AcceptStatus.ACCEPTED
        )
        return result

    # -- the uplink's side --------------------------------------------------------------------

    async def lease(
        self, max_events: int, classes: Collection[EventClass] | None = None
    ) -> list[LeasedEvent]:
        """The next batch to send: by class share, in order within class and source."""
        self._check_open()
        return await self._call(
            self._store.lease, max_events, classes, priority=WriterJobOrder.LEASE
        )

    async def wait_available(self) -> None:
        """Return when there is something leasable (wakes on commit and release)."""
        await self._available.wait()

    async def wait_alarm(self) -> None:
        """Return once an alarm has been committed since the last return (one consumer).

        Unlike :meth:`wait_available`, which stays set while any backlog is leasable, this
        fires once per alarm commit, so a publisher busy with a backlog can lease the alarm
        (``lease(n, classes={EventClass.ALARM})``) ahead of what it already holds.
        """
        await self._alarm_committed.wait()
        self._alarm_committed.clear()

    async def ack(self, row_ids: Iterable[int]) -> None:
        """Delivered: the rows are deleted in the next batch (they stay leased until then)."""
        self._check_open()
        self._pending_acks.update(row_ids)
        if len(self._pending_acks) >= self._config.ack_batch_max:
            self._urgent = True
        self._wake.set()

    async def reject(self, row_ids: Iterable[int], reason: str) -> None:
        """Refused by the platform: move the rows to the dead-letter table.

        If that cannot be written (disk full, I/O error) the rows stay leased and the move is
        retried with the next commits: this does not raise for it."""
        self._check_open()
        ids = list(row_ids)
        self._pending_acks.difference_update(ids)
        try:
            await self._call(self._store.reject, ids, reason)
        except OutboxError as exc:
            if exc.reason is OutboxErrorReason.CLOSED:
                raise
            self._note_failure(exc, 0)
            self._pending_rejects.append((ids, reason))
            self._wake.set()

    async def release(self, row_ids: Iterable[int]) -> None:
        """Not delivered (e.g. the connection dropped): hand these rows out again."""
        self._check_open()
        ids = [row_id for row_id in row_ids if row_id not in self._pending_acks]
        await self._call(self._store.release, ids)

    async def release_all(self) -> None:
        """Everything leased and not acked is handed out again (after a reconnect).

        Acked rows whose delete is not written yet (it may wait for a full disk) stay leased,
        so they are not sent again; this neither waits for them nor raises for them."""
        self._check_open()
        keep = frozenset(
            self._pending_acks.union(self._committing_acks, *(i for i, _ in self._pending_rejects))
        )
        await self._call(self._store.release_all, keep)

    async def flush(self) -> None:
        """Wait until every accept and ack handed in so far has been committed, or its commit
        has failed: a failed accept raises in its own ``accept`` call, and acks that could not
        be written (disk full, I/O error) stay pending and leased, retried every
        ``ACK_RETRY_DELAY_S``. So this does not raise for a full disk."""
        self._check_open()
        lane = self._lane
        if self._pending or self._pending_acks or self._in_flight:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._flush_waiters.append(waiter)
            self._urgent = True
            self._wake.set()
            await waiter
        if lane is not None and not lane.done():
            await asyncio.wait([lane])

    async def sweep(self) -> int:
        """Expire rows past their TTL now (also done periodically); return how many."""
        self._check_open()
        return await self._call(self._store.sweep)

    async def requeue_dead(self, row_ids: Collection[int] | None = None) -> int:
        """Move dead letters (all, or the given row ids) back into the queue."""
        self._check_open()
        return await self._call(self._store.requeue_dead, row_ids)

    async def stats(self) -> OutboxStats:
        self._check_open()
        return await self._call(self._store.stats)

    # -- background tasks ---------------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            if self._pending_rejects:
                await self._retry_rejects()
            if not self._pending and not self._pending_acks:
                for waiter in self._flush_waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                self._flush_waiters.clear()
                if self._closing:
                    if self._pending_rejects:
                        self._abandon()
                    return
                self._wake.clear()
                if not self._pending_rejects:
                    await self._wake.wait()
                    continue
                # Rejects wait for the disk: try them again in a while.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ACK_RETRY_DELAY_S):
                        await self._wake.wait()
                continue
            await self._wait_for_group()
            self._urgent = False
            await self._commit_pending()
            if self._closing and self._last_commit_failed:
                self._abandon()
                return
            if self._pending:
                # These arrived while the last commit ran: they have waited long enough.
                self._urgent = True

    async def _wait_for_group(self) -> None:
        """Let a group gather: up to the commit window once accepts are pending, up to the ack
        delay while only acks are; at once when something urgent arrives."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not self._urgent and not self._closing:
            delay_ms = (
                self._config.group_commit_window_ms
                if self._pending
                else self._config.ack_flush_delay_ms
            )
            deadline = start + delay_ms / 1000.0
            if loop.time() >= deadline:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()

    async def _alarm_lane(self) -> None:
        """Commit the waiting accepts (alarms among them) at once, without the pending acks;
        repeat while alarms arrived during the last commit."""
        while self._alarm_waiting:
            self._alarm_waiting = False
            batch, self._pending, self._pending_events = self._pending, [], 0
            if batch:
                await self._commit(batch, set(), [])
                self._alarm_committed.set()

    async def _commit_pending(self) -> None:
        batch, self._pending, self._pending_events = self._pending, [], 0
        acks, self._pending_acks = self._pending_acks, set()
        most = self._config.ack_batch_max
        if len(acks) > most:
            # Acks pile up while a commit runs; deleting them all at once would hold the
            # writer (and an alarm queued behind) for that long. The rest go next.
            ordered = sorted(acks)
            acks, self._pending_acks = set(ordered[:most]), set(ordered[most:])
            # A flush (or close) is waiting for them: no ack delay for the rest either.
            self._urgent = len(self._pending_acks) >= most or bool(self._flush_waiters)
        # Flush waiters are settled by the commit that leaves nothing behind, or by a commit
        # that failed (its acks wait for the disk; a flush does not).
        waiters: list[asyncio.Future[None]] = []
        if not self._pending_acks:
            waiters, self._flush_waiters = self._flush_waiters, []
        before = list(self._flush_waiters)
        self._in_flight = True
        self._committing_acks = acks
        try:
            await self._commit(batch, acks, waiters)
        finally:
            self._in_flight = False
            self._committing_acks = set()
        if self._last_commit_failed:
            for waiter in before:
                if not waiter.done():
                    waiter.set_result(None)
            self._flush_waiters = [w for w in self._flush_waiters if not w.done()]

    async def _commit(
        self, batch: list[_Pending], acks: set[int], waiters: list[asyncio.Future[None]]
    ) -> None:
        """Commit accepts and acks in one transaction; settle the callers' futures."""
        events = [event for pending in batch for event in pending.events]
        # Accepts keep their relative order (same priority, FIFO); an ack-only batch yields.
        priority = WriterJobOrder.ACCEPT if events else WriterJobOrder.NORMAL
        try:
            statuses = await self._call(self._store.commit, events, acks, priority=priority)
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, OutboxError)
                else OutboxError(OutboxErrorReason.IO_ERROR, repr(exc))
            )
            self._last_commit_failed = True
            self._note_failure(error, len(events))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            # The acked rows are still stored and leased: retry deleting them later.
            self._pending_acks |= acks
            if acks and not batch and not self._closing:
                await asyncio.sleep(ACK_RETRY_DELAY_S)
            return
        self._last_commit_failed = False
        start = 0
        for pending in batch:
            end = start + len(pending.events)
            if not pending.future.done():
                pending.future.set_result(AcceptResult(statuses=tuple(statuses[start:end])))
            start = end
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _note_failure(self, error: OutboxError, events: int) -> None:
        """One error line per burst of failed writes, with their count."""
        self._failed_commits += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_error_log_s >= ERROR_LOG_BURST_S:
            _log.error(
                "outbox: %d write(s) failed, last with %d events: %s",
                self._failed_commits,
                events,
                error,
            )
            self._failed_commits = 0
            self._last_error_log_s = now

    async def _retry_rejects(self) -> None:
        rejects, self._pending_rejects = self._pending_rejects, []
        for ids, reason in rejects:
            try:
                await self._call(self._store.reject, ids, reason)
            except OutboxError as exc:
                self._note_failure(exc, 0)
                self._pending_rejects.append((ids, reason))

    def _abandon(self) -> None:
        """Closing on a disk that refuses writes: stop retrying, so that shutdown is bounded.
        Accepts still waiting fail (nothing of them was acknowledged to anyone); acks and
        rejects not written only mean those events are sent again after the restart."""
        error = OutboxError(OutboxErrorReason.CLOSED, "the store could not be written at close")
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(error)
        if self._pending_acks or self._pending_rejects:
            _log.warning(
                "outbox: closing with %d acks and %d rejects not written (disk full or I/O "
                "errors); those events will be sent again after the restart",
                len(self._pending_acks),
                sum(len(ids) for ids, _ in self._pending_rejects),
            )
        self._pending, self._pending_events = [], 0
        self._pending_acks = set()
        self._pending_rejects = []
        for waiter in self._flush_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._flush_waiters.clear()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self._config.sweep_interval_s)
            try:
                await self._call(self._store.sweep)
            except OutboxError as exc:
                self._note_failure(exc, 0)  # a full card fails every sweep: once per burst
