"""Condition profiles: what a product tolerates, as limits per quantity with alarm rules.

A profile is data (frozen pydantic models, unknown keys rejected): it comes from the config, from
the ``profiles.set`` command, or from the shipped presets (:mod:`gateway.conditions.presets`).
The engine (:mod:`gateway.conditions.monitor`) reads it; nothing here does I/O.

Thresholds are inclusive on the in-range side unless a limit says otherwise: a ``2..8 °C``
profile treats 8.0 °C as in range and 8.01 °C as beyond; a limit with ``beyond_at_threshold``
(the WHO freeze alarm, "at or below -0.5 °C") treats the threshold itself as beyond.
"""

from __future__ import annotations

import enum
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.conditions.devices import DeviceSettings

__all__ = [
    "DEFAULT_MAX_GAP_S",
    "DEFAULT_UPDATE_INTERVAL_S",
    "PROFILE_NAME_PATTERN",
    "Direction",
    "Limit",
    "Profile",
    "Quantity",
    "Rule",
    "RuleKind",
    "ShockLimit",
    "WarningSettings",
]

#: Profile names travel in topics, logs and event fields: short, lower-case, no spaces.
PROFILE_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"

#: Two readings further apart than this are a gap: the time between them counts neither as in
#: range nor as beyond, nor towards the mean kinetic temperature. 15 min is three missed
#: reports of a label on a 5-minute interval, or 30 of one on 30 s.
DEFAULT_MAX_GAP_S: Final = 900.0

#: An open excursion is re-reported at most this often (every 5 min: live enough for a
#: dispatcher, a dozen events an hour on a cellular link).
DEFAULT_UPDATE_INTERVAL_S: Final = 300.0

#: Early warning defaults: a least-squares line through the last 12 readings no older than
#: an hour (12 points follow a warming pallet within 6 min at 30 s reports), at least 8 points
#: over at least 2 minutes, and a 30-minute horizon (time for a driver to close a door or move
#: a pallet). Noise is told from a trend by the slope's significance against the sensor's own
#: noise (``min_slope_z``); R² is only a shape check (0.5: the line explains at least half of
#: the variance; an R² of 0.8 as the noise test was a 1-in-10,000 event per reading on pure
#: noise, a false warning in about 1 % of stable hours). docs/conditions.md has the measured
#: lead time and false-warning rate.
DEFAULT_WARNING_WINDOW_POINTS: Final = 12
DEFAULT_WARNING_WINDOW_S: Final = 3600.0
DEFAULT_WARNING_MIN_POINTS: Final = 8
DEFAULT_WARNING_MIN_SPAN_S: Final = 120.0
DEFAULT_WARNING_MIN_R2: Final = 0.5
DEFAULT_WARNING_HORIZON_S: Final = 1800.0
#: A reading closer than this to the fit's latest point does not enter the fit: a label heard
#: both on its reader (every 30 s) and in its adverts (sampled every 10 s) would otherwise
#: crowd the 12 points into two minutes, too short a span to see a trend (and never warn).
DEFAULT_WARNING_MIN_SPACING_S: Final = 25.0
#: The fitted slope must be at least this many standard errors from flat, the standard error
#: taken from the sensor's own noise (see ``noise_points``) rather than from the window's
#: residuals: a window of noise that happens to lie close to a line has small residuals, and
#: a test on them (like R²) passes it; the sensor's noise over the last hour does not shrink
#: with it. 5 standard errors is a one-in-3.5-million event per evaluation on Gaussian noise.
DEFAULT_WARNING_MIN_SLOPE_Z: Final = 5.0
#: The sensor's noise is a running mean over about this many fit points (an hour of 30 s
#: readings) of the squared deviations of each point from the straight line through its two
#: neighbours (a linear trend does not enter it; a warming load does not inflate it).
DEFAULT_WARNING_NOISE_POINTS: Final = 120

#: After the first shock alarm, further alarms at most every 5 min, each with the running peak
#: (a parcel in a sorter is hit dozens of times per trip).
DEFAULT_SHOCK_REALARM_INTERVAL_S: Final = 300.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quantity(enum.StrEnum):
    """A continuous quantity with limits; the value names are the event field names."""

    TEMPERATURE_C = "temperature_c"
    HUMIDITY_PCT = "humidity_pct"


class Direction(enum.StrEnum):
    """Which side of the threshold is beyond the limit."""

    ABOVE = "above"
    BELOW = "below"


class RuleKind(enum.StrEnum):
    """When time beyond a limit becomes an excursion (the loggers' alarm types)."""

    #: A single reading beyond the limit.
    INSTANT = "instant"
    #: Beyond the limit without interruption for at least ``duration_s`` ("single event").
    CONSECUTIVE = "consecutive"
    #: Beyond the limit for ``duration_s`` in total within the monitoring period ("cumulative").
    CUMULATIVE = "cumulative"


class Rule(_Frozen):
    """One alarm rule of a limit."""

    kind: RuleKind
    #: T of a consecutive or cumulative rule, seconds; 0 (and only 0) for an instant rule.
    duration_s: float = Field(default=0.0, ge=0.0, le=366 * 86400.0)

    @model_validator(mode="after")
    def _duration(self) -> Self:
        if self.kind is RuleKind.INSTANT and self.duration_s != 0:
            raise ValueError("an instant rule has no duration")
        if self.kind is not RuleKind.INSTANT and self.duration_s <= 0:
            raise ValueError(f"a {self.kind.value} rule needs duration_s > 0")
        return self

    @property
    def key(self) -> str:
        """``instant``, ``consecutive:3600``: unique within a limit, part of excursion ids."""
        if self.kind is RuleKind.INSTANT:
            return self.kind.value
        return f"{self.kind.value}:{self.duration_s:g}"


class Limit(_Frozen):
    """A threshold on one side of the range, with its rules, delay and hysteresis."""

    #: Unique within the quantity (``high``, ``low``, ``freeze``); defaults to the direction.
    name: str = Field(default="", max_length=32, pattern=r"^[a-z0-9_-]+$")
    direction: Direction
    #: In the quantity's unit (°C or %RH).
    threshold: float = Field(allow_inf_nan=False)
    #: False (default): the threshold is in range (8.0 is fine under "above 8").
    #: True: the threshold is beyond (WHO freeze alarm: "at or below -0.5 °C").
    beyond_at_threshold: bool = False
    rules: tuple[Rule, ...] = Field(min_length=1, max_length=8)
    #: A rule must stay met this long before its excursion opens (debounce), seconds.
    open_delay_s: float = Field(default=0.0, ge=0.0, le=86400.0)
    #: An open excursion closes only once readings are back inside the limit by at least this
    #: much (the quantity's unit) ...
    hysteresis: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    #: ... for at least this long, seconds.
    close_delay_s: float = Field(default=0.0, ge=0.0, le=86400.0)

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and "direction" in data:
            return {**data, "name": str(data["direction"])}
        return data

    @model_validator(mode="after")
    def _checks(self) -> Self:
        keys = [r.key for r in self.rules]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate rules {keys}")
        return self

    def is_beyond(self, value: float) -> bool:
        """Whether ``value`` is beyond this limit (the inclusive side is documented above)."""
        if self.direction is Direction.ABOVE:
            return value >= self.threshold if self.beyond_at_threshold else value > self.threshold
        return value <= self.threshold if self.beyond_at_threshold else value < self.threshold


class ShockLimit(_Frozen):
    """Shock: record above ``record_g``, alarm above ``alarm_g`` for at least ``min_duration_ms``.

    Peaks are the resultant (vector magnitude) of the per-axis peaks, in g. The limit is
    inclusive: a shock of exactly ``alarm_g`` alarms.
    """

    alarm_g: float = Field(gt=0.0, le=10_000.0)
    #: Shorter pulses do not alarm (a sorter's 10 g knocks last a millisecond or two; a drop on
    #: concrete several). ``None``: any duration. A shock of unknown duration (a BLE advert's
    #: instantaneous acceleration) meets the minimum only when there is none.
    min_duration_ms: float | None = Field(default=None, ge=0.0)
    #: Shocks at or above this are recorded (reported without alarm). ``None``: every shock a
    #: device reports is recorded (the label already applies its own threshold).
    record_g: float | None = Field(default=None, ge=0.0)
    realarm_interval_s: float = Field(default=DEFAULT_SHOCK_REALARM_INTERVAL_S, ge=0.0)


class WarningSettings(_Frozen):
    """Early warning: a least-squares line over the recent readings, extrapolated."""

    #: The fit uses at most this many of the latest readings ...
    window_points: int = Field(default=DEFAULT_WARNING_WINDOW_POINTS, ge=3, le=1000)
    #: ... none older than this, seconds.
    window_s: float = Field(default=DEFAULT_WARNING_WINDOW_S, gt=0.0, le=86400.0)
    #: No warning from fewer points than this, or spanning less time than ``min_span_s``.
    min_points: int = Field(default=DEFAULT_WARNING_MIN_POINTS, ge=3, le=1000)
    min_span_s: float = Field(default=DEFAULT_WARNING_MIN_SPAN_S, ge=0.0)
    #: The line must explain at least this share of the variance (a shape check; noise is
    #: told from a trend by ``min_slope_z``).
    min_r2: float = Field(default=DEFAULT_WARNING_MIN_R2, ge=0.0, le=1.0)
    #: Warn when the line reaches the threshold within this many seconds.
    horizon_s: float = Field(default=DEFAULT_WARNING_HORIZON_S, gt=0.0, le=7 * 86400.0)
    #: Readings closer than this to the fit's latest point are evaluated by the rules but do
    #: not enter the fit, seconds.
    min_spacing_s: float = Field(default=DEFAULT_WARNING_MIN_SPACING_S, ge=0.0, le=86400.0)
    #: The slope must be as far from flat as a normal variable lies beyond this many standard
    #: deviations, the slope's standard error taken from the sensor's noise and its tail
    #: from Student's t while that estimate is young; 0 disables the test.
    min_slope_z: float = Field(default=DEFAULT_WARNING_MIN_SLOPE_Z, ge=0.0, le=1000.0)
    #: The sensor's noise is a running mean over about this many fit points.
    noise_points: int = Field(default=DEFAULT_WARNING_NOISE_POINTS, ge=1, le=100000)

    @model_validator(mode="after")
    def _points(self) -> Self:
        if self.min_points > self.window_points:
            raise ValueError("min_points must not exceed window_points")
        return self


class Profile(_Frozen):
    """A named set of limits for one kind of goods."""

    name: str = Field(pattern=PROFILE_NAME_PATTERN)
    description: str = Field(default="", max_length=500)
    #: Where the numbers come from (a standard, a customer's SOP).
    source: str = Field(default="", max_length=500)
    temperature_c: tuple[Limit, ...] = Field(default=(), max_length=8)
    humidity_pct: tuple[Limit, ...] = Field(default=(), max_length=8)
    shock: ShockLimit | None = None
    #: See :data:`DEFAULT_MAX_GAP_S`.
    max_gap_s: float = Field(default=DEFAULT_MAX_GAP_S, gt=0.0, le=7 * 86400.0)
    update_interval_s: float = Field(default=DEFAULT_UPDATE_INTERVAL_S, ge=0.0)
    #: ``None`` disables early warning.
    warning: WarningSettings | None = WarningSettings()
    #: The devices on these goods: allowed silence, battery chemistry, stuck readings.
    device: DeviceSettings = DeviceSettings()

    @model_validator(mode="after")
    def _unique_limit_names(self) -> Self:
        for quantity in Quantity:
            names = [limit.name for limit in self.limits(quantity)]
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate limit names for {quantity.value}: {names}")
        return self

    def limits(self, quantity: Quantity) -> tuple[Limit, ...]:
        """The limits on ``quantity``."""
        return self.temperature_c if quantity is Quantity.TEMPERATURE_C else self.humidity_pct
