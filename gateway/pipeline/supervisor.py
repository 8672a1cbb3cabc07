"""Supervision of the pipeline's stages: restart with backoff, give up loudly.

A stage is a coroutine that runs until its input ends. If it raises, the supervisor logs the
traceback, counts the failure and starts it again after a backoff that doubles from
``restart_min_s`` to ``restart_max_s``. A stage that fails ``max_failures`` times within
``failure_window_s`` raises :class:`StageFailed`, which ends the process with a clear message so
that systemd restarts it from a clean state. Cancellation is never swallowed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from foundation.clock import Clock
from gateway.errors import GatewayError
from gateway.pipeline.config import SupervisionConfig

__all__ = ["StageFailed", "Supervisor"]

_log = logging.getLogger(__name__)


class StageFailed(GatewayError):
    """A stage kept failing: the process should exit (systemd restarts it)."""

    def __init__(self, stage: str, failures: int, window_s: float) -> None:
        super().__init__(
            f"pipeline stage {stage!r} failed {failures} times within {window_s:.0f} s; "
            "exiting so that the service manager restarts the gateway"
        )
        self.stage = stage
        self.failures = failures


class Supervisor:
    """Runs stages with restart-on-failure; counts failures per stage."""

    def __init__(self, config: SupervisionConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self.failures: collections.Counter[str] = collections.Counter()
        self.restarts: collections.Counter[str] = collections.Counter()

    async def run(self, name: str, stage: Callable[[], Awaitable[None]]) -> None:
        """Run ``stage`` until it returns; restart it when it raises."""
        cfg = self._config
        recent: collections.deque[float] = collections.deque()
        delay = cfg.restart_min_s
        while True:
            started = self._clock.monotonic()
            try:
                await stage()
                return
            except Exception:
                now = self._clock.monotonic()
                if now - started > cfg.restart_max_s:
                    delay = cfg.restart_min_s  # it ran fine for a while: a fresh failure
                self.failures[name] += 1
                recent.append(now)
                while recent and now - recent[0] > cfg.failure_window_s:
                    recent.popleft()
                _log.exception(
                    "pipeline stage %s failed (%d in the last %.0f s)",
                    name,
                    len(recent),
                    cfg.failure_window_s,
                )
                if len(recent) >= cfg.max_failures:
                    raise StageFailed(name, len(recent), cfg.failure_window_s) from None
            _log.warning("restarting pipeline stage %s in %.1f s", name, delay)
            await asyncio.sleep(delay)
            self.restarts[name] += 1
            delay = min(delay * 2, cfg.restart_max_s)
