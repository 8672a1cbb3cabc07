"""Readings into the condition monitor, its results out as events, its state into the store.

The :class:`~gateway.conditions.ConditionMonitor` is pure: fed (subject, quantity, value,
time) it returns excursion, warning, shock and sensor-fault results. :class:`ConditionsBridge`
is the pipeline's side of it: it feeds readings from SmartLabel frames and sensor tags under the
asset the tag is bound to (or the tag id), turns each result into its event
(``condition.excursion`` / ``condition.warning`` / ``condition.shock`` / ``device.status``) with
an id derived from the result's own deterministic id, and says when the monitor's state changed
so that the pipeline persists it (open excursions survive a restart or a kill -9).

A monitor that raises on some input is a bug, not a reason to lose the frame: the error is
logged once per burst and counted, and the reading's telemetry still goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from drivers import BurstLog
from drivers.clock import Clock
from gateway.conditions import (
    ConditionMonitor,
    ConditionResult,
    Direction,
    ExcursionPhase,
    ExcursionResult,
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


class ConditionsBridge:
    """Feeds the monitor and turns its results into events."""

    def __init__(self, monitor: ConditionMonitor, factory: EventFactory, clock: Clock) -> None:
        self.monitor = monitor
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
        try:
            for name, value in values.items():
                quantity = _QUANTITIES.get(name)
                if quantity is not None:
                    results.extend(self.monitor.observe(subject, quantity, value, at))
        except Exception as exc:  # a monitor bug must not cost the reading
            self._failed(exc)
        return self.events(results, source, monotonic)

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
