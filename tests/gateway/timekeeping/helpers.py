"""A fake clock whose wall time can be set and jump independently of its monotonic time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

BOOT_ID = "5f0c1a3e-7d2b-4e44-9a61-0d8f2c9b7e11"
#: What the (wrong) system clock says at start: an RTC that lost its battery.
RTC_RESET = datetime(2000, 1, 1, tzinfo=UTC)
#: True time at monotonic START_MONO.
TRUE_T0 = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)
START_MONO = 1000.0


class JumpyClock:
    """Monotonic time moved by the test; the wall clock runs with it and can be stepped."""

    def __init__(self, wall: datetime = RTC_RESET, monotonic: float = START_MONO) -> None:
        self.t = monotonic
        self._wall_at_t0 = wall
        self._t0 = monotonic

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self._wall_at_t0 + timedelta(seconds=self.t - self._t0)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set_wall(self, wall: datetime) -> None:
        """Step the wall clock (NTP step, RTC reset); monotonic time does not move."""
        self._wall_at_t0 = wall
        self._t0 = self.t


def true_time(monotonic: float) -> datetime:
    return TRUE_T0 + timedelta(seconds=monotonic - START_MONO)
