"""Early warning: a least-squares trend that will cross a limit within the horizon."""

from __future__ import annotations

import random

import pytest

from gateway.conditions import ConditionMonitor, WarningPhase
from tests.gateway.conditions.helpers import TEMP, at, excursions, feed, secs, warnings

STEP_S = 30.0


def _ramp(start_s: float, v0: float, per_min: float, minutes: float) -> list[tuple[float, float]]:
    n = int(minutes * 60 / STEP_S)
    return [(start_s + k * STEP_S, round(v0 + per_min * k * STEP_S / 60, 2)) for k in range(n)]


def test_a_warming_ramp_warns_once_well_before_the_crossing() -> None:
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    flat = [(k * STEP_S, 4.0) for k in range(60)]  # half an hour at 4 °C
    ramp = _ramp(1800, 4.0, 0.25, 30)  # +0.25 °C/min: 8 °C at 1800 + 960 s
    results = feed(m, flat + ramp)
    raised = [w for w in warnings(results) if w.phase is WarningPhase.RAISED]
    assert len(raised) == 1
    w = raised[0]
    crossing_s = 1800 + 960
    assert w.limit == "high"
    assert crossing_s - secs(w.at) >= 300  # at least 5 minutes ahead
    # The first fit still holds some of the flat half hour: it underestimates the slope, so
    # the prediction is late, never early, and within the 30-minute horizon.
    assert crossing_s <= secs(w.predicted_crossing) <= secs(w.at) + 1800
    assert 0 < w.slope_per_h <= 15.0
    assert w.r2 >= 0.8
    opened = excursions(results)
    assert opened
    assert secs(opened[0].at) > secs(w.at)
    # The approach ended in a crossing: nothing is withdrawn.
    assert not [w for w in warnings(results) if w.phase is WarningPhase.WITHDRAWN]


@pytest.mark.parametrize("center", [3.0, 5.0, 7.0, 7.5])
def test_an_hour_of_noise_inside_the_range_never_warns(center: float) -> None:
    for seed in range(10):
        rnd = random.Random(seed * 1000 + int(center * 10))
        m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
        points = [(k * STEP_S, round(center + rnd.uniform(-0.3, 0.3), 2)) for k in range(120)]
        assert warnings(feed(m, points)) == [], (center, seed)


def test_a_warning_is_withdrawn_when_the_trend_turns_and_a_new_approach_warns_again() -> None:
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    points = [(k * STEP_S, 4.0) for k in range(20)]
    points += _ramp(600, 4.0, 0.25, 10)  # up to 6.5 °C
    points += _ramp(1200, 6.5, -0.05, 20)  # then cooling slowly
    points += _ramp(2400, 5.5, 0.25, 8)  # warming again
    results = feed(m, points)
    phases = [(w.phase, w.limit) for w in warnings(results)]
    assert phases == [
        (WarningPhase.RAISED, "high"),
        (WarningPhase.WITHDRAWN, "high"),
        (WarningPhase.RAISED, "high"),
    ]
    first, withdrawn, second = warnings(results)
    assert withdrawn.warning_id == first.warning_id
    assert withdrawn.predicted_crossing is None
    assert second.warning_id != first.warning_id
    assert excursions(results) == []


def test_a_falling_trend_warns_on_the_low_limit() -> None:
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    results = feed(m, [(k * STEP_S, 6.0) for k in range(20)] + _ramp(600, 6.0, -0.2, 15))
    raised = warnings(results)
    assert [(w.limit, w.phase) for w in raised] == [("low", WarningPhase.RAISED)]
    crossing_s = 600 + 20 * 60
    assert crossing_s - secs(raised[0].at) >= 300
    assert crossing_s <= secs(raised[0].predicted_crossing) <= secs(raised[0].at) + 1800


def test_profiles_without_warning_settings_do_not_warn() -> None:
    m = ConditionMonitor(assignments={"box": "parcel"})
    assert m.observe("box", TEMP, 5.0, at(0)) == []


def test_a_dense_two_source_series_still_warns_and_a_recovery_never_warns_of_the_other_limit() -> (
    None
):
    """A label heard on its reader every 30 s and in its adverts every 10 s (a few seconds
    late): the fit keeps points at least 25 s apart, so its 12 points still span minutes and
    the warming is warned of; the fast cooling back from the excursion, while the high
    excursion is still open inside its hysteresis, is no approach to the low limit."""
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})

    def curve(t: float) -> float:  # 4 °C, +0.5 °C/min from 600 s to 11 °C, -0.5 °C/min after
        if t < 600:
            return 4.0
        if t < 1440:
            return 4.0 + (t - 600) / 120
        return 11.0 - (t - 1440) / 120

    points = {k * 30.0: curve(k * 30.0) for k in range(90)}
    points |= {k * 10.0 + 3.7: curve(k * 10.0) for k in range(270)}  # adverts, 3.7 s late
    results = feed(m, sorted((t, round(v, 2)) for t, v in points.items()))
    found = [(w.phase, w.limit) for w in warnings(results)]
    assert found == [(WarningPhase.RAISED, "high")]
    (w,) = warnings(results)
    assert secs(w.at) <= 1080 - 300  # 5 minutes before 8 °C at 1080 s
