"""The condition engine: readings in, excursions, warnings, shocks and sensor faults out.

Pure domain logic on the data path after normalisation: the pipeline stage feeds it readings
with their own times (a label's time mapped to gateway time, a history reading's time) and
turns the results into events. No I/O, no asyncio, no clock reads.

Time and order. Each (subject, quantity) is a *series*, evaluated in the order of its readings'
times, never of their arrival. A reading newer than the series' last is evaluated at once. An
older one (a history batch that arrives after live readings, a resent frame) is merged: it is
inserted into the series' journal of recent readings and the series is evaluated again from
the last checkpoint before it (a copy of the state every :data:`CHECKPOINT_EVERY_READINGS`
readings; the last two are kept). Results that were already returned are not returned twice
(same ``result_id``); an excursion that the merge shows to have started more than
:data:`START_CORRECTION_TOLERANCE_S` earlier or later is closed as ``superseded`` and continues
under the id of its corrected start, while one whose start moves by less (the same reading
heard over two paths: an advert and the serial reader) keeps its id and carries the corrected
start from its next update or its close on. A reading at a time
the series already has is a duplicate and dropped; one older than the oldest checkpoint is
dropped as too late (counted). Time is therefore never counted twice.

Between two readings at most the profile's ``max_gap_s`` apart the value is taken as linear:
crossing times are interpolated and time beyond a limit is exact for such a line. A longer
interval is a gap: it counts nowhere (not beyond, not in range, not in the MKT), and a value
that is beyond on both sides of a gap keeps its run (silence never closes or opens anything).

See docs/conditions.md for the rules, the warning method and what :meth:`snapshot` keeps.
"""

from __future__ import annotations

import bisect
import functools
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from math import exp as _exp
from typing import Any, Final, cast

from pydantic import JsonValue, TypeAdapter, ValidationError

from gateway.conditions.mkt import DELTA_H_OVER_R_K, KELVIN_OFFSET, mkt_from_sums_c
from gateway.conditions.presets import PRESETS
from gateway.conditions.profiles import (
    Direction,
    Limit,
    Profile,
    Quantity,
    Rule,
    RuleKind,
    WarningSettings,
)
from gateway.conditions.results import (
    CloseReason,
    ConditionResult,
    ExcursionPhase,
    ExcursionResult,
    FaultPhase,
    SensorFaultResult,
    SeriesSummary,
    ShockResult,
    WarningPhase,
    WarningResult,
    result_id,
)
from gateway.errors import GatewayError

__all__ = [
    "CHECKPOINT_EVERY_READINGS",
    "HUMIDITY_MAX_PCT",
    "HUMIDITY_MIN_PCT",
    "SHOCK_MAX_G",
    "SNAPSHOT_VERSION",
    "START_CORRECTION_TOLERANCE_S",
    "TEMPERATURE_MAX_C",
    "TEMPERATURE_MIN_C",
    "WARNING_QUIET_AFTER_CLOSE_S",
    "WARNING_WITHDRAW_FACTOR",
    "ConditionMonitor",
    "UnknownProfileError",
]

#: Physically possible readings. Below -90 °C nothing we carry is shipped (dry ice sublimes at
#: -78.5 °C); above +100 °C a label is on fire or broken. A value outside is a sensor fault.
TEMPERATURE_MIN_C: Final = -90.0
TEMPERATURE_MAX_C: Final = 100.0
#: Relative humidity is 0..100 %; capacitive sensors read a little past 100 when saturated,
#: which the SHT/HDC datasheets allow for, so 102 % is still a (clipped) reading.
HUMIDITY_MIN_PCT: Final = 0.0
HUMIDITY_MAX_PCT: Final = 102.0
#: Shock sensors on labels saturate at 200-400 g; a resultant above 2,000 g is a fault.
SHOCK_MAX_G: Final = 2000.0

#: A state copy every 64 readings, the last two kept: late readings up to 64..128 readings back
#: (half an hour to an hour of 30 s readings after a label came back) merge exactly, for a
#: journal of at most 128 × 16 bytes and two state copies a series.
CHECKPOINT_EVERY_READINGS: Final = 64
#: A late reading that moves an open excursion's start by at most this much, seconds, corrects
#: the start in place (same excursion id, no second ``open``; the next update and the close
#: carry the corrected start) instead of superseding it. 30 s is one live reporting interval
#: of a SmartLabel: the same reading relayed by an advert and by the serial reader moves the
#: interpolated crossing by milliseconds, and one reading filled in between two live ones by
#: less than an interval; a history batch that shows the excursion began minutes earlier (the
#: label was out of range) is a real correction and supersedes.
START_CORRECTION_TOLERANCE_S: Final = 30.0
#: The noise estimate's samples are capped at this many times the estimate (3 standard
#: deviations) once it has :data:`_NOISE_CLIP_AFTER` of them.
_NOISE_CLIP_VARIANCES: Final = 9.0
_NOISE_CLIP_AFTER: Final = 8
#: Student's t is taken as normal beyond this many degrees of freedom (the tails at 5 standard
#: errors then differ by a factor of about 1.5).
_T_DOF_NORMAL: Final = 400
#: A raised warning is withdrawn when the trend no longer predicts a crossing within twice the
#: horizon (hysteresis, so a warning near the horizon does not flap).
WARNING_WITHDRAW_FACTOR: Final = 2.0
#: No warning is raised for 15 min after an excursion closed: a load coming back from one
#: (a pallet cooling at 1 °C/min after the reefer door shut) is recovering, and its trend says
#: where it came from, not that it is heading for the other limit.
WARNING_QUIET_AFTER_CLOSE_S: Final = 900.0
#: The least-squares running sums are recomputed from scratch this often (appends), so the
#: rounding of adding and removing points does not accumulate.
_FIT_REBASE_EVERY: Final = 256
#: Times in result ids are rounded to a millisecond, so a float's last bit never changes an id.
_ID_TIME_DIGITS: Final = 3

#: The layout of :meth:`ConditionMonitor.snapshot`; a restore refuses any other.
SNAPSHOT_VERSION: Final = 1

#: The warning state of a limit whose approach ended in a crossing (see ``_warn``).
_SPENT: Final = ""

_PLAUSIBLE: Final[dict[Quantity, tuple[float, float]]] = {
    Quantity.TEMPERATURE_C: (TEMPERATURE_MIN_C, TEMPERATURE_MAX_C),
    Quantity.HUMIDITY_PCT: (HUMIDITY_MIN_PCT, HUMIDITY_MAX_PCT),
}

_PROFILE_ADAPTER: Final = TypeAdapter(Profile)


class UnknownProfileError(GatewayError):
    """A subject was assigned a profile that is neither a preset nor defined."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown profile {name!r}")
        self.name = name


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _seconds(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError("reading times must be timezone-aware (UTC)")
    return at.timestamp()


def _tid(t: float) -> float:
    return round(t, _ID_TIME_DIGITS)


def _excursion_rid(
    excursion_id: str, phase: ExcursionPhase, at: float, reason: CloseReason | None
) -> str:
    if phase is ExcursionPhase.UPDATE:
        return result_id(excursion_id, phase.value, _tid(at))
    if reason is None:
        return result_id(excursion_id, phase.value)
    # A close names its reason: an excursion closed as superseded that later late readings
    # bring back (and close as returned) must not repeat an id.
    return result_id(excursion_id, phase.value, reason.value)


class _LimitCfg:
    """A limit unpacked for the hot path."""

    __slots__ = (
        "above",
        "at_thr",
        "close_delay",
        "durations",
        "hyst",
        "kinds",
        "limit",
        "name",
        "open_delay",
        "rule_keys",
        "rules",
        "thr",
    )

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.name = limit.name
        self.thr = limit.threshold
        self.above = limit.direction is Direction.ABOVE
        self.at_thr = limit.beyond_at_threshold
        self.hyst = limit.hysteresis
        self.open_delay = limit.open_delay_s
        self.close_delay = limit.close_delay_s
        self.rules: tuple[Rule, ...] = limit.rules
        self.kinds = tuple(r.kind for r in limit.rules)
        self.durations = tuple(r.duration_s for r in limit.rules)
        self.rule_keys = tuple(r.key for r in limit.rules)


class _Excursion:
    __slots__ = (
        "back_since",
        "beyond_s",
        "id",
        "integral",
        "last_emit",
        "opened_at",
        "returned_at",
        "start",
        "vmax",
        "vmin",
    )

    def __init__(
        self,
        id: str,
        start: float,
        opened_at: float,
        beyond_s: float,
        integral: float,
        vmin: float,
        vmax: float,
    ) -> None:
        self.id = id
        self.start = start
        self.opened_at = opened_at
        self.beyond_s = beyond_s
        self.integral = integral
        self.vmin = vmin
        self.vmax = vmax
        self.last_emit = opened_at
        #: When the value last came back inside the limit (the end, if it stays back).
        self.returned_at: float | None = None
        #: Since when the value has been inside the limit past the hysteresis.
        self.back_since: float | None = None

    def clone(self) -> _Excursion:
        c = _Excursion.__new__(_Excursion)
        for name in _Excursion.__slots__:
            setattr(c, name, getattr(self, name))
        return c

    def to_json(self) -> dict[str, JsonValue]:
        return {name: getattr(self, name) for name in _Excursion.__slots__}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Excursion:
        c = cls.__new__(cls)
        for name in cls.__slots__:
            value = data[name]
            if name == "id":
                if not isinstance(value, str):
                    raise ValueError("excursion id must be a string")
            elif value is not None and not isinstance(value, int | float):
                raise ValueError(f"excursion field {name} must be a number")
            setattr(c, name, value)
        return c


class _LimitState:
    """The mutable state of one limit of one series."""

    __slots__ = (
        "beyond",
        "met_since",
        "n_open",
        "open",
        "run_int",
        "run_max",
        "run_min",
        "run_s",
        "run_start",
        "total_s",
        "warn_id",
    )

    def __init__(self, n_rules: int) -> None:
        self.beyond = False
        #: Start of the current run beyond the limit (interpolated crossing), or None.
        self.run_start: float | None = None
        self.run_s = 0.0
        self.run_int = 0.0
        self.run_min = math.inf
        self.run_max = -math.inf
        #: Time beyond in the monitoring period (the cumulative rules' total).
        self.total_s = 0.0
        self.met_since: list[float | None] = [None] * n_rules
        self.open: list[_Excursion | None] = [None] * n_rules
        self.n_open = 0
        self.warn_id: str | None = None

    def clone(self) -> _LimitState:
        c = _LimitState.__new__(_LimitState)
        c.beyond = self.beyond
        c.run_start = self.run_start
        c.run_s = self.run_s
        c.run_int = self.run_int
        c.run_min = self.run_min
        c.run_max = self.run_max
        c.total_s = self.total_s
        c.met_since = list(self.met_since)
        c.open = [None if e is None else e.clone() for e in self.open]
        c.n_open = self.n_open
        c.warn_id = self.warn_id
        return c

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "beyond": self.beyond,
            "run_start": self.run_start,
            "run_s": self.run_s,
            "run_int": self.run_int,
            "run_min": None if math.isinf(self.run_min) else self.run_min,
            "run_max": None if math.isinf(self.run_max) else self.run_max,
            "total_s": self.total_s,
            "met_since": list(self.met_since),
            "open": [None if e is None else e.to_json() for e in self.open],
            "warn_id": self.warn_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], n_rules: int) -> _LimitState:
        c = cls(n_rules)
        c.beyond = bool(data["beyond"])
        c.run_start = _opt_float(data["run_start"])
        c.run_s = float(data["run_s"])
        c.run_int = float(data["run_int"])
        run_min = _opt_float(data["run_min"])
        run_max = _opt_float(data["run_max"])
        c.run_min = math.inf if run_min is None else run_min
        c.run_max = -math.inf if run_max is None else run_max
        c.total_s = float(data["total_s"])
        met = list(data["met_since"])
        opened = list(data["open"])
        if len(met) != n_rules or len(opened) != n_rules:
            raise ValueError("rule count does not match the profile")
        c.met_since = [_opt_float(m) for m in met]
        c.open = [None if e is None else _Excursion.from_json(e) for e in opened]
        c.n_open = sum(e is not None for e in c.open)
        warn = data["warn_id"]
        c.warn_id = warn if isinstance(warn, str) else None
        return c


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


class _State:
    """Everything about one series that a replay restores and a snapshot keeps."""

    __slots__ = (
        "covered_s",
        "fault_id",
        "gap_s",
        "integral",
        "last_t",
        "last_v",
        "last_w",
        "limits",
        "mkt_sum",
        "n",
        "n_warn",
        "period_start",
        "quiet_until",
        "vmax",
        "vmin",
    )

    def __init__(self, n_rules: Iterable[int]) -> None:
        self.last_t: float | None = None
        self.last_v = 0.0
        self.last_w = 0.0
        self.period_start: float | None = None
        self.n = 0
        self.vmin = math.inf
        self.vmax = -math.inf
        #: ∫value dt and the time it covers (gaps excluded), for the period's mean.
        self.integral = 0.0
        self.covered_s = 0.0
        self.gap_s = 0.0
        #: ∫exp(-ΔH/RT) dt over the covered time (temperature series only).
        self.mkt_sum = 0.0
        self.fault_id: str | None = None
        #: How many limits have a raised warning (the fit is checked against every limit then).
        self.n_warn = 0
        #: No warning is raised before this time (a load recovering from an excursion).
        self.quiet_until = -math.inf
        self.limits = [_LimitState(n) for n in n_rules]

    def clone(self) -> _State:
        c = _State.__new__(_State)
        for name in _State.__slots__:
            setattr(c, name, getattr(self, name))
        c.limits = [ls.clone() for ls in self.limits]
        return c

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        for name in _State.__slots__:
            if name == "limits":
                continue
            value = getattr(self, name)
            out[name] = None if isinstance(value, float) and math.isinf(value) else value
        out["limits"] = [ls.to_json() for ls in self.limits]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], n_rules: list[int]) -> _State:
        c = cls(n_rules)
        c.last_t = _opt_float(data["last_t"])
        c.last_v = float(data["last_v"])
        c.last_w = float(data["last_w"])
        c.period_start = _opt_float(data["period_start"])
        c.n = int(data["n"])
        vmin = _opt_float(data["vmin"])
        vmax = _opt_float(data["vmax"])
        c.vmin = math.inf if vmin is None else vmin
        c.vmax = -math.inf if vmax is None else vmax
        c.integral = float(data["integral"])
        c.covered_s = float(data["covered_s"])
        c.gap_s = float(data["gap_s"])
        c.mkt_sum = float(data["mkt_sum"])
        fault = data["fault_id"]
        c.fault_id = fault if isinstance(fault, str) else None
        limits = list(data["limits"])
        if len(limits) != len(n_rules):
            raise ValueError("limit count does not match the profile")
        c.limits = [_LimitState.from_json(d, n) for d, n in zip(limits, n_rules, strict=True)]
        c.n_warn = sum(ls.warn_id is not None for ls in c.limits)
        quiet = _opt_float(data["quiet_until"])
        c.quiet_until = -math.inf if quiet is None else quiet
        return c


def normal_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def student_t_tail(t: float, dof: int) -> float:
    """P(T > t) for Student's t with ``dof`` degrees of freedom, t >= 0 (the closed forms for
    integer degrees of freedom; the normal's tail beyond :data:`_T_DOF_NORMAL`)."""
    if dof > _T_DOF_NORMAL:
        return normal_tail(t)
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    term = total = 1.0
    if dof % 2:
        # P(|T| < t) = 2/pi (theta + sin cos (1 + 2/3 c2 + 2*4/(3*5) c2^2 + ...)).
        for k in range(1, (dof - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        sc = math.sin(theta) * math.cos(theta) * total if dof > 1 else 0.0
        central = 2.0 / math.pi * (theta + sc)
    else:
        # P(|T| < t) = sin (1 + 1/2 c2 + 1*3/(2*4) c2^2 + ...).
        for k in range(1, dof // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        central = math.sin(theta) * total
    return max(0.0, (1.0 - central) / 2.0)


@functools.lru_cache(maxsize=1024)
def critical_t(min_z: float, dof: int) -> float:
    """The t beyond which Student's t with ``dof`` degrees of freedom has the normal's tail
    beyond ``min_z`` (computed once per pair: the test runs on every candidate reading)."""
    alpha = normal_tail(min_z)
    lo, hi = min_z, min_z
    while student_t_tail(hi, dof) > alpha:
        lo, hi = hi, hi * 2.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if student_t_tail(mid, dof) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def noise_dof(samples: int, points: int) -> int:
    """Degrees of freedom of the noise estimate from ``samples`` deviations averaged over
    about ``points``: a plain mean up to ``points`` samples, then an exponential one worth
    about ``2 * points - 1``; neighbouring deviations share readings, so white noise gives
    about one degree of freedom per two of them (the estimate's efficiency is
    1 / (1 + 2 (4/6)² + 2 (1/6)²) = 0.51 for evenly spaced readings)."""
    return max(1, min(samples, 2 * points - 1) // 2)


class _Fit:
    """Running least-squares sums over the latest readings (times relative to ``ref``).

    The sums are updated in place as points enter and leave (the caller inlines that on the
    hot path) and recomputed from the points every :data:`_FIT_REBASE_EVERY` appends, so the
    rounding of adding and removing does not accumulate.
    """

    __slots__ = (
        "appends",
        "n",
        "noise_n",
        "noise_var",
        "ref",
        "st",
        "stt",
        "stv",
        "sv",
        "ts",
        "vs",
    )

    def __init__(self) -> None:
        # Arrays of doubles: a dozen points, contiguous (a deque's first block alone is 600
        # bytes, a list holds a float object per point).
        self.ts = array("d")
        self.vs = array("d")
        self.ref = 0.0
        self.n = 0
        self.st = self.sv = self.stt = self.stv = 0.0
        self.appends = 0
        #: The sensor's noise variance: a running mean of the squared deviations of each fit
        #: point from the line through its two neighbours, each divided by its variance factor
        #: (1 + a² + b² for interpolation weights a, b), so that white noise of variance σ²
        #: gives σ² whatever the spacing, and a linear trend gives nothing.
        self.noise_var = 0.0
        self.noise_n = 0

    def slope_z(self, slope: float) -> float:
        """The slope in standard errors, the standard error from the noise estimate."""
        n = self.n
        sxx = n * self.stt - self.st * self.st
        if self.noise_var <= 0.0 or sxx <= 0.0:
            return math.inf if slope else 0.0
        return abs(slope) * math.sqrt(sxx / n / self.noise_var)

    def slope_significant(self, slope: float, min_z: float, points: int) -> bool:
        """Whether noise alone would put the slope this far from flat no more often than a
        normal variable lies beyond ``min_z``, given how much the noise estimate knows yet:
        the slope's standard error is from the estimate, so the slope over it follows
        Student's t with the estimate's degrees of freedom (:func:`noise_dof`)."""
        if min_z <= 0.0:
            return True
        return self.slope_z(slope) >= critical_t(min_z, noise_dof(self.noise_n, points))

    def rebase(self) -> None:
        self.ref = self.ts[0] if self.ts else 0.0
        self.n = len(self.ts)
        st = sv = stt = stv = 0.0
        for t, v in zip(self.ts, self.vs, strict=True):
            x = t - self.ref
            st += x
            sv += v
            stt += x * x
            stv += x * v
        self.st, self.sv, self.stt, self.stv = st, sv, stt, stv

    def r2(self) -> float:
        """The coefficient of determination of the least-squares line (0 for a flat series)."""
        n = self.n
        sxx = n * self.stt - self.st * self.st
        # Σv² only here (a warning is rare): from the points, not kept up to date per reading.
        syy = n * sum(v * v for v in self.vs) - self.sv * self.sv
        if sxx <= 0 or syy <= 0:
            return 0.0
        sxy = n * self.stv - self.st * self.sv
        return min((sxy * sxy) / (sxx * syy), 1.0)

    def clone(self) -> _Fit:
        c = _Fit.__new__(_Fit)
        for name in _Fit.__slots__:
            setattr(c, name, getattr(self, name))
        c.ts = array("d", self.ts)
        c.vs = array("d", self.vs)
        return c


_WarningHot = tuple[float, int, float, int, int, float, float]


@functools.lru_cache(maxsize=64)
def _warning_hot(w: WarningSettings) -> _WarningHot:
    """The warning settings the per-reading step reads, unpacked once (one tuple shared by the
    series with equal settings): min_spacing_s, noise_points, window_s, window_points,
    min_points, min_span_s, horizon_s."""
    return (
        w.min_spacing_s,
        w.noise_points,
        w.window_s,
        w.window_points,
        w.min_points,
        w.min_span_s,
        w.horizon_s,
    )


class _Series:
    """One (subject, quantity): its profile, state, journal and checkpoints."""

    __slots__ = (
        "aliases",
        "checkpoints",
        "emitted",
        "first_above",
        "first_below",
        "fit",
        "high",
        "is_temp",
        "journal_t",
        "journal_v",
        "limits",
        "low",
        "max_gap_s",
        "next_checkpoint",
        "profile",
        "quantity",
        "state",
        "subject",
        "warning",
        "warning_hot",
    )

    def __init__(
        self,
        subject: str,
        quantity: Quantity,
        profile: Profile,
        limits: tuple[_LimitCfg, ...] | None = None,
    ) -> None:
        self.subject = subject
        self.quantity = quantity
        self.profile = profile
        self.is_temp = quantity is Quantity.TEMPERATURE_C
        self.low, self.high = _PLAUSIBLE[quantity]
        self.max_gap_s = profile.max_gap_s
        if limits is None:
            limits = tuple(_LimitCfg(limit) for limit in profile.limits(quantity))
        #: Shared by the series of one profile (read-only), so they stay in the CPU cache.
        self.limits = limits
        self.warning = profile.warning if self.limits else None
        self.warning_hot = None if self.warning is None else _warning_hot(self.warning)
        #: The lowest threshold above and the highest below: the first a trend can reach.
        self.first_above = min((c.thr for c in self.limits if c.above), default=math.inf)
        self.first_below = max((c.thr for c in self.limits if not c.above), default=-math.inf)
        self.state = _State(len(c.rules) for c in self.limits)
        self.fit = _Fit()
        self.journal_t = array("d")
        self.journal_v = array("d")
        #: (time of the last reading in the copy, state copy, fit copy, journal index).
        self.checkpoints: list[tuple[float, _State, _Fit, int]] = [
            (-math.inf, self.state.clone(), self.fit.clone(), 0)
        ]
        #: The journal length at which the next state copy is due.
        self.next_checkpoint = CHECKPOINT_EVERY_READINGS
        #: Result ids returned since the oldest checkpoint, with their reading times.
        self.emitted: dict[str, float] = {}
        #: Excursion ids a replay gives to an excursion whose start it corrected within
        #: :data:`START_CORRECTION_TOLERANCE_S`, to the id it keeps, with its start time.
        self.aliases: dict[str, tuple[str, float]] = {}

    def rule_counts(self) -> list[int]:
        return [len(c.rules) for c in self.limits]


class _ShockState:
    __slots__ = ("last_alarm", "running_peak", "suppressed")

    def __init__(self) -> None:
        self.last_alarm: float | None = None
        self.running_peak = 0.0
        self.suppressed = 0


class ConditionMonitor:
    """Evaluates readings against the profiles assigned to their subjects.

    ``profiles``: extra profiles (from the config) on top of the presets; ``assignments``:
    subject (asset or tag id) to profile name (from the config); ``default_profile``: for
    subjects without one (``None``: their readings are counted and ignored). What commands
    change (:meth:`define`, :meth:`assign`) lies over the config and is what :meth:`snapshot`
    keeps; the config itself is the constructor's, so a changed config applies after a restart.
    """

    def __init__(
        self,
        profiles: Iterable[Profile] = (),
        assignments: Mapping[str, str] | None = None,
        *,
        default_profile: str | None = None,
    ) -> None:
        self._base_profiles: dict[str, Profile] = dict(PRESETS)
        for profile in profiles:
            self._base_profiles[profile.name] = profile
        if default_profile is not None and default_profile not in self._base_profiles:
            raise UnknownProfileError(default_profile)
        self._default = default_profile
        self._base_assigned: dict[str, str] = {}
        for subject, name in (assignments or {}).items():
            if name not in self._base_profiles:
                raise UnknownProfileError(name)
            self._base_assigned[subject] = name
        #: What commands defined and assigned (``None``: back to the default).
        self._cmd_profiles: dict[str, Profile] = {}
        self._cmd_assigned: dict[str, str | None] = {}
        self._profiles = dict(self._base_profiles)
        self._assigned = dict(self._base_assigned)
        self._series: dict[tuple[str, Quantity], _Series] = {}
        self._cfgs: dict[tuple[str, Quantity], tuple[Profile, tuple[_LimitCfg, ...]]] = {}
        self._shocks: dict[str, _ShockState] = {}
        self._counts: Counter[str] = Counter()
        self._readings = 0  # a plain int: counted on every reading

    @property
    def counters(self) -> Counter[str]:
        """What the monitor saw: ``readings`` (evaluated or not), ``unassigned``, ``duplicate``,
        ``late_merged``, ``too_late``, ``fault``, ``shocks``, ``restore_dropped``."""
        counts = Counter(self._counts)
        counts["readings"] = self._readings
        return counts

    # --- profiles and assignments ----------------------------------------------------------

    @property
    def profiles(self) -> Mapping[str, Profile]:
        return self._profiles

    @property
    def assignments(self) -> Mapping[str, str]:
        return self._assigned

    def profile_of(self, subject: str) -> Profile | None:
        name = self._assigned.get(subject, self._default)
        return None if name is None else self._profiles[name]

    def define(self, profile: Profile) -> list[ConditionResult]:
        """Add or replace a profile. Subjects on a changed profile start a new monitoring
        period; their open excursions close (``reassigned``), which is returned."""
        old = self._profiles.get(profile.name)
        self._profiles[profile.name] = profile
        self._cmd_profiles[profile.name] = profile
        if old is None or old == profile:
            return []
        out: list[ConditionResult] = []
        for key in [k for k, s in self._series.items() if s.profile.name == profile.name]:
            out += self._end_series(self._series.pop(key))
        return out

    def assign(self, subject: str, profile: str | None) -> list[ConditionResult]:
        """Assign ``profile`` to ``subject`` (``None``: back to the default). The same profile
        again changes nothing; another one starts a new monitoring period and closes the
        subject's open excursions (``reassigned``), which is returned."""
        if profile is not None and profile not in self._profiles:
            raise UnknownProfileError(profile)
        before = self._assigned.get(subject, self._default)
        self._cmd_assigned[subject] = profile
        if profile is None:
            self._assigned.pop(subject, None)
        else:
            self._assigned[subject] = profile
        if before == self._assigned.get(subject, self._default):
            return []
        out: list[ConditionResult] = []
        for quantity in Quantity:
            series = self._series.pop((subject, quantity), None)
            if series is not None:
                out += self._end_series(series)
        self._shocks.pop(subject, None)
        return out

    def _end_series(self, series: _Series) -> list[ConditionResult]:
        out: list[ConditionResult] = []
        st = series.state
        if st.last_t is None:
            return out
        for cfg, ls in zip(series.limits, st.limits, strict=True):
            for i, exc in enumerate(ls.open):
                if exc is not None:
                    end = exc.returned_at if exc.returned_at is not None else st.last_t
                    out.append(
                        self._excursion(
                            series,
                            cfg,
                            i,
                            exc,
                            ExcursionPhase.CLOSE,
                            st.last_t,
                            end,
                            CloseReason.REASSIGNED,
                        )
                    )
        return out

    # --- readings ----------------------------------------------------------------------------

    def observe(
        self, subject: str, quantity: Quantity, value: float, at: datetime
    ) -> list[ConditionResult]:
        """Evaluate one reading taken at ``at`` (timezone-aware)."""
        return self.observe_s(subject, quantity, value, _seconds(at))

    def observe_s(
        self, subject: str, quantity: Quantity, value: float, t: float
    ) -> list[ConditionResult]:
        """:meth:`observe` with the time as POSIX seconds (the pipeline's fast path)."""
        series = self._series.get((subject, quantity))
        if series is None:
            series = self._new_series(subject, quantity)
            if series is None:
                self._counts["unassigned"] += 1
                return []
        self._readings += 1
        if not series.low <= value <= series.high:  # NaN fails too
            return self._fault(series, value, t)
        # _accept, inlined: this is the path of nearly every reading.
        st = series.state
        last = st.last_t
        if last is not None and t <= last:
            return self._merge(series, [(t, value)])
        if st.fault_id is None:
            out: list[ConditionResult] = []
        else:
            out = [self._recovered(series, value, t)]
        self._step(series, st, t, value, out)
        jt = series.journal_t
        jt.append(t)
        series.journal_v.append(value)
        if len(jt) >= series.next_checkpoint:
            self._checkpoint(series, t)
        if out:
            emitted = series.emitted
            for r in out:
                emitted[r.result_id] = t
        return out

    def _accept(self, series: _Series, t: float, value: float) -> list[ConditionResult]:
        """Evaluate a plausible reading: at once if it is the newest, else merged."""
        st = series.state
        last = st.last_t
        if last is not None and t <= last:
            return self._merge(series, [(t, value)])
        if st.fault_id is None:
            out: list[ConditionResult] = []
        else:
            out = [self._recovered(series, value, t)]
        self._step(series, st, t, value, out)
        jt = series.journal_t
        jt.append(t)
        series.journal_v.append(value)
        if len(jt) >= series.next_checkpoint:
            self._checkpoint(series, t)
        if out:
            emitted = series.emitted
            for r in out:
                emitted[r.result_id] = t
        return out

    def observe_many(
        self, subject: str, quantity: Quantity, readings: Iterable[tuple[datetime, float]]
    ) -> list[ConditionResult]:
        """Evaluate several readings (a history batch) in time order, merged with the series."""
        out: list[ConditionResult] = []
        good: list[tuple[float, float]] = []
        for at, value in readings:
            t = _seconds(at)
            series = self._series.get((subject, quantity)) or self._new_series(subject, quantity)
            if series is None:
                self._counts["unassigned"] += 1
                continue
            self._readings += 1
            low, high = _PLAUSIBLE[quantity]
            if not low <= value <= high:
                out += self._fault(series, value, t)
            else:
                good.append((t, value))
        series = self._series.get((subject, quantity))
        if series is None or not good:
            return out
        good.sort()
        last = series.state.last_t
        if last is not None and good[0][0] <= last:
            return out + self._merge(series, good)
        for t, value in good:
            out += self._accept(series, t, value)
        return out

    def _limit_cfgs(self, profile: Profile, quantity: Quantity) -> tuple[_LimitCfg, ...]:
        cached = self._cfgs.get((profile.name, quantity))
        if cached is None or cached[0] is not profile:
            cached = (profile, tuple(_LimitCfg(limit) for limit in profile.limits(quantity)))
            self._cfgs[(profile.name, quantity)] = cached
        return cached[1]

    def _new_series(self, subject: str, quantity: Quantity) -> _Series | None:
        profile = self.profile_of(subject)
        if profile is None:
            return None
        series = _Series(subject, quantity, profile, self._limit_cfgs(profile, quantity))
        self._series[(subject, quantity)] = series
        return series

    def _checkpoint(self, series: _Series, t: float) -> None:
        cps = series.checkpoints
        cps.append((t, series.state.clone(), series.fit.clone(), len(series.journal_t)))
        if len(cps) > 2:
            del cps[0]
            drop = cps[0][3]
            del series.journal_t[:drop]
            del series.journal_v[:drop]
            cps[:] = [(ct, cs, cf, ci - drop) for ct, cs, cf, ci in cps]
            horizon = cps[0][0]
            series.emitted = {k: v for k, v in series.emitted.items() if v >= horizon}
            # No replay starts before the oldest copy: an excursion that started before it
            # cannot be opened again under another id.
            series.aliases = {
                k: v
                for k, v in series.aliases.items()
                if v[1] >= horizon - START_CORRECTION_TOLERANCE_S
            }
        series.next_checkpoint = cps[-1][3] + CHECKPOINT_EVERY_READINGS

    def _merge(self, series: _Series, readings: list[tuple[float, float]]) -> list[ConditionResult]:
        """Insert late readings into the journal and evaluate again from a checkpoint."""
        jt, jv = series.journal_t, series.journal_v
        cps = series.checkpoints
        oldest = cps[0][0]
        inserted: list[float] = []
        for t, value in readings:
            if t <= oldest:
                self._counts["too_late"] += 1
                continue
            i = bisect.bisect_left(jt, t)
            if i < len(jt) and jt[i] == t:
                self._counts["duplicate"] += 1
                continue
            jt.insert(i, t)
            jv.insert(i, value)
            inserted.append(t)
            for k, (ct, cs, cf, ci) in enumerate(cps):
                if ci > i:
                    cps[k] = (ct, cs, cf, ci + 1)
        if not inserted:
            return []
        self._counts["late_merged"] += len(inserted)
        first = min(inserted)
        _, cp_state, cp_fit, cp_i = next(cp for cp in reversed(cps) if cp[0] < first)
        # Later checkpoints are stale now: they were taken without the late readings.
        keep = [cp for cp in cps if cp[0] < first]
        series.checkpoints = keep
        series.next_checkpoint = keep[-1][3] + CHECKPOINT_EVERY_READINGS
        before = series.state
        state = cp_state.clone()
        state.fault_id = before.fault_id  # faults are not readings: not part of the replay
        series.fit = cp_fit.clone()
        series.state = state
        replayed: list[ConditionResult] = []
        for k in range(cp_i, len(jt)):
            self._step(series, state, jt[k], jv[k], replayed)
        replayed = self._same_approach(series, before, state, replayed)
        replayed = self._same_excursion(series, before, state, replayed)
        out: list[ConditionResult] = []
        emitted = series.emitted
        for r in replayed:
            if r.result_id not in emitted:
                emitted[r.result_id] = _seconds(r.at)
                out.append(r)
        # Open excursions the replay did not reproduce: closed as superseded.
        now_open = {e.id for ls in state.limits for e in ls.open if e is not None}
        closed = {
            r.excursion_id
            for r in replayed
            if isinstance(r, ExcursionResult) and r.phase is ExcursionPhase.CLOSE
        }
        last = state.last_t if state.last_t is not None else first
        for cfg, ls in zip(series.limits, before.limits, strict=True):
            for i, exc in enumerate(ls.open):
                if exc is not None and exc.id not in now_open and exc.id not in closed:
                    r = self._excursion(
                        series,
                        cfg,
                        i,
                        exc,
                        ExcursionPhase.CLOSE,
                        last,
                        last,
                        CloseReason.SUPERSEDED,
                    )
                    if r.result_id not in emitted:  # superseded before, revived, again
                        emitted[r.result_id] = last
                        out.append(r)
        return out

    def _same_excursion(
        self,
        series: _Series,
        before: _State,
        state: _State,
        replayed: list[ConditionResult],
    ) -> list[ConditionResult]:
        """An excursion is opened once even when late readings move its start a little: a
        replay that opens a limit and rule's excursion under a new id, its start within
        :data:`START_CORRECTION_TOLERANCE_S` of the one open before the merge, goes on under
        the old id (the replay's ``open`` is dropped; its updates and close are renamed)."""
        aliases = series.aliases
        kept = {r.excursion_id for r in replayed if isinstance(r, ExcursionResult)}
        kept |= {e.id for ls in state.limits for e in ls.open if e is not None}
        for cfg, ls in zip(series.limits, before.limits, strict=True):
            for i, old in enumerate(ls.open):
                if old is None or old.id in kept:
                    continue
                for r in replayed:
                    if (
                        isinstance(r, ExcursionResult)
                        and r.phase is ExcursionPhase.OPEN
                        and r.limit == cfg.name
                        and r.rule is cfg.kinds[i]
                        and r.rule_duration_s == cfg.durations[i]
                        and r.excursion_id != old.id
                        and r.excursion_id not in aliases
                        and abs(_seconds(r.start) - old.start) <= START_CORRECTION_TOLERANCE_S
                    ):
                        aliases[r.excursion_id] = (old.id, old.start)
                        break
        # Earlier corrections too: a later replay that reaches back before the excursion
        # opens it again under the corrected start's id, even after it closed.
        alias = {k: v[0] for k, v in aliases.items() if k in kept}
        if not alias:
            return replayed
        for ls in state.limits:
            for exc in ls.open:
                if exc is not None and exc.id in alias:
                    exc.id = alias[exc.id]
        out: list[ConditionResult] = []
        for r in replayed:
            if isinstance(r, ExcursionResult) and r.excursion_id in alias:
                if r.phase is ExcursionPhase.OPEN:
                    continue
                target = alias[r.excursion_id]
                r = replace(
                    r,
                    excursion_id=target,
                    result_id=_excursion_rid(target, r.phase, _seconds(r.at), r.close_reason),
                )
            out.append(r)
        return out

    def _same_approach(
        self,
        series: _Series,
        before: _State,
        state: _State,
        replayed: list[ConditionResult],
    ) -> list[ConditionResult]:
        """A warning is raised once per approach, even when late readings move the reading it
        is raised at: a replay that raises a limit's warning under a new id while one was
        already raised (or spent on a crossing) for that limit keeps the old one."""
        names = [cfg.name for cfg in series.limits]
        alias: dict[str, str | None] = {}
        for k, ls in enumerate(before.limits):
            old = ls.warn_id
            if old is None:
                continue
            for r in replayed:
                if (
                    isinstance(r, WarningResult)
                    and r.phase is WarningPhase.RAISED
                    and r.limit == names[k]
                    and r.warning_id != old
                    and r.warning_id not in alias
                ):
                    alias[r.warning_id] = None if old == _SPENT else old
                    break
        if not alias:
            return replayed
        for ls in state.limits:
            if ls.warn_id in alias:
                target = alias[ls.warn_id]
                ls.warn_id = _SPENT if target is None else target
        out: list[ConditionResult] = []
        for r in replayed:
            if isinstance(r, WarningResult) and r.warning_id in alias:
                target = alias[r.warning_id]
                if r.phase is WarningPhase.RAISED or target is None:
                    continue
                r = replace(
                    r,
                    warning_id=target,
                    result_id=result_id(target, WarningPhase.WITHDRAWN.value),
                )
            out.append(r)
        return out

    # --- the rules ---------------------------------------------------------------------------

    def _step(
        self, series: _Series, st: _State, t1: float, v1: float, out: list[ConditionResult]
    ) -> None:
        t0 = st.last_t
        v0 = st.last_v
        dt = 0.0
        seg = False
        is_temp = series.is_temp
        w1 = _exp(-DELTA_H_OVER_R_K / (v1 + KELVIN_OFFSET)) if is_temp else 0.0
        if t0 is None:
            st.period_start = t1
        else:
            dt = t1 - t0
            seg = dt <= series.max_gap_s
            if seg:
                st.covered_s += dt
                st.integral += (v0 + v1) * 0.5 * dt
                if is_temp:
                    st.mkt_sum += (st.last_w + w1) * 0.5 * dt
            else:
                st.gap_s += dt
        st.last_w = w1
        st.n += 1
        if v1 < st.vmin:
            st.vmin = v1
        if v1 > st.vmax:
            st.vmax = v1
        st.last_t = t1
        st.last_v = v1
        for cfg, ls in zip(series.limits, st.limits):  # noqa: B905 (same length by construction)
            thr = cfg.thr
            if cfg.above:
                b1 = v1 >= thr if cfg.at_thr else v1 > thr
            else:
                b1 = v1 <= thr if cfg.at_thr else v1 < thr
            if b1 or ls.beyond or ls.n_open:
                self._limit_step(series, st, cfg, ls, b1, t0, v0, t1, v1, seg, dt, out)
            # else: in range before and now, nothing open: the state is already at rest.
        hot = series.warning_hot
        if hot is None:
            return
        min_spacing_s, points, window_s, window_points, min_points, min_span_s, horizon_s = hot
        fit = series.fit
        ts = fit.ts
        if ts:
            t_b = ts[-1]
            if not t1 - t_b >= min_spacing_s:
                return  # too soon after the latest fit point
        # The least-squares sums, updated in place (inlined: this runs for every reading).
        vs = fit.vs
        # The noise estimate (see _Fit.noise_var): the latest fit point's deviation from
        # the line through its neighbours, the one before it and this reading.
        if len(ts) >= 2:
            span = t1 - ts[-2]
            if span > 0:
                a = (t1 - t_b) / span
                b = 1.0 - a
                r = vs[-1] - a * vs[-2] - b * v1
                sample = r * r / (1.0 + a * a + b * b)
                noise_var = fit.noise_var
                noise_n = fit.noise_n
                # Winsorised at 3 standard deviations once the estimate has a few
                # samples: a door opened for two minutes (a spike of 8 °C) would otherwise
                # count as noise for hours and mute the warning for the warm-up after it.
                # Gaussian noise loses 0.5 % of its variance to the cap; a real rise in
                # noise still comes through, by up to 9 times the estimate a sample.
                cap = _NOISE_CLIP_VARIANCES * noise_var
                if noise_n >= _NOISE_CLIP_AFTER and 0.0 < cap < sample:
                    sample = cap
                noise_n += 1
                fit.noise_n = noise_n
                fit.noise_var = noise_var + (sample - noise_var) / (
                    noise_n if noise_n < points else points
                )
        ts.append(t1)
        vs.append(v1)
        n = fit.n
        if n == 0:
            fit.ref = ref = t1
        else:
            ref = fit.ref
        x = t1 - ref
        n += 1
        sum_t = fit.st + x
        sum_v = fit.sv + v1
        stt = fit.stt + x * x
        stv = fit.stv + x * v1
        oldest = t1 - window_s
        while len(ts) > window_points or ts[0] < oldest:
            x = ts.pop(0) - ref
            v = vs.pop(0)
            n -= 1
            sum_t -= x
            sum_v -= v
            stt -= x * x
            stv -= x * v
        appends = fit.appends + 1
        fit.appends = appends
        if appends % _FIT_REBASE_EVERY == 0:
            fit.rebase()
            ref, n, sum_t, sum_v, stt, stv = fit.ref, fit.n, fit.st, fit.sv, fit.stt, fit.stv
        else:
            fit.n = n
            fit.st = sum_t
            fit.sv = sum_v
            fit.stt = stt
            fit.stv = stv
        if n >= min_points and t1 - ts[0] >= min_span_s:
            sxx = n * stt - sum_t * sum_t
            if sxx > 0:
                slope = (n * stv - sum_t * sum_v) / sxx
                value = (sum_v - slope * sum_t) / n + slope * (t1 - ref)
                # Where the line is one horizon ahead: only a limit it reaches can warn.
                reach = value + slope * horizon_s
                if st.n_warn or reach >= series.first_above or reach <= series.first_below:
                    warning = series.warning
                    assert warning is not None  # set with warning_hot
                    self._warn(series, st, warning, t1, v1, slope, value, out)

    def _limit_step(
        self,
        series: _Series,
        st: _State,
        cfg: _LimitCfg,
        ls: _LimitState,
        b1: bool,
        t0: float | None,
        v0: float,
        t1: float,
        v1: float,
        seg: bool,
        dt: float,
        out: list[ConditionResult],
    ) -> None:
        thr = cfg.thr
        b0 = ls.beyond if t0 is not None else False
        part = 0.0
        part_int = 0.0
        cross = t1
        if seg:
            if b0 and b1:
                part = dt
                part_int = (v0 + v1) * 0.5 * dt
            elif b0 != b1:
                assert t0 is not None
                cross = t0 + dt * (thr - v0) / (v1 - v0)
                if b1:
                    part = t1 - cross
                    part_int = (thr + v1) * 0.5 * part
                else:
                    part = cross - t0
                    part_int = (v0 + thr) * 0.5 * part
        ls.beyond = b1
        ls.total_s += part
        if b1:
            if ls.run_start is None:
                ls.run_start = cross
                ls.run_s = part
                ls.run_int = part_int
                ls.run_min = ls.run_max = v1
            else:
                ls.run_s += part
                ls.run_int += part_int
                if v1 < ls.run_min:
                    ls.run_min = v1
                if v1 > ls.run_max:
                    ls.run_max = v1
        else:
            ls.run_start = None
            ls.run_s = 0.0
        inside = not b1 and (thr - v1 if cfg.above else v1 - thr) >= cfg.hyst
        opened = ls.open
        for i in range(len(opened)):
            exc = opened[i]
            if exc is not None:
                exc.beyond_s += part
                exc.integral += part_int
                if b1:
                    if v1 < exc.vmin:
                        exc.vmin = v1
                    if v1 > exc.vmax:
                        exc.vmax = v1
                    exc.returned_at = None
                    exc.back_since = None
                else:
                    if b0:
                        exc.returned_at = cross
                    elif exc.returned_at is None:
                        exc.returned_at = t1
                    if inside:
                        if exc.back_since is None:
                            exc.back_since = t1
                        if t1 - exc.back_since >= cfg.close_delay:
                            end = exc.returned_at
                            out.append(
                                self._excursion(
                                    series,
                                    cfg,
                                    i,
                                    exc,
                                    ExcursionPhase.CLOSE,
                                    t1,
                                    t1 if end is None else end,
                                    CloseReason.RETURNED,
                                )
                            )
                            opened[i] = None
                            ls.n_open -= 1
                            st.quiet_until = t1 + WARNING_QUIET_AFTER_CLOSE_S
                            continue
                    else:
                        exc.back_since = None
                if t1 - exc.last_emit >= series.profile.update_interval_s:
                    exc.last_emit = t1
                    out.append(
                        self._excursion(series, cfg, i, exc, ExcursionPhase.UPDATE, t1, None)
                    )
        if not b1:
            for i in range(len(ls.met_since)):
                ls.met_since[i] = None
            return
        kinds = cfg.kinds
        for i in range(len(kinds)):
            kind = kinds[i]
            if kind is RuleKind.CONSECUTIVE:
                met = ls.run_s >= cfg.durations[i]
            elif kind is RuleKind.CUMULATIVE:
                met = ls.total_s >= cfg.durations[i]
            else:
                met = True
            if not met:
                ls.met_since[i] = None
                continue
            since = ls.met_since[i]
            if since is None:
                ls.met_since[i] = since = t1
            if opened[i] is None and t1 - since >= cfg.open_delay:
                start = ls.run_start if ls.run_start is not None else t1
                exc = _Excursion(
                    result_id(
                        series.subject,
                        series.quantity.value,
                        cfg.name,
                        cfg.rule_keys[i],
                        _tid(start),
                    ),
                    start,
                    t1,
                    ls.run_s,
                    ls.run_int,
                    ls.run_min,
                    ls.run_max,
                )
                opened[i] = exc
                ls.n_open += 1
                out.append(self._excursion(series, cfg, i, exc, ExcursionPhase.OPEN, t1, None))

    def _excursion(
        self,
        series: _Series,
        cfg: _LimitCfg,
        i: int,
        exc: _Excursion,
        phase: ExcursionPhase,
        at: float,
        end: float | None,
        reason: CloseReason | None = None,
    ) -> ExcursionResult:
        rid = _excursion_rid(exc.id, phase, at, reason)
        mean = exc.integral / exc.beyond_s if exc.beyond_s > 0 else exc.vmin
        st = series.state
        return ExcursionResult(
            result_id=rid,
            excursion_id=exc.id,
            phase=phase,
            subject=series.subject,
            profile=series.profile.name,
            quantity=series.quantity,
            limit=cfg.name,
            direction=cfg.limit.direction,
            threshold=cfg.thr,
            rule=cfg.kinds[i],
            rule_duration_s=cfg.durations[i],
            at=_utc(at),
            start=_utc(exc.start),
            end=None if end is None else _utc(end),
            time_beyond_s=exc.beyond_s,
            min=exc.vmin,
            max=exc.vmax,
            mean=mean,
            mkt_c=self._mkt(series),
            period_start=_utc(st.period_start if st.period_start is not None else at),
            close_reason=reason,
            beyond_at_threshold=cfg.at_thr,
        )

    def _mkt(self, series: _Series) -> float | None:
        temp = (
            series if series.is_temp else self._series.get((series.subject, Quantity.TEMPERATURE_C))
        )
        if temp is None:
            return None
        return mkt_from_sums_c(temp.state.mkt_sum, temp.state.covered_s)

    # --- early warning --------------------------------------------------------------------

    def _warn(
        self,
        series: _Series,
        st: _State,
        warning: WarningSettings,
        t1: float,
        v1: float,
        slope: float,
        value: float,
        out: list[ConditionResult],
    ) -> None:
        horizon = warning.horizon_s
        limits = series.limits
        states = st.limits
        for k in range(len(limits)):
            cfg = limits[k]
            ls = states[k]
            if ls.beyond or ls.n_open:
                # The approach ended in a crossing: nothing to withdraw, but no new warning
                # until the trend has turned away (noise at the limit is not a new approach).
                if ls.warn_id is None:
                    st.n_warn += 1
                ls.warn_id = _SPENT
                continue
            if (slope > 0) if cfg.above else (slope < 0):
                eta = max((cfg.thr - value) / slope, 0.0)
            else:
                eta = math.inf
            if ls.warn_id == _SPENT:
                if eta > WARNING_WITHDRAW_FACTOR * horizon:
                    ls.warn_id = None
                    st.n_warn -= 1
            elif ls.warn_id is None:
                # Not while an excursion of another limit is open: a load cooling back from
                # above 8 °C (the high excursion still open, inside its hysteresis) heads for
                # 2 °C on paper but is recovering (like WARNING_QUIET_AFTER_CLOSE_S after it).
                if (
                    eta <= horizon
                    and t1 >= st.quiet_until
                    and not any(o.n_open for o in states)
                    and series.fit.slope_significant(
                        slope, warning.min_slope_z, warning.noise_points
                    )
                ):
                    r2 = series.fit.r2()
                    if r2 >= warning.min_r2:
                        wid = result_id(
                            series.subject, series.quantity.value, cfg.name, "warning", _tid(t1)
                        )
                        ls.warn_id = wid
                        st.n_warn += 1
                        out.append(
                            self._warning(
                                series, cfg, wid, WarningPhase.RAISED, t1, v1, slope, r2, t1 + eta
                            )
                        )
            elif eta > WARNING_WITHDRAW_FACTOR * horizon:
                wid = ls.warn_id
                ls.warn_id = None
                st.n_warn -= 1
                r2 = series.fit.r2()
                out.append(
                    self._warning(series, cfg, wid, WarningPhase.WITHDRAWN, t1, v1, slope, r2, None)
                )

    def _warning(
        self,
        series: _Series,
        cfg: _LimitCfg,
        wid: str,
        phase: WarningPhase,
        t1: float,
        v1: float,
        slope: float,
        r2: float,
        crossing: float | None,
    ) -> WarningResult:
        return WarningResult(
            result_id=result_id(wid, phase.value),
            warning_id=wid,
            phase=phase,
            subject=series.subject,
            profile=series.profile.name,
            quantity=series.quantity,
            limit=cfg.name,
            direction=cfg.limit.direction,
            threshold=cfg.thr,
            at=_utc(t1),
            value=v1,
            slope_per_h=slope * 3600.0,
            r2=r2,
            predicted_crossing=None if crossing is None else _utc(crossing),
            beyond_at_threshold=cfg.at_thr,
        )

    # --- sensor faults ----------------------------------------------------------------------

    def _fault(self, series: _Series, value: float, t: float) -> list[ConditionResult]:
        self._counts["fault"] += 1
        st = series.state
        if st.fault_id is not None:
            return []
        low, high = _PLAUSIBLE[series.quantity]
        fid = result_id(series.subject, series.quantity.value, "fault", _tid(t))
        st.fault_id = fid
        shown = value if math.isfinite(value) else 0.0
        return [
            SensorFaultResult(
                result_id=result_id(fid, FaultPhase.FAULT.value),
                fault_id=fid,
                phase=FaultPhase.FAULT,
                subject=series.subject,
                quantity=series.quantity.value,
                at=_utc(t),
                value=shown,
                detail=f"{value!r} outside the possible {low:g}..{high:g}",
            )
        ]

    def _recovered(self, series: _Series, value: float, t: float) -> SensorFaultResult:
        st = series.state
        fid = st.fault_id
        assert fid is not None
        st.fault_id = None
        return SensorFaultResult(
            result_id=result_id(fid, FaultPhase.RECOVERED.value),
            fault_id=fid,
            phase=FaultPhase.RECOVERED,
            subject=series.subject,
            quantity=series.quantity.value,
            at=_utc(t),
            value=value,
            detail="plausible readings again",
        )

    # --- shocks -----------------------------------------------------------------------------

    def observe_shock(
        self,
        subject: str,
        at: datetime,
        peak_g: tuple[float, float, float],
        duration_ms: float | None,
    ) -> list[ConditionResult]:
        """A shock with signed peak acceleration per axis (g) and its pulse length."""
        profile = self.profile_of(subject)
        if profile is None or profile.shock is None:
            self._counts["unassigned"] += 1
            return []
        self._counts["shocks"] += 1
        t = _seconds(at)
        x, y, z = peak_g
        resultant = math.sqrt(x * x + y * y + z * z)
        shock_id = result_id(subject, "shock", _tid(t), x, y, z)
        if not resultant <= SHOCK_MAX_G:
            self._counts["fault"] += 1
            return [
                SensorFaultResult(
                    result_id=shock_id,
                    fault_id=shock_id,
                    phase=FaultPhase.FAULT,
                    subject=subject,
                    quantity="shock_g",
                    at=at,
                    value=resultant if math.isfinite(resultant) else 0.0,
                    detail=f"shock of {resultant!r} g outside the possible 0..{SHOCK_MAX_G:g}",
                )
            ]
        limit = profile.shock
        record = limit.record_g if limit.record_g is not None else 0.0
        if resultant < record:
            return []
        long_enough = limit.min_duration_ms is None or (
            duration_ms is not None and duration_ms >= limit.min_duration_ms
        )
        alarming = resultant >= limit.alarm_g and long_enough
        state = self._shocks.setdefault(subject, _ShockState())
        alarm = False
        running = resultant
        suppressed = 0
        if alarming:
            state.running_peak = max(state.running_peak, resultant)
            if state.last_alarm is None or abs(t - state.last_alarm) >= limit.realarm_interval_s:
                alarm = True
                running = state.running_peak
                suppressed = state.suppressed
                state.last_alarm = t
                state.running_peak = 0.0
                state.suppressed = 0
            else:
                state.suppressed += 1
                running = state.running_peak
                suppressed = state.suppressed
        return [
            ShockResult(
                result_id=shock_id,
                subject=subject,
                profile=profile.name,
                at=at,
                peak_x_g=x,
                peak_y_g=y,
                peak_z_g=z,
                peak_g=resultant,
                duration_ms=duration_ms,
                threshold_g=limit.alarm_g if alarming else record,
                alarm=alarm,
                running_peak_g=running,
                suppressed=suppressed,
            )
        ]

    # --- reports and persistence ------------------------------------------------------------

    def mkt_c(self, subject: str) -> float | None:
        """Mean kinetic temperature of ``subject``'s monitoring period so far, °C."""
        series = self._series.get((subject, Quantity.TEMPERATURE_C))
        return None if series is None else self._mkt(series)

    def time_beyond_s(self, subject: str, quantity: Quantity, limit: str) -> float:
        """Total time beyond ``limit`` in the monitoring period (the cumulative total)."""
        series = self._series.get((subject, quantity))
        if series is None:
            return 0.0
        for cfg, ls in zip(series.limits, series.state.limits, strict=True):
            if cfg.name == limit:
                return ls.total_s
        raise KeyError(limit)

    def summary(self, subject: str) -> list[SeriesSummary]:
        """Per quantity with readings: the monitoring period so far."""
        out = []
        for quantity in Quantity:
            series = self._series.get((subject, quantity))
            if series is None:
                continue
            st = series.state
            if st.last_t is None or st.period_start is None:
                continue
            mean = st.integral / st.covered_s if st.covered_s > 0 else st.last_v
            out.append(
                SeriesSummary(
                    subject=subject,
                    profile=series.profile.name,
                    quantity=quantity,
                    period_start=_utc(st.period_start),
                    last_reading=_utc(st.last_t),
                    readings=st.n,
                    min=st.vmin,
                    mean=mean,
                    max=st.vmax,
                    mkt_c=self._mkt(series) if series.is_temp else None,
                    covered_s=st.covered_s,
                    gap_s=st.gap_s,
                    time_beyond_s={
                        cfg.name: ls.total_s
                        for cfg, ls in zip(series.limits, st.limits, strict=True)
                    },
                )
            )
        return out

    def open_excursions(self) -> list[tuple[str, Quantity, str, str]]:
        """(subject, quantity, limit, excursion id) of every open excursion."""
        return [
            (s.subject, s.quantity, cfg.name, e.id)
            for s in self._series.values()
            for cfg, ls in zip(s.limits, s.state.limits, strict=True)
            for e in ls.open
            if e is not None
        ]

    def snapshot(self) -> JsonValue:
        """What a restart must not forget: the profiles and assignments commands made, and per
        series the monitoring period (cumulative totals, MKT sums, open excursions, runs,
        warnings)."""
        shocks: dict[str, JsonValue] = {
            subject: {
                "last_alarm": s.last_alarm,
                "running_peak": s.running_peak,
                "suppressed": s.suppressed,
            }
            for subject, s in self._shocks.items()
        }
        return {
            "version": SNAPSHOT_VERSION,
            "profiles": [
                self._cmd_profiles[name].model_dump(mode="json")
                for name in sorted(self._cmd_profiles)
            ],
            "assignments": dict(self._cmd_assigned),
            "series": [
                {
                    "subject": s.subject,
                    "quantity": s.quantity.value,
                    "profile": s.profile.name,
                    "state": s.state.to_json(),
                }
                for s in self._series.values()
            ],
            "shocks": shocks,
        }

    def restore(self, data: JsonValue) -> None:
        """Load a :meth:`snapshot` over the config given to the constructor. An assignment to a
        profile that no longer exists is dropped (counted ``restore_dropped``); a series whose
        subject is on another profile now is not restored (it starts a new period). Raises
        ``ValueError`` for a snapshot that does not parse; the monitor is unchanged then."""
        try:
            parsed = self._parse(data)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise ValueError(f"condition snapshot does not parse: {exc}") from exc
        cmd_profiles, cmd_assigned, dropped, series, shocks = parsed
        self._cmd_profiles = cmd_profiles
        self._cmd_assigned = cmd_assigned
        self._profiles = {**self._base_profiles, **cmd_profiles}
        self._assigned = self._merged_assignments(cmd_assigned)
        self._series = series
        self._shocks = shocks
        self._counts["restore_dropped"] += dropped

    def _merged_assignments(self, cmd_assigned: Mapping[str, str | None]) -> dict[str, str]:
        assigned = dict(self._base_assigned)
        for subject, name in cmd_assigned.items():
            if name is None:
                assigned.pop(subject, None)
            else:
                assigned[subject] = name
        return assigned

    def _parse(
        self, data: JsonValue
    ) -> tuple[
        dict[str, Profile],
        dict[str, str | None],
        int,
        dict[tuple[str, Quantity], _Series],
        dict[str, _ShockState],
    ]:
        root = cast(dict[str, Any], data)
        if not isinstance(root, dict) or root.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a version 1 condition snapshot")
        cmd_profiles: dict[str, Profile] = {}
        for raw in root["profiles"]:
            profile = _PROFILE_ADAPTER.validate_python(raw)
            cmd_profiles[profile.name] = profile
        profiles = {**self._base_profiles, **cmd_profiles}
        cmd_assigned: dict[str, str | None] = {}
        dropped = 0
        for subject, name in dict(root["assignments"]).items():
            if not isinstance(subject, str) or not (name is None or isinstance(name, str)):
                raise ValueError("assignments map subjects to profile names or null")
            if name is not None and name not in profiles:
                dropped += 1
                continue
            cmd_assigned[subject] = name
        assigned = self._merged_assignments(cmd_assigned)
        series: dict[tuple[str, Quantity], _Series] = {}
        for raw in root["series"]:
            subject = raw["subject"]
            if not isinstance(subject, str):
                raise ValueError("subject must be a string")
            quantity = Quantity(raw["quantity"])
            current = profiles.get(raw["profile"])
            if current is None or assigned.get(subject, self._default) != current.name:
                continue
            s = _Series(subject, quantity, current, self._limit_cfgs(current, quantity))
            s.state = _State.from_json(raw["state"], s.rule_counts())
            s.checkpoints = [
                (
                    s.state.last_t if s.state.last_t is not None else -math.inf,
                    s.state.clone(),
                    s.fit.clone(),
                    0,
                )
            ]
            series[(subject, quantity)] = s
        shocks: dict[str, _ShockState] = {}
        for subject, raw in dict(root["shocks"]).items():
            sh = _ShockState()
            sh.last_alarm = _opt_float(raw["last_alarm"])
            sh.running_peak = float(raw["running_peak"])
            sh.suppressed = int(raw["suppressed"])
            shocks[str(subject)] = sh
        return cmd_profiles, cmd_assigned, dropped, series, shocks
