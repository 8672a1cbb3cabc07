"""One way to own long-lived tasks: :class:`TaskOwner`, an AsyncExitStack plus one TaskGroup.

Every component that runs tasks of its own (a driver, the outbox, the uplink and its MQTT
session, the simulators) holds a ``TaskOwner``::

    self._owner = TaskOwner("outbox")
    await self._owner.start()                      # in __aenter__
    self._owner.spawn(self._flusher(), name="flusher")
    ...
    await self._owner.stop(cancel=("sweeper",))    # in __aexit__: drain the flusher

Tasks are named ``<owner>:<name>`` and visible by name (:meth:`TaskOwner.task`), so a stuck
shutdown or a failure names the task. Resources the tasks use are entered on the same stack
(:meth:`TaskOwner.enter_async_context`, :meth:`TaskOwner.callback`) before :meth:`start`, so
they are closed after the tasks are gone, in reverse order.

Cancellation of the caller always propagates. ``asyncio.TaskGroup`` swallows a cancel that
reaches its ``__aexit__`` while it is already cancelling its children (after a child failed);
:meth:`TaskOwner.stop` notices the caller's new cancel request and raises ``CancelledError``
after the children are gone. Nothing here suppresses ``CancelledError`` around an await.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

__all__ = ["TaskOwner"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")


class TaskOwner:
    """An exit stack whose last entry is a TaskGroup; :meth:`spawn` adds named tasks to it.

    Usable as ``async with TaskOwner(name) as owner:`` or through :meth:`start` / :meth:`stop`
    from a component's own ``__aenter__`` / ``__aexit__``. A task that fails cancels its
    siblings (TaskGroup semantics) and :meth:`stop` raises the failure as an ExceptionGroup.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._stack = contextlib.AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._numbered = 0

    # -- resources (enter before start(): they outlive the tasks) ---------------------------

    async def enter_async_context(self, cm: contextlib.AbstractAsyncContextManager[_T]) -> _T:
        return await self._stack.enter_async_context(cm)

    def callback(self, func: Callable[[], object]) -> None:
        """Call ``func`` when stopping, after the tasks are gone."""
        self._stack.callback(func)

    def push_async_callback(self, func: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Await ``func()`` when stopping, after the tasks are gone."""
        self._stack.push_async_callback(func)

    # -- tasks -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._group is not None

    async def start(self) -> None:
        """Open the task group; :meth:`spawn` works from here until :meth:`stop`."""
        if self._group is not None:
            raise RuntimeError(f"{self.name}: start() called twice")
        group = asyncio.TaskGroup()
        await group.__aenter__()  # left in stop(), before the stack's resources
        self._group = group

    def spawn(
        self, coro: Coroutine[Any, Any, _T], *, name: str, many: bool = False
    ) -> asyncio.Task[_T]:
        """Run ``coro`` as the task ``<owner>:<name>``. A second live task of one name is
        refused (names are how tasks are found and failures told apart), unless ``many``:
        then each gets a number, ``<name>#<n>`` (short-lived work: one task per message)."""
        if self._group is None:
            coro.close()
            raise RuntimeError(f"{self.name}: spawn({name!r}) outside start() / stop()")
        if many:
            self._numbered += 1
            name = f"{name}#{self._numbered}"
        old = self._tasks.get(name)
        if old is not None and not old.done():
            coro.close()
            raise RuntimeError(f"{self.name}: a task {name!r} is already running")
        task = self._group.create_task(coro, name=f"{self.name}:{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._forget(name, t))
        return task

    def _forget(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]

    def task(self, name: str) -> asyncio.Task[Any] | None:
        """The live task of that name, or None once it ended."""
        return self._tasks.get(name)

    @property
    def task_names(self) -> list[str]:
        """The names of the live tasks (for logs and tests)."""
        return sorted(self._tasks)

    def cancel(self, *names: str) -> None:
        """Cancel the named tasks (those still running); without names, all of them."""
        for name, task in list(self._tasks.items()):
            if not names or name in names:
                task.cancel()

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
        *,
        cancel: Collection[str] | None = None,
    ) -> None:
        """Cancel tasks, wait for all of them, then close the stack's resources. The owner
        can be started again afterwards (with resources entered anew).

        ``cancel`` names the tasks to cancel; the others are waited for to end by themselves
        (a flusher that drains). None (the default) cancels every task. The exception the
        owner's context is left with, if any, is passed as for ``__aexit__``.

        If the caller is cancelled while waiting, every task is cancelled, and once they are
        gone ``CancelledError`` is raised here, also when the TaskGroup would have dropped it.
        """
        current = asyncio.current_task()
        cancels_before = current.cancelling() if current is not None else 0
        group, self._group = self._group, None
        stack, self._stack = self._stack, contextlib.AsyncExitStack()  # startable again
        try:
            if group is not None:
                await self._leave(group, exc_type, exc, tb, cancel)
        except asyncio.CancelledError:
            raise
        except BaseException as failure:
            if current is not None and current.cancelling() > cancels_before:
                # The caller was cancelled while a task's failure was being collected: the
                # cancel wins (the caller asked to stop), the failure is not lost.
                _log.error("%s: task failed while stopping", self.name, exc_info=failure)
                raise asyncio.CancelledError from failure
            raise
        finally:
            await stack.__aexit__(exc_type, exc, tb)
        if current is not None and current.cancelling() > cancels_before:
            raise asyncio.CancelledError

    async def _leave(
        self,
        group: asyncio.TaskGroup,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        cancel: Collection[str] | None,
    ) -> None:
        if cancel is not None:
            # Cancel the named tasks, let the others end by themselves. If one fails, the
            # group cancels this task (its parent) and takes that cancel back when it is
            # left below; a cancel of our caller stays counted and is raised by stop().
            self.cancel(*cancel) if cancel else None
            pending = [t for t in self._tasks.values() if not t.done()]
            if pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(pending)
        # Leave the group as if cancelled, so that it cancels what is left itself: then a
        # task failing from here on does not cancel this task (the group is aborting), and
        # a cancel of our caller, which the group drops while aborting, is seen by stop().
        if exc_type is None:
            sentinel = asyncio.CancelledError()
            try:
                await group.__aexit__(asyncio.CancelledError, sentinel, None)
            except asyncio.CancelledError as raised:
                if raised is not sentinel:
                    raise
        else:
            await group.__aexit__(exc_type, exc, tb)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(exc_type, exc, tb)
