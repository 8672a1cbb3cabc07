"""TaskOwner: named tasks, stop with drain, failures, and the caller's cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from foundation.lifecycle import TaskOwner


async def test_tasks_are_named_and_visible_until_they_end() -> None:
    release = asyncio.Event()
    async with TaskOwner("comp") as owner:
        task = owner.spawn(release.wait(), name="waiter")
        assert task.get_name() == "comp:waiter"
        assert owner.task("waiter") is task
        assert owner.task_names == ["waiter"]
        release.set()
        await task
        await asyncio.sleep(0)  # the done callback runs on the next loop turn
        assert owner.task("waiter") is None
        assert owner.task_names == []


async def test_two_live_tasks_of_one_name_are_refused() -> None:
    async with TaskOwner("comp") as owner:
        owner.spawn(asyncio.Event().wait(), name="x")
        with pytest.raises(RuntimeError, match="already running"):
            owner.spawn(asyncio.Event().wait(), name="x")


async def test_many_tasks_of_one_kind_are_numbered() -> None:
    release = asyncio.Event()
    async with TaskOwner("bus") as owner:
        first = owner.spawn(release.wait(), name="call", many=True)
        second = owner.spawn(release.wait(), name="call", many=True)
        assert (first.get_name(), second.get_name()) == ("bus:call#1", "bus:call#2")
        assert owner.task_names == ["call#1", "call#2"]
        release.set()


async def test_spawn_outside_start_stop_is_refused() -> None:
    owner = TaskOwner("comp")
    with pytest.raises(RuntimeError, match="outside"):
        owner.spawn(asyncio.sleep(0), name="early")
    await owner.start()
    await owner.stop()
    with pytest.raises(RuntimeError, match="outside"):
        owner.spawn(asyncio.sleep(0), name="late")


async def test_stop_cancels_named_tasks_and_drains_the_others() -> None:
    drained = asyncio.Event()
    finish = asyncio.Event()
    cancelled: list[str] = []

    async def flusher() -> None:
        await finish.wait()
        drained.set()

    async def sweeper() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("sweeper")
            finish.set()  # the drain may end once the sweeper is gone
            raise

    owner = TaskOwner("outbox")
    await owner.start()
    owner.spawn(flusher(), name="flusher")
    owner.spawn(sweeper(), name="sweeper")
    await asyncio.sleep(0)
    await owner.stop(cancel=("sweeper",))
    assert cancelled == ["sweeper"]
    assert drained.is_set()


async def test_resources_close_after_the_tasks_in_reverse_order() -> None:
    order: list[str] = []

    async def task() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            order.append("task")

    owner = TaskOwner("comp")
    owner.callback(lambda: order.append("first resource"))
    owner.callback(lambda: order.append("second resource"))
    await owner.start()
    owner.spawn(task(), name="t")
    await asyncio.sleep(0)
    await owner.stop()
    assert order == ["task", "second resource", "first resource"]


async def test_a_failing_task_cancels_its_siblings_and_stop_raises_it() -> None:
    sibling_cancelled = asyncio.Event()

    async def sibling() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise

    async def failing() -> None:
        raise ValueError("boom")

    async def component() -> None:
        # The failure cancels the task that owns the group (this body), as a TaskGroup does.
        async with TaskOwner("comp") as owner:
            owner.spawn(sibling(), name="sibling")
            owner.spawn(failing(), name="failing")
            await asyncio.Event().wait()

    with pytest.raises(ExceptionGroup) as info:
        await component()
    assert sibling_cancelled.is_set()
    assert info.group_contains(ValueError, match="boom")


async def test_caller_cancelled_while_stopping_propagates() -> None:
    """The caller's cancel reaches it, and only once the tasks are gone."""
    in_cleanup = asyncio.Event()
    release = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            in_cleanup.set()
            await release.wait()

    async def component() -> None:
        owner = TaskOwner("comp")
        await owner.start()
        tasks.append(owner.spawn(slow_to_stop(), name="slow"))
        await asyncio.sleep(0)
        await owner.stop()
        raise AssertionError("stop() returned although the caller was cancelled")

    caller = asyncio.create_task(component())
    await in_cleanup.wait()
    caller.cancel()
    await asyncio.sleep(0)  # the cancel reaches the caller inside stop()
    assert not tasks[0].done()
    release.set()  # the cleanup finishes: only then does the caller's cancel come out
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
    assert tasks[0].done()  # awaited, not abandoned


async def test_caller_cancelled_while_a_failure_is_collected_still_propagates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio.TaskGroup drops a cancel that arrives while it is aborting after a child
    failed; the owner must not (and the failure is logged, not lost)."""
    in_cleanup = asyncio.Event()
    release = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            in_cleanup.set()
            while not release.is_set():  # a cleanup that outlasts repeated cancels
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    continue

    async def fails_when_stopped() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await in_cleanup.wait()
            raise ValueError("boom") from None

    async def component() -> None:
        owner = TaskOwner("comp")
        await owner.start()
        tasks.append(owner.spawn(slow_to_stop(), name="slow"))
        tasks.append(owner.spawn(fails_when_stopped(), name="failing"))
        await asyncio.sleep(0)
        await owner.stop()

    caller = asyncio.create_task(component())
    await in_cleanup.wait()
    with pytest.raises(ValueError, match="boom"):
        await tasks[1]
    caller.cancel()  # arrives while the group is aborting because of the failure
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
    assert "comp: task failed while stopping" in caplog.text


async def test_caller_cancelled_while_draining_cancels_the_drained_task() -> None:
    drain_cancelled = asyncio.Event()
    draining = asyncio.Event()

    async def drains_forever() -> None:
        draining.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            drain_cancelled.set()
            raise

    async def component() -> None:
        owner = TaskOwner("comp")
        await owner.start()
        owner.spawn(drains_forever(), name="flusher")
        await owner.stop(cancel=())

    caller = asyncio.create_task(component())
    await draining.wait()
    await asyncio.sleep(0)  # the caller is now inside stop(), waiting for the drain
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert drain_cancelled.is_set()


@pytest.mark.parametrize("cancel", [None, ()], ids=["cancel-all", "drain"])
async def test_a_task_failing_while_stopping_is_its_failure_not_a_cancel(
    cancel: tuple[str, ...] | None,
) -> None:
    """A task that fails during stop() (here: when it is cancelled, or while draining) makes
    stop() raise that failure; the group's own cancel of this task is taken back, so it is
    neither reported as a cancel of the caller nor left pending on the caller."""
    failing_now = asyncio.Event()

    async def fails_on_the_way_out() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await failing_now.wait()
        raise ValueError("lost the connection")

    owner = TaskOwner("comp")
    await owner.start()
    owner.spawn(fails_on_the_way_out(), name="publisher")
    await asyncio.sleep(0)
    failing_now.set()  # drain: it fails by itself while stop() waits for it
    with pytest.raises(ExceptionGroup) as info:
        await owner.stop(cancel=cancel)
    assert info.group_contains(ValueError, match="lost the connection")
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
