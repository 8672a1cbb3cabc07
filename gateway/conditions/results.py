"""What the condition monitor hands back: frozen values the pipeline turns into events.

One frozen, slotted dataclass per result kind. The pipeline maps :class:`ExcursionResult` to
``condition.excursion``, :class:`WarningResult` to ``condition.warning``, :class:`ShockResult`
to ``condition.shock`` (or to telemetry when it did not alarm) and :class:`SensorFaultResult`
to ``device.status``. Each result carries a deterministic ``result_id``: a hash of what makes
the fact this fact (subject, quantity, limit, rule, the start of the excursion, the reading time
of an update), never of the time it was derived, so the same readings evaluated again after a
restart give the same ids. Use it as the identity of the event id.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeAlias

from gateway.conditions.profiles import Direction, Quantity, RuleKind

__all__ = [
    "RESULT_ID_HEX_DIGITS",
    "CloseReason",
    "ConditionResult",
    "ExcursionPhase",
    "ExcursionResult",
    "FaultPhase",
    "SensorFaultResult",
    "SeriesSummary",
    "ShockResult",
    "WarningPhase",
    "WarningResult",
    "result_id",
]

#: 128 bits of SHA-256, like event ids.
RESULT_ID_HEX_DIGITS: Final = 32


def result_id(*identity: object) -> str:
    """SHA-256 over the canonical JSON of ``identity`` (str, int, float, None)."""
    canonical = json.dumps(identity, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:RESULT_ID_HEX_DIGITS]


class ExcursionPhase(enum.StrEnum):
    OPEN = "open"
    UPDATE = "update"
    CLOSE = "close"


class CloseReason(enum.StrEnum):
    """Why an excursion closed."""

    #: Readings came back inside the limit (past the hysteresis, for the close delay).
    RETURNED = "returned"
    #: The subject was assigned another profile, or its profile was redefined.
    REASSIGNED = "reassigned"
    #: Late readings (a history batch) showed the excursion started at another time; the
    #: excursion with the corrected start carries on under its own id.
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class ExcursionResult:
    """An excursion opened, is still going on (rate-limited), or closed."""

    result_id: str
    #: The same for the open, every update and the close of one excursion.
    excursion_id: str
    phase: ExcursionPhase
    subject: str
    profile: str
    quantity: Quantity
    limit: str
    direction: Direction
    threshold: float
    rule: RuleKind
    #: T of a consecutive or cumulative rule, seconds (0 for instant).
    rule_duration_s: float
    #: The time of the reading that produced this result.
    at: datetime
    #: When the value went beyond the limit (interpolated between readings within the gap limit).
    start: datetime
    #: When it came back inside the limit; set on close only.
    end: datetime | None
    #: Time beyond the limit during the excursion so far (gaps excluded), seconds.
    time_beyond_s: float
    #: Of the readings beyond the limit during the excursion; mean is time-weighted.
    min: float
    max: float
    mean: float
    #: Mean kinetic temperature of the subject's monitoring period so far, °C.
    mkt_c: float | None
    period_start: datetime
    close_reason: CloseReason | None = None
    #: Whether a reading equal to ``threshold`` is beyond (the limit's ``beyond_at_threshold``).
    beyond_at_threshold: bool = False


class WarningPhase(enum.StrEnum):
    RAISED = "raised"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class WarningResult:
    """The trend predicts a limit crossing within the horizon (raised once per approach), or
    the trend turned (withdrawn)."""

    result_id: str
    #: The same for the raise and the withdrawal of one approach.
    warning_id: str
    phase: WarningPhase
    subject: str
    profile: str
    quantity: Quantity
    limit: str
    direction: Direction
    threshold: float
    at: datetime
    value: float
    #: The least-squares slope, unit per hour.
    slope_per_h: float
    r2: float
    #: When the fitted line reaches the threshold; ``None`` when withdrawn on a turned trend.
    predicted_crossing: datetime | None
    #: Whether a reading equal to ``threshold`` is beyond (the limit's ``beyond_at_threshold``).
    beyond_at_threshold: bool = False


@dataclass(frozen=True, slots=True)
class ShockResult:
    """A shock at or above the recording threshold; ``alarm`` when it crossed the limit."""

    result_id: str
    subject: str
    profile: str
    at: datetime
    peak_x_g: float
    peak_y_g: float
    peak_z_g: float
    #: Resultant of the three axes.
    peak_g: float
    duration_ms: float | None
    #: The threshold this shock crossed: the alarm limit, or the recording threshold.
    threshold_g: float
    alarm: bool
    #: The highest resultant among the alarming shocks since the previous alarm (this one
    #: included), and how many of those were not alarmed because of the re-alarm interval.
    running_peak_g: float
    suppressed: int


class FaultPhase(enum.StrEnum):
    FAULT = "fault"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class SensorFaultResult:
    """An impossible value (not a reading: it never reaches the rules), or the first plausible
    value after one."""

    result_id: str
    fault_id: str
    phase: FaultPhase
    subject: str
    quantity: str
    at: datetime
    value: float
    detail: str


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """One quantity of one subject over its monitoring period so far (the QA tool's summary)."""

    subject: str
    profile: str
    quantity: Quantity
    period_start: datetime
    last_reading: datetime
    readings: int
    min: float
    #: Time-weighted over the covered time (readings linear in between, gaps left out).
    mean: float
    max: float
    #: Mean kinetic temperature, °C (temperature only).
    mkt_c: float | None
    #: Time between readings at most the profile's gap limit apart, and the gaps, seconds.
    covered_s: float
    gap_s: float
    #: Time beyond each limit, by limit name, seconds.
    time_beyond_s: dict[str, float]


ConditionResult: TypeAlias = ExcursionResult | WarningResult | ShockResult | SensorFaultResult
"""Anything :class:`~gateway.conditions.monitor.ConditionMonitor` returns."""
