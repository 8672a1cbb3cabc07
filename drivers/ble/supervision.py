"""When to restart a silent scan and when to power cycle the adapter: the pure decision half of
the BLE driver's watchdog, driven by the injected clock.

The driver reports scan starts and failed starts and asks :meth:`ScanSupervisor.check` now and
then; the answer escalates from nothing, to a scan restart, to an adapter power cycle once
restarts in a row have not brought a single advert back. Power cycles are capped: a site where
no tag is in range at all (a closed dock door at night) looks exactly like a wedged controller
over D-Bus (the adapter is powered and reports ``Discovering``), so after
``max_power_cycles_while_silent`` fruitless power cycles the supervisor only restarts the scan,
until an advert re-arms the ladder.
"""

from __future__ import annotations

import enum

from foundation.clock import Clock

__all__ = ["RecoveryAction", "ScanSupervisor"]


class RecoveryAction(enum.Enum):
    NONE = "none"
    RESTART_SCAN = "restart-scan"
    POWER_CYCLE = "power-cycle"


class ScanSupervisor:
    """Watchdog state of one scanner."""

    def __init__(
        self,
        clock: Clock,
        *,
        silence_timeout_s: float,
        restarts_before_power_cycle: int,
        max_power_cycles_while_silent: int = 1,
    ) -> None:
        self._clock = clock
        self._timeout_s = silence_timeout_s
        self._restarts_before_power_cycle = restarts_before_power_cycle
        self._max_power_cycles = max_power_cycles_while_silent
        self._started_at = clock.monotonic()
        #: Restarts and failed starts since the last advert (or the last power cycle).
        self.failures = 0
        #: Power cycles since the last advert.
        self.power_cycles_while_silent = 0
        #: The newest advert time a check has seen.
        self._heard_at: float | None = None

    @property
    def power_cycles_exhausted(self) -> bool:
        """No power cycle is left until an advert arrives: the site looks quiet."""
        return self.power_cycles_while_silent >= self._max_power_cycles

    def scan_started(self) -> None:
        self._started_at = self._clock.monotonic()

    def start_failed(self) -> None:
        self.failures += 1

    def before_start(self) -> RecoveryAction:
        """Whether to power cycle before the next start (after repeated failures)."""
        if self.failures > self._restarts_before_power_cycle:
            return self._escalate(RecoveryAction.NONE)
        return RecoveryAction.NONE

    def check(self, last_event_at: float | None) -> RecoveryAction:
        """What to do now, given the monotonic time of the last advert (None if never)."""
        since = self._started_at
        if last_event_at is not None:
            if self._heard_at is None or last_event_at > self._heard_at:
                # New data since the last look (even if it came in while a scan was still
                # starting): the radio works, whatever failed before is healed.
                self._heard_at = last_event_at
                self.failures = 0
                self.power_cycles_while_silent = 0
            since = max(since, last_event_at)
        if self._clock.monotonic() - since < self._timeout_s:
            return RecoveryAction.NONE
        self.failures += 1
        if self.failures > self._restarts_before_power_cycle:
            return self._escalate(RecoveryAction.RESTART_SCAN)
        return RecoveryAction.RESTART_SCAN

    def _escalate(self, otherwise: RecoveryAction) -> RecoveryAction:
        """The ladder's top: a power cycle if one is left, else ``otherwise``."""
        self.failures = 0
        if self.power_cycles_exhausted:
            return otherwise
        self.power_cycles_while_silent += 1
        return RecoveryAction.POWER_CYCLE
