"""Stage supervision: restart with backoff, give up after too many failures, never swallow a
cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from foundation.clock import SystemClock
from gateway.pipeline.config import SupervisionConfig
from gateway.pipeline.supervisor import StageFailed, Supervisor

FAST = SupervisionConfig(restart_min_s=0.001, restart_max_s=0.004, max_failures=3)


async def test_a_failing_stage_is_restarted_and_its_failures_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def stage() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError(f"bad input {calls}")

    sup = Supervisor(FAST.model_copy(update={"max_failures": 5}), SystemClock())
    with caplog.at_level(logging.ERROR):
        await sup.run("decode", stage)
    assert calls == 3
    assert sup.failures["decode"] == 2
    assert sup.restarts["decode"] == 2
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 2  # each failure logged with its traceback
    assert "bad input 1" in caplog.text


async def test_a_stage_that_keeps_failing_ends_with_a_clear_error() -> None:
    async def stage() -> None:
        raise ValueError("always")

    sup = Supervisor(FAST, SystemClock())
    with pytest.raises(StageFailed, match="'labels' failed 3 times"):
        await sup.run("labels", stage)
    assert sup.failures["labels"] == 3


async def test_cancellation_is_never_swallowed() -> None:
    started = asyncio.Event()

    async def stage() -> None:
        started.set()
        await asyncio.Event().wait()

    sup = Supervisor(FAST, SystemClock())
    task = asyncio.create_task(sup.run("forever", stage))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sup.failures["forever"] == 0
