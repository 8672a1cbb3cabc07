"""The injected time source shared by drivers and gateway.

Components never call ``time`` or ``datetime.now`` directly; they receive a :class:`Clock`, so
tests can drive time with a fake clock instead of patching modules.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
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
