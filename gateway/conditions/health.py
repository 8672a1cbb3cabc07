"""Device health: silence learned from a device's reporting interval, chemistry-aware low
battery, stuck readings, and the recovery from each.

Pure domain logic, like the rest of the package: the caller says when a device was heard, what
its battery reads and what values it reported, each with a time, and gets frozen
:class:`HealthResult` values back that the pipeline turns into ``device.status`` events. No I/O,
no clock reads; :meth:`DeviceHealth.tick` is driven by the caller's clock.

Two clocks, kept apart: silence is measured on the clock the device was *heard* on
(:meth:`~DeviceHealth.heard` and :meth:`~DeviceHealth.tick`: the gateway's monotonic clock in the
pipeline), a stuck reading on the readings' own times (:meth:`~DeviceHealth.value`, so a history
batch cannot make a sensor look stuck). Battery readings need no time span.

What is not here: an *impossible* value (300 °C) is the monitor's sensor fault
(:class:`~gateway.conditions.SensorFaultResult`); a silent or stuck sensor never implies an
excursion, because the monitor only ever sees readings (a stuck sensor's repeated value is
withheld from it, which the monitor treats as a gap: it counts nowhere).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import median
from typing import Final

from gateway.conditions.devices import DeviceSettings
from gateway.conditions.results import FaultPhase, result_id

__all__ = [
    "INTERVAL_SAMPLES",
    "MAX_DEVICES",
    "DeviceHealth",
    "HealthIssue",
    "HealthResult",
]

#: The reporting interval is the median of this many latest intervals between sightings: one
#: missed report or a burst of resends does not move it, a changed interval is learned within
#: a handful of reports.
INTERVAL_SAMPLES: Final = 9
#: Devices tracked at most (far more than one gateway hears); past it the oldest is forgotten.
MAX_DEVICES: Final = 50_000


class HealthIssue(enum.StrEnum):
    SILENT = "silent"
    LOW_BATTERY = "low_battery"
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class HealthResult:
    """An issue began (``fault``) or ended (``recovered``)."""

    #: The same for the start and the recovery of one episode.
    issue_id: str
    issue: HealthIssue
    phase: FaultPhase
    device: str
    #: When it was found, on the clock of the call that found it (seconds).
    at: float
    detail: str
    #: Stuck: the quantity and the repeated value. Battery: the voltage, millivolts.
    quantity: str | None = None
    value: float | None = None
    battery_mv: int | None = None
    #: Silent: when the device was last heard and how long the silence was, seconds.
    last_seen: float | None = None
    silent_for_s: float | None = None

    @property
    def result_id(self) -> str:
        """Deterministic: the episode's id and the phase."""
        return result_id(self.issue_id, self.phase.value)


def _tid(t: float) -> float:
    return round(t, 3)


class _Stuck:
    __slots__ = ("count", "id", "last_t", "since", "value")

    def __init__(self, value: float, t: float) -> None:
        self.value = value
        self.since = t
        self.last_t = t
        self.count = 1
        self.id: str | None = None


class _Device:
    __slots__ = (
        "battery_id",
        "battery_run",
        "intervals",
        "last_heard",
        "silent_id",
        "stuck",
        "watched",
    )

    def __init__(self, t: float) -> None:
        self.watched = False
        self.last_heard = t
        self.intervals: list[float] = []
        self.silent_id: str | None = None
        self.battery_id: str | None = None
        #: Readings in a row on the other side of the battery threshold (towards a change).
        self.battery_run = 0
        self.stuck: dict[str, _Stuck] = {}

    def interval(self) -> float | None:
        return median(self.intervals) if self.intervals else None


class DeviceHealth:
    """Watches devices for silence, low battery and stuck readings.

    ``settings(device)`` gives a device's :class:`DeviceSettings`, or ``None`` when the device
    is not watched (a BLE tag on goods without a profile); a device once seen with
    ``watch=True`` (a SmartLabel, always watched) uses ``default`` then.
    """

    def __init__(
        self,
        settings: Callable[[str], DeviceSettings | None],
        default: DeviceSettings | None = None,
    ) -> None:
        self._settings = settings
        self._devices: dict[str, _Device] = {}
        self._default = default or DeviceSettings()

    def _device(self, device: str, t: float, watch: bool) -> tuple[_Device, DeviceSettings] | None:
        state = self._devices.get(device)
        settings = self._settings(device)
        if settings is None:
            if not (watch or (state is not None and state.watched)):
                return None
            settings = self._default
        if state is None:
            if len(self._devices) >= MAX_DEVICES:
                del self._devices[next(iter(self._devices))]
            state = self._devices[device] = _Device(t)
        if watch:
            state.watched = True
        return state, settings

    @property
    def devices(self) -> Iterable[str]:
        return self._devices.keys()

    def interval_s(self, device: str) -> float | None:
        """The learned reporting interval of ``device``, seconds."""
        state = self._devices.get(device)
        return None if state is None else state.interval()

    # --- silence ---------------------------------------------------------------------------

    def heard(self, device: str, t: float, *, watch: bool = False) -> list[HealthResult]:
        """``device`` was heard at ``t``; a recovery when it had been reported silent."""
        found = self._device(device, t, watch)
        if found is None:
            return []
        state, _ = found
        dt = t - state.last_heard
        if dt <= 0:
            return []  # the same sighting again, or an older one: no interval
        out: list[HealthResult] = []
        if state.silent_id is not None:
            sid = state.silent_id
            state.silent_id = None
            out.append(
                HealthResult(
                    issue_id=sid,
                    issue=HealthIssue.SILENT,
                    phase=FaultPhase.RECOVERED,
                    device=device,
                    at=t,
                    detail=f"heard again after {dt:.0f} s",
                    last_seen=state.last_heard,
                    silent_for_s=dt,
                )
            )
        else:
            # A silence is not a reporting interval: only intervals heard without one count.
            intervals = state.intervals
            intervals.append(dt)
            if len(intervals) > INTERVAL_SAMPLES:
                del intervals[0]
        state.last_heard = t
        return out

    def tick(self, now: float) -> list[HealthResult]:
        """A ``silent`` result for each watched device silent longer than its settings allow."""
        out: list[HealthResult] = []
        for device, state in self._devices.items():
            if state.silent_id is not None:
                continue
            silent_for = now - state.last_heard
            settings = self._settings(device)
            if settings is None:
                if not state.watched:
                    continue
                settings = self._default
            interval = state.interval()
            allowed = settings.silent_after_s(interval)
            if silent_for < allowed:
                continue
            sid = result_id(device, HealthIssue.SILENT.value, _tid(state.last_heard))
            state.silent_id = sid
            learned = "not learned yet" if interval is None else f"{interval:.0f} s"
            out.append(
                HealthResult(
                    issue_id=sid,
                    issue=HealthIssue.SILENT,
                    phase=FaultPhase.FAULT,
                    device=device,
                    at=now,
                    detail=(
                        f"nothing heard for {silent_for:.0f} s (allowed {allowed:.0f} s; "
                        f"reporting interval {learned})"
                    ),
                    last_seen=state.last_heard,
                    silent_for_s=silent_for,
                )
            )
        return out

    # --- battery ---------------------------------------------------------------------------

    def battery(
        self, device: str, t: float, millivolts: float, *, watch: bool = False
    ) -> list[HealthResult]:
        """A battery reading: ``low_battery`` after ``battery_readings`` readings in a row at
        or below the low threshold, recovered after as many at or above the ok threshold."""
        found = self._device(device, t, watch)
        if found is None or not math.isfinite(millivolts):
            return []
        state, settings = found
        threshold = settings.battery_threshold()
        if threshold is None:
            return []
        mv = round(millivolts)
        low = state.battery_id is not None
        towards = mv >= threshold.ok_mv if low else mv <= threshold.low_mv
        if not towards:
            state.battery_run = 0
            return []
        state.battery_run += 1
        if state.battery_run < settings.battery_readings:
            return []
        state.battery_run = 0
        chemistry = (
            "custom thresholds"
            if settings.battery_chemistry is None
            else f"{settings.battery_chemistry.value} × {settings.battery_cells}"
        )
        if not low:
            bid = result_id(device, HealthIssue.LOW_BATTERY.value, _tid(t))
            state.battery_id = bid
            return [
                HealthResult(
                    issue_id=bid,
                    issue=HealthIssue.LOW_BATTERY,
                    phase=FaultPhase.FAULT,
                    device=device,
                    at=t,
                    detail=f"battery {mv} mV at or below {threshold.low_mv} mV ({chemistry})",
                    battery_mv=mv,
                )
            ]
        ended = state.battery_id
        assert ended is not None
        state.battery_id = None
        return [
            HealthResult(
                issue_id=ended,
                issue=HealthIssue.LOW_BATTERY,
                phase=FaultPhase.RECOVERED,
                device=device,
                at=t,
                detail=f"battery {mv} mV at or above {threshold.ok_mv} mV ({chemistry})",
                battery_mv=mv,
            )
        ]

    # --- stuck readings --------------------------------------------------------------------

    def value(
        self, device: str, quantity: str, t: float, value: float, *, watch: bool = False
    ) -> tuple[bool, list[HealthResult]]:
        """A reading of ``quantity`` at its own time ``t``: (whether it is usable, results).

        Not usable: the sensor is stuck and this is its repeated value again. A reading older
        than the device's latest of that quantity (a history batch) is usable and not checked.
        """
        found = self._device(device, t, watch)
        if found is None:
            return True, []
        state, settings = found
        if settings.stuck_after_s is None:
            return True, []
        run = state.stuck.get(quantity)
        if run is None:
            state.stuck[quantity] = _Stuck(value, t)
            return True, []
        if t <= run.last_t:
            return True, []
        if abs(value - run.value) <= settings.stuck_tolerance:
            run.count += 1
            run.last_t = t
            if run.id is not None:
                return False, []
            if run.count >= settings.stuck_readings and t - run.since >= settings.stuck_after_s:
                sid = result_id(device, quantity, HealthIssue.STUCK.value, _tid(run.since))
                run.id = sid
                return False, [
                    HealthResult(
                        issue_id=sid,
                        issue=HealthIssue.STUCK,
                        phase=FaultPhase.FAULT,
                        device=device,
                        at=t,
                        detail=(
                            f"{quantity} stuck at {run.value:g} for {t - run.since:.0f} s "
                            f"({run.count} readings)"
                        ),
                        quantity=quantity,
                        value=run.value,
                    )
                ]
            return True, []
        out: list[HealthResult] = []
        if run.id is not None:
            out.append(
                HealthResult(
                    issue_id=run.id,
                    issue=HealthIssue.STUCK,
                    phase=FaultPhase.RECOVERED,
                    device=device,
                    at=t,
                    detail=f"{quantity} moved from {run.value:g} to {value:g}",
                    quantity=quantity,
                    value=value,
                )
            )
        state.stuck[quantity] = _Stuck(value, t)
        return True, out
