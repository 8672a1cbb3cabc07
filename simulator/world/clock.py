"""Simulated time that runs at ``speed`` times real time.

The runner asks this clock "how far into the scenario are we?" each tick. Real time comes from an
injected monotonic source, so tests drive the simulation with a fake one instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

__all__ = ["SimClock"]


class SimClock:
    """Scenario time: ``speed`` simulated seconds per real second, starting at ``start``.

    It also has ``monotonic()`` and ``now()``, so it can stand in wherever a clock with that
    shape is expected (both report simulated time).
    """

    def __init__(
        self,
        start: datetime,
        *,
        speed: float = 1.0,
        real_monotonic: Callable[[], float] = time.monotonic,
        lead_in_real_s: float = 0.0,
    ) -> None:
        """``lead_in_real_s``: t = 0 falls that many real seconds from now (before it the
        elapsed time is negative: the world waits at its start)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        if lead_in_real_s < 0:
            raise ValueError("lead_in_real_s must not be negative")
        if start.utcoffset() is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self.start = start
        self.speed = speed
        self._real = real_monotonic
        self._t0_real = real_monotonic() + lead_in_real_s

    @property
    def t0_real(self) -> float:
        """The real monotonic time at t = 0. CLOCK_MONOTONIC is one clock for every process on
        the machine, so another process can follow scenario time from it."""
        return self._t0_real

    def elapsed_s(self) -> float:
        """Simulated seconds since the start."""
        return (self._real() - self._t0_real) * self.speed

    def monotonic(self) -> float:
        return self.elapsed_s()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed_s())

    def real_delay_s(self, sim_s: float) -> float:
        """How long to wait in real time until ``sim_s`` simulated seconds from now."""
        return max(0.0, sim_s / self.speed)

    def real_seconds_until(self, t_s: float) -> float:
        """Real seconds until the scenario reaches ``t_s`` (0 if already past)."""
        return self.real_delay_s(t_s - self.elapsed_s())
