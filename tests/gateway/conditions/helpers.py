"""Shared helpers for the condition tests: explicit times, profiles built inline, feeding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway.conditions import (
    ConditionMonitor,
    ConditionResult,
    Direction,
    ExcursionPhase,
    ExcursionResult,
    Limit,
    Profile,
    Quantity,
    Rule,
    RuleKind,
    WarningResult,
)

T0: Final = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
TEMP: Final = Quantity.TEMPERATURE_C


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def secs(when: datetime | None) -> float:
    assert when is not None
    return (when - T0).total_seconds()


def high_limit(
    *rules: Rule,
    threshold: float = 8.0,
    hysteresis: float = 0.0,
    open_delay_s: float = 0.0,
    close_delay_s: float = 0.0,
    beyond_at_threshold: bool = False,
) -> Limit:
    return Limit(
        name="high",
        direction=Direction.ABOVE,
        threshold=threshold,
        rules=rules,
        hysteresis=hysteresis,
        open_delay_s=open_delay_s,
        close_delay_s=close_delay_s,
        beyond_at_threshold=beyond_at_threshold,
    )


def profile(*limits: Limit, name: str = "test", **extra: object) -> Profile:
    return Profile.model_validate({"name": name, "temperature_c": limits, "warning": None, **extra})


INSTANT: Final = Rule(kind=RuleKind.INSTANT)


def consecutive(seconds: float) -> Rule:
    return Rule(kind=RuleKind.CONSECUTIVE, duration_s=seconds)


def cumulative(seconds: float) -> Rule:
    return Rule(kind=RuleKind.CUMULATIVE, duration_s=seconds)


def monitor_for(p: Profile, subject: str = "pal") -> ConditionMonitor:
    return ConditionMonitor([p], {subject: p.name})


def feed(
    monitor: ConditionMonitor,
    points: Iterable[tuple[float, float]],
    subject: str = "pal",
    quantity: Quantity = TEMP,
) -> list[ConditionResult]:
    out: list[ConditionResult] = []
    for t, v in points:
        out += monitor.observe(subject, quantity, v, at(t))
    return out


def excursions(
    results: Sequence[ConditionResult], phase: ExcursionPhase | None = None
) -> list[ExcursionResult]:
    return [
        r for r in results if isinstance(r, ExcursionResult) and (phase is None or r.phase is phase)
    ]


def warnings(results: Sequence[ConditionResult]) -> list[WarningResult]:
    return [r for r in results if isinstance(r, WarningResult)]


def every(step_s: float, start_s: float, end_s: float, value: float) -> list[tuple[float, float]]:
    """Constant ``value`` every ``step_s`` from ``start_s`` up to and excluding ``end_s``."""
    out = []
    t = start_s
    while t < end_s:
        out.append((t, value))
        t += step_s
    return out
