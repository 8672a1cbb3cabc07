"""What both GPS sources share: emitting fixes, and keeping the trusted time up to date."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Final, Literal

from drivers.base import DEFAULT_QUEUE_SIZE, BurstLog, Driver, OverflowPolicy
from drivers.gps.events import GpsFixEvent, TrustedTime
from foundation.clock import Clock
from protocols.gps import PositionFix

__all__ = ["TIME_HOLDOVER_S", "GpsDriver"]

#: How long GPS time stays trusted after the last valid fix (tunnel, depot roof): the monotonic
#: clock drifts at most ~50 ppm, i.e. 30 ms over this time, far below event-time precision.
TIME_HOLDOVER_S: Final = 600.0

_log = logging.getLogger(__name__)


class GpsDriver(Driver[GpsFixEvent]):
    """Base of the serial and gpsd GPS drivers: ``events()`` yields :class:`GpsFixEvent`.

    A newer position supersedes an older one, so a full queue drops the oldest fix.
    """

    def __init__(self, *, name: str, clock: Clock, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        super().__init__(
            name=name, clock=clock, queue_size=queue_size, overflow=OverflowPolicy.DROP_OLDEST
        )
        self._last_valid: GpsFixEvent | None = None
        self._trusted: TrustedTime | None = None
        self._reject_log = BurstLog(_log, name, "bad GPS input", clock)

    @property
    def last_valid_fix(self) -> GpsFixEvent | None:
        """The latest fix with a real position (None before the first)."""
        return self._last_valid

    @property
    def trusted_time(self) -> TrustedTime | None:
        """The last GPS time pin, if it is within the holdover; None means "not GPS time"."""
        trusted = self._trusted
        if trusted is None or self._clock.monotonic() - trusted.monotonic > TIME_HOLDOVER_S:
            return None
        return trusted

    def trusted_now(self) -> datetime | None:
        """The current UTC time from GPS, or None when GPS time is not available."""
        trusted = self.trusted_time
        return None if trusted is None else trusted.now(self._clock.monotonic())

    def _emit_fix(self, fix: PositionFix, source: Literal["serial", "gpsd"], device: str) -> None:
        event = GpsFixEvent(fix, source, device, self._clock.monotonic(), self._clock.now())
        if event.valid:
            self._last_valid = event
        if event.time_valid and event.fix.time is not None:
            # A time-only fix (timing receiver) pins the time without being a position.
            self._trusted = TrustedTime(event.fix.time, event.monotonic)
        self._emit(event)

    def _log_reject(self, what: str, totals: Mapping[str, int]) -> None:
        self._reject_log.reject(what, totals)
