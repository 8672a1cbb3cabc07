"""A pipeline stage that keeps failing ends the daemon with EX_SOFTWARE, through both task
owners (the pipeline's and the daemon's), and the journal line names the stage."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from foundation.clock import SystemClock
from gateway.config import GatewayConfig
from gateway.daemon import EXIT_STAGE_FAILED, run_daemon
from gateway.outbox import Outbox, OutboxConfig
from gateway.pipeline.pipeline import Pipeline
from tests.fixtures.mosquitto import free_port

FAILURES = 3


async def test_a_stage_that_keeps_failing_exits_70_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = 0

    async def broken_tick(self: Pipeline) -> None:  # the injected fault: every tick raises
        nonlocal ticks
        ticks += 1
        raise RuntimeError("tick broke")

    monkeypatch.setattr(Pipeline, "_tick", broken_tick)
    config = GatewayConfig.model_validate(
        {
            "gateway_id": "gw-failing",
            "state_dir": str(tmp_path / "state"),
            "uplink": {"host": "127.0.0.1", "port": free_port(), "transport": "tcp"},
            "pipeline": {
                "tick_s": 0.05,
                "supervision": {
                    "restart_min_s": 0.01,
                    "restart_max_s": 0.02,
                    "max_failures": FAILURES,
                },
            },
        }
    )
    with caplog.at_level(logging.CRITICAL, logger="gateway.daemon"):
        code = await run_daemon(config, {})

    assert code == EXIT_STAGE_FAILED
    assert ticks == FAILURES
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert line.startswith(f"pipeline stage 'ticker' failed {FAILURES} times")
    # Everything was closed on the way out: the outbox opens again in this process.
    async with Outbox(tmp_path / "state" / "outbox.db", OutboxConfig(), SystemClock()):
        pass
