"""Property: any arrival order (within the merge window) and any duplicates end in the state
that the readings in time order give: same time beyond, MKT and open excursions (the same
start and figures; an excursion whose start a late reading corrected by at most
``START_CORRECTION_TOLERANCE_S`` keeps the id it was opened with)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.conditions import ConditionMonitor, Profile, Quantity
from tests.gateway.conditions.helpers import (
    INSTANT,
    TEMP,
    at,
    consecutive,
    cumulative,
    high_limit,
)

PROFILE = Profile.model_validate(
    {
        "name": "fuzz",
        "temperature_c": [
            high_limit(INSTANT, consecutive(300), cumulative(900), hysteresis=0.4),
            {"direction": "below", "threshold": 2.0, "rules": [{"kind": "instant"}]},
        ],
        "max_gap_s": 400,
        "update_interval_s": 120,
    }
)

_series = st.lists(
    st.tuples(
        st.sampled_from([10.0, 30.0, 60.0, 61.0, 500.0]),  # spacing, 500 s is a gap
        st.floats(min_value=-1.0, max_value=12.0).map(lambda v: round(v, 2)),
    ),
    min_size=2,
    max_size=150,
)


def _without_excursion_ids(value: Any) -> Any:
    """A snapshot with the ids of open excursions left out (everything else kept)."""
    if isinstance(value, dict):
        is_excursion = {"id", "start", "opened_at"} <= value.keys()
        return {
            k: _without_excursion_ids(v)
            for k, v in value.items()
            if not (is_excursion and k == "id")
        }
    if isinstance(value, list):
        return [_without_excursion_ids(v) for v in value]
    return value


def _open(monitor: ConditionMonitor) -> list[tuple[str, Quantity, str]]:
    return [e[:3] for e in monitor.open_excursions()]


@settings(max_examples=120, deadline=None)
@given(steps=_series, seed=st.integers(0, 2**32 - 1), max_shift=st.integers(1, 8))
def test_any_arrival_order_ends_in_the_in_order_state(
    steps: list[tuple[float, float]], seed: int, max_shift: int
) -> None:
    readings: list[tuple[float, float]] = []
    t = 0.0
    for dt, v in steps:
        t += dt
        readings.append((t, v))
    ordered = ConditionMonitor([PROFILE], {"s": "fuzz"})
    for t, v in readings:
        ordered.observe("s", TEMP, v, at(t))
    rnd = random.Random(seed)
    arrival = sorted(
        range(len(readings)), key=lambda i: i + rnd.uniform(0, max_shift)
    )  # each reading at most max_shift places late
    arrival += rnd.sample(range(len(readings)), min(5, len(readings)))  # resends
    merged = ConditionMonitor([PROFILE], {"s": "fuzz"})
    ids: list[str] = []
    for i in arrival:
        t, v = readings[i]
        ids += [r.result_id for r in merged.observe("s", TEMP, v, at(t))]
    assert len(ids) == len(set(ids))
    assert merged.counters["too_late"] == 0
    assert merged.counters["duplicate"] == min(5, len(readings))
    late = sum(
        1 for k, i in enumerate(arrival[: len(readings)]) if i < max(arrival[:k], default=-1)
    )
    assert merged.counters["late_merged"] == late
    for limit in ("high", "below"):
        assert merged.time_beyond_s("s", TEMP, limit) == ordered.time_beyond_s("s", TEMP, limit)
    assert merged.mkt_c("s") == ordered.mkt_c("s")
    assert _open(merged) == _open(ordered)
    assert _without_excursion_ids(merged.snapshot()) == _without_excursion_ids(ordered.snapshot())
