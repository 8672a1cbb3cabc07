"""Condition events: excursions beyond a profile's limits (``condition.excursion`` with its
phases), early warnings from the trend (``condition.warning``) and shocks (``condition.shock``).

Values are in the unit their quantity names (``temperature_c``: °C). Thresholds are inclusive
on the in-range side: under a high limit of 8 °C a reading of exactly 8.0 °C is in range and
8.01 °C is beyond. A limit with ``beyond_at_threshold`` (the WHO freeze alarm, "at or below
-0.5 °C") counts the threshold itself as beyond; the event's ``limit`` says which.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gateway.events.base import EVENT_MODEL_CONFIG, Event, UtcDatetime, make_event_id
from gateway.events.common import Origin, Quantity

__all__ = [
    "Bound",
    "ConditionExcursion",
    "ConditionShock",
    "ConditionWarning",
    "ExcursionPhase",
    "Limit",
    "Rule",
    "RuleType",
    "WarningPhase",
    "excursion_key",
]


class Bound(enum.StrEnum):
    """Which side of the range a limit guards."""

    HIGH = "high"
    LOW = "low"


class Limit(BaseModel):
    """One limit of a profile: beyond it means ``> value`` (high) or ``< value`` (low), the
    threshold itself being in range; with ``beyond_at_threshold`` it means ``>= value`` or
    ``<= value``."""

    model_config = EVENT_MODEL_CONFIG

    quantity: Quantity
    bound: Bound
    value: float
    """The threshold, in the quantity's unit."""
    beyond_at_threshold: bool = False
    """False: a reading equal to ``value`` is in range (``2..8 °C``: 8.0 °C is fine). True: it
    is beyond (WHO PQS freeze alarm: "at or below -0.5 °C")."""


class RuleType(enum.StrEnum):
    """How time beyond a limit turns into an alarm."""

    #: A single reading beyond the limit.
    INSTANT = "instant"
    #: Beyond the limit continuously for at least ``duration_s``.
    CONSECUTIVE = "consecutive"
    #: Total time beyond the limit within the monitoring period reaches ``duration_s``.
    CUMULATIVE = "cumulative"


class Rule(BaseModel):
    """The alarm rule attached to a limit."""

    model_config = EVENT_MODEL_CONFIG

    type: RuleType
    duration_s: float | None = Field(default=None, ge=0)
    """The time the rule needs (None for ``instant``)."""


class ExcursionPhase(enum.StrEnum):
    """The life of one excursion."""

    #: The rule fired: the excursion is an alarm from here on.
    OPEN = "open"
    #: Still beyond the limit (rate-limited): running figures.
    UPDATE = "update"
    #: Back within range past the hysteresis: final figures.
    CLOSE = "close"


def excursion_key(
    gateway_id: str,
    *,
    subject: str,
    profile: str,
    limit: Limit,
    rule: Rule,
    start: datetime,
) -> str:
    """The id every phase of one excursion shares: the asset (or tag) it is about, the profile,
    the limit and rule, and the time the value went beyond the limit (``start``)."""
    return make_event_id("excursion", gateway_id, subject, profile, limit, rule, start)


class ConditionExcursion(Event):
    """Emitted when readings have been beyond a profile's limit long enough for its rule
    (phase ``open``), while the excursion lasts (``update``, rate-limited), and when the
    readings are back within range past the hysteresis (``close``)."""

    kind: Literal["condition.excursion"] = "condition.excursion"
    excursion_id: str = Field(min_length=1, max_length=128)
    """Shared by every phase of one excursion (:func:`excursion_key`)."""
    phase: ExcursionPhase
    revision: int = Field(ge=0)
    """0 at ``open``, +1 with each later event of the excursion (so the close has the last)."""
    profile: str = Field(min_length=1)
    limit: Limit
    rule: Rule
    start: UtcDatetime
    """When the value went beyond the limit: the crossing interpolated between the last reading
    within range and the first beyond (linear, when they are at most the profile's gap limit
    apart; else the first reading beyond)."""
    end: UtcDatetime | None = None
    """When the value came back within range, interpolated the same way (set at ``close``)."""
    time_beyond_s: float = Field(ge=0)
    """Time beyond the limit so far (for a cumulative rule: within the monitoring period)."""
    min: float
    """Lowest value during the excursion."""
    max: float
    """Highest value during the excursion."""
    mean: float
    """Time-weighted mean value during the excursion."""
    readings: int | None = Field(default=None, ge=1)
    """Readings beyond the limit so far, when the evaluator counts them."""
    mkt_c: float | None = None
    """Mean kinetic temperature of the subject's monitoring period so far, °C (USP <1079.2>,
    ΔH/R = 10 000 K), from its temperature readings; carried by humidity excursions too (the
    subject's temperature MKT); None only when the subject has no temperature readings."""
    period_start: UtcDatetime | None = None
    """The first reading of the monitoring period (this quantity's, for the subject under this
    profile) that ``mkt_c`` and cumulative rules cover, when known."""
    close_reason: Literal["returned", "reassigned", "superseded"] | None = None
    """Why it closed (``close`` only): the readings ``returned`` within range; the subject was
    ``reassigned`` another profile; or late readings (a history batch) ``superseded`` it: the
    same excursion with a corrected start goes on under its own id."""

    @classmethod
    def make_id(
        cls, gateway_id: str, *, excursion_id: str, phase: ExcursionPhase, revision: int
    ) -> str:
        return make_event_id("condition.excursion", gateway_id, excursion_id, phase, revision)


class WarningPhase(enum.StrEnum):
    """The life of one early warning."""

    #: The trend predicts a crossing within the horizon.
    RAISED = "raised"
    #: The trend turned: the crossing is no longer predicted.
    WITHDRAWN = "withdrawn"


class ConditionWarning(Event):
    """Emitted once per approach when the recent trend predicts that a limit will be crossed
    within the profile's horizon (``raised``), and when the trend turns (``withdrawn``)."""

    kind: Literal["condition.warning"] = "condition.warning"
    phase: WarningPhase
    profile: str = Field(min_length=1)
    limit: Limit
    approach_start: UtcDatetime | None = None
    """The first reading of the approach, when known."""
    warning_id: str | None = Field(default=None, max_length=128)
    """Shared by the ``raised`` and ``withdrawn`` events of one approach."""
    predicted_crossing: UtcDatetime | None
    """When the trend crosses the limit; None once withdrawn."""
    horizon_s: float | None = Field(default=None, gt=0)
    """The horizon the prediction was made for, seconds, when known."""
    value: float
    """The latest (fitted) value, in the quantity's unit."""
    slope_per_h: float
    """The fitted trend, quantity's unit per hour."""

    @classmethod
    def make_id(
        cls,
        gateway_id: str,
        *,
        subject: str,
        profile: str,
        limit: Limit,
        approach_start: datetime,
        phase: WarningPhase,
    ) -> str:
        return make_event_id(
            "condition.warning", gateway_id, subject, profile, limit, approach_start, phase
        )


class ConditionShock(Event):
    """Emitted for a shock above the recording threshold. ``alarm`` is true when it is above
    the profile's limit for at least its minimum pulse length; after the first alarm at most one
    event per interval is sent, carrying the count and the running peak."""

    kind: Literal["condition.shock"] = "condition.shock"
    profile: str | None = None
    """The profile evaluated, None when no profile is assigned (recorded only)."""
    peak_x_g: float
    peak_y_g: float
    peak_z_g: float
    peak_g: float = Field(ge=0)
    """Resultant peak, g."""
    duration_ms: float = Field(ge=0)
    threshold_g: float = Field(ge=0)
    """The threshold the shock crossed (the label's recording threshold or the profile's)."""
    limit_g: float | None = Field(default=None, ge=0)
    """The profile's alarm limit, when a profile is assigned."""
    alarm: bool
    """True when the shock is above ``limit_g`` for the profile's minimum pulse length."""
    count: int = Field(default=1, ge=1)
    """Shocks this event stands for (more than 1 when alarms are rate-limited)."""
    running_peak_g: float | None = Field(default=None, ge=0)
    """Highest resultant peak since the first alarm, g."""

    @classmethod
    def make_id(cls, gateway_id: str, origin: Origin) -> str:
        """Hashes the frame (label, sequence) or the gateway's observation of the shock."""
        return make_event_id("condition.shock", gateway_id, *origin.identity())
