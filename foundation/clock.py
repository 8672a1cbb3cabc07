"""The injected time source shared by every layer (and scenario time for simulations).

Components never call ``time`` or ``datetime.now`` directly; they receive a :class:`Clock`, so
tests can drive time with a fake clock instead of patching modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Monotonic time for intervals, wall-clock time for stamping events."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for timeouts, TTLs, rates)."""
        ...

    def now(self) -> datetime:
        """The current wall-clock time in UTC (may jump when the clock is set)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock:
    """Scenario time of a simulated world, for a gateway that runs against it.

    A simulation at ``speed`` N runs N scenario seconds per real second from ``start``, which
    it reached at the real monotonic time ``anchor_monotonic_s`` (CLOCK_MONOTONIC is one clock
    for every process of the machine). Rules that count seconds (presence timeouts, custody
    dwell, condition rules) then count scenario seconds, and events are stamped in scenario
    time, as a gateway in that world would. Only for simulations.
    """

    def __init__(
        self,
        start: datetime,
        speed: float,
        anchor_monotonic_s: float,
        *,
        real_monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self.start = start.astimezone(UTC)
        self.speed = speed
        self._anchor = anchor_monotonic_s
        self._real = real_monotonic

    def monotonic(self) -> float:
        return (self._real() - self._anchor) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())
