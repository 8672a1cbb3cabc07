"""When to restart a silent scan and when to power cycle the adapter: the pure decision half of
the BLE driver's watchdog, driven by the injected clock.

The driver reports scan starts and failed starts and asks :meth:`ScanSupervisor.check` now and
then; the answer escalates from nothing, to a scan restart, to an adapter power cycle once
restarts in a row have not brought a single advert back.
"""

from __future__ import annotations

import enum

from drivers.clock import Clock

__all__ = ["RecoveryAction", "ScanSupervisor"]


class RecoveryAction(enum.Enum):
    NONE = "none"
    RESTART_SCAN = "restart-scan"
    POWER_CYCLE = "power-cycle"


class ScanSupervisor:
    """Watchdog state of one scanner."""

    def __init__(
        self, clock: Clock, *, silence_timeout_s: float, restarts_before_power_cycle: int
    ) -> None:
        self._clock = clock
        self._timeout_s = silence_timeout_s
        self._restarts_before_power_cycle = restarts_before_power_cycle
        self._started_at = clock.monotonic()
        #: Restarts and failed starts since the last advert.
        self.failures = 0

    def scan_started(self) -> None:
        self._started_at = self._clock.monotonic()

    def start_failed(self) -> None:
        self.failures += 1

    def before_start(self) -> RecoveryAction:
        """Whether to power cycle before the next start (after repeated failures)."""
        if self.failures > self._restarts_before_power_cycle:
            self.failures = 0
            return RecoveryAction.POWER_CYCLE
        return RecoveryAction.NONE

    def check(self, last_event_at: float | None) -> RecoveryAction:
        """What to do now, given the monotonic time of the last advert (None if never)."""
        since = self._started_at
        if last_event_at is not None and last_event_at >= self._started_at:
            # Data arrived since this scan started: whatever failed before is healed.
            self.failures = 0
            since = last_event_at
        if self._clock.monotonic() - since < self._timeout_s:
            return RecoveryAction.NONE
        self.failures += 1
        if self.failures > self._restarts_before_power_cycle:
            self.failures = 0
            return RecoveryAction.POWER_CYCLE
        return RecoveryAction.RESTART_SCAN
