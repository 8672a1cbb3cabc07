"""Readings into the condition monitor, its results out as events, its state into the store.

The :class:`~gateway.conditions.ConditionMonitor` is pure: fed (subject, quantity, value,
time) it returns excursion, warning, shock and sensor-fault results. :class:`ConditionsBridge`
is the pipeline's side of it: it feeds readings from SmartLabel frames and sensor tags under the
asset the tag is bound to (or the tag id), turns each result into its event
(``condition.excursion`` / ``condition.warning`` / ``condition.shock`` / ``device.status``) with
an id derived from the result's own deterministic id, and says when the monitor's state changed
so that the pipeline persists it (open excursions survive a restart or a kill -9).

It also watches the devices (:class:`~gateway.conditions.DeviceHealth`): silence learned from
each device's reporting interval (SmartLabels always; BLE sensor tags when their goods have a
profile), low battery by the profile's chemistry, stuck readings (withheld from the monitor),
each with its recovery, as ``device.status`` events.

A monitor that raises on some input is a bug, not a reason to lose the frame: the error is
logged once per burst and counted, and the reading's telemetry still goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from drivers import BurstLog
from foundation.clock import Clock
from gateway.conditions import (
    ConditionMonitor,
    ConditionResult,
    DeviceHealth,
    DeviceSettings,
    Direction,
    ExcursionPhase,
    ExcursionResult,
    FaultPhase,
    HealthIssue,
    HealthResult,
    Quantity,
    RuleKind,
    SensorFaultResult,
    ShockResult,
    WarningResult,
)
from gateway.events import (
    ConditionExcursion,
    ConditionShock,
    ConditionWarning,
    DeviceState,
    DeviceStatus,
    Event,
    EventSource,
    make_event_id,
)
from gateway.pipeline.factory import EventFactory

__all__ = ["ConditionsBridge"]

_log = logging.getLogger(__name__)

_QUANTITIES: Final = {q.value: q for q in Quantity}
_ISSUE_STATES: Final = {
    HealthIssue.SILENT: DeviceState.SILENT,
    HealthIssue.LOW_BATTERY: DeviceState.LOW_BATTERY,
    HealthIssue.STUCK: DeviceState.SENSOR_FAULT,
}
#: Sources remembered for devices that may fall silent (their reader / scanner and zone).
_MAX_SOURCES: Final = 50_000


class ConditionsBridge:
    """Feeds the monitor and turns its results into events."""

    def __init__(
        self,
        monitor: ConditionMonitor,
        factory: EventFactory,
        clock: Clock,
        devices: Mapping[str, DeviceSettings] | None = None,
        default_device: DeviceSettings | None = None,
    ) -> None:
        self.monitor = monitor
        #: Per-device settings from the config, over the profile's; ``default_device`` for
        #: SmartLabels on goods without a profile.
        self._devices = dict(devices or {})
        self.health = DeviceHealth(self._device_settings, default_device)
        self._sources: dict[str, EventSource] = {}
        self._factory = factory
        self._clock = clock
        #: excursion id -> the revision of its next event (0 at open).
        self._revisions: dict[str, int] = {}
        self._error_log = BurstLog(_log, "conditions", "monitor failed on a reading", clock)
        self.errors = 0
        #: Set when the monitor's state changed in a way a restart must not forget.
        self.dirty = False

    def subject(self, tag: str) -> str:
        """What a tag's readings are about: its asset when bound, else the tag itself."""
        return self._factory.asset_of(tag) or tag

    def _device_settings(self, tag: str) -> DeviceSettings | None:
        own = self._devices.get(tag)
        if own is not None:
            return own
        profile = self.monitor.profile_of(self.subject(tag))
        return None if profile is None else profile.device

    def _remember(self, tag: str, source: EventSource) -> None:
        if tag not in self._sources and len(self._sources) >= _MAX_SOURCES:
            del self._sources[next(iter(self._sources))]
        self._sources[tag] = source

    # -- device health ---------------------------------------------------------------------------

    def heard(
        self, tag: str, source: EventSource, monotonic: float, *, watch: bool = False
    ) -> list[Event]:
        """``tag`` was heard (any frame of a label, a sensor advert): a recovery when it had
        been reported silent. ``watch``: watched even without a profile (SmartLabels)."""
        self._remember(tag, source)
        try:
            found = self.health.heard(tag, monotonic, watch=watch)
        except Exception as exc:
            self._failed(exc)
            return []
        return self._health_events(found, monotonic)

    def battery(
        self,
        tag: str,
        source: EventSource,
        millivolts: float,
        monotonic: float,
        *,
        watch: bool = False,
    ) -> list[Event]:
        """A battery voltage: ``low_battery`` / recovered by the device's chemistry."""
        try:
            found = self.health.battery(tag, monotonic, millivolts, watch=watch)
        except Exception as exc:
            self._failed(exc)
            return []
        return self._health_events(found, monotonic, source)

    def tick(self, monotonic: float) -> list[Event]:
        """``silent`` for each watched device silent longer than its settings allow."""
        try:
            found = self.health.tick(monotonic)
        except Exception as exc:
            self._failed(exc)
            return []
        return self._health_events(found, monotonic)

    def _health_events(
        self,
        found: Sequence[HealthResult],
        monotonic: float,
        source: EventSource | None = None,
        reading_time: bool = False,
    ) -> list[Event]:
        out: list[Event] = []
        gw = self._factory.gateway_id
        for r in found:
            src = source or self._sources.get(r.device) or EventSource(device=r.device)
            try:
                if reading_time:
                    envelope = self._envelope(src, datetime.fromtimestamp(r.at, UTC), monotonic)
                else:
                    envelope = self._factory.envelope(self._factory.stamp(r.at), src, monotonic)
                fault = r.phase is FaultPhase.FAULT
                state = _ISSUE_STATES[r.issue]
                quantity = None if r.quantity is None else _QUANTITIES.get(r.quantity)
                out.append(
                    DeviceStatus.model_validate(
                        {
                            "event_id": make_event_id("device.status", gw, r.result_id),
                            "state": state if fault else DeviceState.RECOVERED,
                            "recovered_from": None if fault else state,
                            "battery_mv": r.battery_mv,
                            "quantity": None if quantity is None else quantity.value,
                            "value": r.value,
                            "last_seen": None
                            if r.last_seen is None
                            else self._factory.stamp(r.last_seen).time,
                            "silent_for_s": r.silent_for_s,
                            "detail": r.detail,
                            **envelope,
                        }
                    )
                )
            except Exception as exc:  # a result the event model refuses: count, keep going
                self._failed(exc)
        return out

    # -- readings ----------------------------------------------------------------------------

    def readings(
        self,
        tag: str,
        source: EventSource,
        values: Mapping[str, float],
        at: datetime,
        monotonic: float,
    ) -> list[Event]:
        subject = self.subject(tag)
        results: list[ConditionResult] = []
        health: list[Event] = self.heard(tag, source, monotonic)
        try:
            t = at.timestamp()
            for name, value in values.items():
                quantity = _QUANTITIES.get(name)
                if quantity is not None:
                    usable, found = self.health.value(tag, name, t, value)
                    if found:
                        health += self._health_events(found, monotonic, source, True)
                    if usable:
                        results.extend(self.monitor.observe(subject, quantity, value, at))
                elif name == "battery_mv":
                    health += self.battery(tag, source, value, monotonic)
        except Exception as exc:  # a monitor bug must not cost the reading
            self._failed(exc)
        return health + self.events(results, source, monotonic)

    def shock(
        self,
        tag: str,
        source: EventSource,
        at: datetime,
        peak_g: tuple[float, float, float],
        duration_ms: float | None,
        monotonic: float,
    ) -> list[Event]:
        try:
            results = self.monitor.observe_shock(self.subject(tag), at, peak_g, duration_ms)
        except Exception as exc:
            self._failed(exc)
            return []
        return self.events(results, source, monotonic)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self._error_log.reject(repr(exc)[:200], {"errors": self.errors})

    # -- results to events ---------------------------------------------------------------------

    def events(
        self, results: Sequence[ConditionResult], source: EventSource | None, monotonic: float
    ) -> list[Event]:
        out: list[Event] = []
        for result in results:
            src = source or EventSource(device=result.subject)
            try:
                event = self._event(result, src, monotonic)
            except Exception as exc:  # a result the event model refuses: count, keep going
                self._failed(exc)
                continue
            if event is not None:
                out.append(event)
        return out

    def _envelope(self, source: EventSource, at: datetime, monotonic: float) -> dict[str, object]:
        stamp = self._factory.stamp(monotonic)
        envelope = self._factory.envelope(stamp, source, monotonic)
        # The result's own time (a label's reading time) is when it happened.
        envelope["time"] = at
        return envelope

    def _event(
        self, result: ConditionResult, source: EventSource, monotonic: float
    ) -> Event | None:
        gw = self._factory.gateway_id
        if isinstance(result, ExcursionResult):
            self.dirty = True
            revision = self._revisions.get(result.excursion_id, 0)
            if result.phase is ExcursionPhase.CLOSE:
                self._revisions.pop(result.excursion_id, None)
            else:
                self._revisions[result.excursion_id] = revision + 1
            instant = result.rule is RuleKind.INSTANT
            return ConditionExcursion.model_validate(
                {
                    "event_id": make_event_id("condition.excursion", gw, result.result_id),
                    "excursion_id": result.excursion_id,
                    "phase": result.phase.value,
                    "revision": revision,
                    "profile": result.profile,
                    "limit": {
                        "quantity": result.quantity.value,
                        "bound": "high" if result.direction is Direction.ABOVE else "low",
                        "value": result.threshold,
                        "beyond_at_threshold": result.beyond_at_threshold,
                    },
                    "rule": {
                        "type": result.rule.value,
                        "duration_s": None if instant else result.rule_duration_s,
                    },
                    "start": result.start,
                    "end": result.end,
                    "time_beyond_s": result.time_beyond_s,
                    "min": result.min,
                    "max": result.max,
                    "mean": result.mean,
                    "mkt_c": result.mkt_c,
                    "period_start": result.period_start,
                    "close_reason": None
                    if result.close_reason is None
                    else result.close_reason.value,
                    **self._envelope(source, result.at, monotonic),
                }
            )
        if isinstance(result, WarningResult):
            return ConditionWarning.model_validate(
                {
                    "event_id": make_event_id("condition.warning", gw, result.result_id),
                    "phase": result.phase.value,
                    "warning_id": result.warning_id,
                    "profile": result.profile,
                    "limit": {
                        "quantity": result.quantity.value,
                        "bound": "high" if result.direction is Direction.ABOVE else "low",
                        "value": result.threshold,
                        "beyond_at_threshold": result.beyond_at_threshold,
                    },
                    "predicted_crossing": result.predicted_crossing,
                    "value": result.value,
                    "slope_per_h": result.slope_per_h,
                    **self._envelope(source, result.at, monotonic),
                }
            )
        if isinstance(result, ShockResult):
            return ConditionShock.model_validate(
                {
                    "event_id": make_event_id("condition.shock", gw, result.result_id),
                    "profile": result.profile,
                    "peak_x_g": result.peak_x_g,
                    "peak_y_g": result.peak_y_g,
                    "peak_z_g": result.peak_z_g,
                    "peak_g": result.peak_g,
                    "duration_ms": result.duration_ms or 0.0,
                    "threshold_g": result.threshold_g,
                    "limit_g": result.threshold_g,
                    "alarm": result.alarm,
                    "count": result.suppressed + 1,
                    "running_peak_g": result.running_peak_g,
                    **self._envelope(source, result.at, monotonic),
                }
            )
        if isinstance(result, SensorFaultResult):
            quantity = _QUANTITIES.get(result.quantity)
            return DeviceStatus.model_validate(
                {
                    "event_id": make_event_id("device.status", gw, result.result_id),
                    "state": DeviceState.SENSOR_FAULT.value,
                    "quantity": None if quantity is None else quantity.value,
                    "value": result.value,
                    "detail": result.detail,
                    **self._envelope(source, result.at, monotonic),
                }
            )
        return None
