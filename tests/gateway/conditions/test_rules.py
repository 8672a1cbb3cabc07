"""The rules with explicit times: instant, consecutive, cumulative, delay, hysteresis, gaps."""

from __future__ import annotations

import math

import pytest

from gateway.conditions import (
    PRESETS,
    CloseReason,
    ConditionMonitor,
    Direction,
    ExcursionPhase,
    FaultPhase,
    Limit,
    Quantity,
    RuleKind,
    SensorFaultResult,
)
from tests.gateway.conditions.helpers import (
    INSTANT,
    TEMP,
    at,
    consecutive,
    cumulative,
    every,
    excursions,
    feed,
    high_limit,
    monitor_for,
    profile,
    secs,
)

OPEN, UPDATE, CLOSE = ExcursionPhase.OPEN, ExcursionPhase.UPDATE, ExcursionPhase.CLOSE


def test_instant_rule_interpolates_start_and_end_and_measures_the_time_beyond() -> None:
    m = monitor_for(profile(high_limit(INSTANT)))
    results = feed(m, [(0, 5.0), (60, 5.0), (120, 9.0), (180, 5.0), (240, 5.0)])
    opened = excursions(results, OPEN)
    closed = excursions(results, CLOSE)
    assert len(opened) == 1
    assert len(closed) == 1
    # 5 -> 9 between 60 s and 120 s crosses 8 three quarters of the way: 105 s; back at 135 s.
    assert secs(opened[0].at) == 120
    assert secs(opened[0].start) == pytest.approx(105)
    assert secs(closed[0].end) == pytest.approx(135)
    assert secs(closed[0].at) == 180
    assert closed[0].time_beyond_s == pytest.approx(30)
    # Linear between readings: the mean over the 30 s beyond is 8.5, the only reading 9.
    assert closed[0].mean == pytest.approx(8.5)
    assert closed[0].min == closed[0].max == 9.0
    assert closed[0].close_reason is CloseReason.RETURNED
    assert closed[0].excursion_id == opened[0].excursion_id
    assert closed[0].result_id != opened[0].result_id
    assert (closed[0].rule, closed[0].limit, closed[0].threshold) == (RuleKind.INSTANT, "high", 8)


def test_thresholds_are_inclusive_on_the_in_range_side_unless_the_limit_says_otherwise() -> None:
    at_limit = [(t, 8.0) for t in range(0, 3600, 60)]
    assert feed(monitor_for(profile(high_limit(INSTANT))), at_limit) == []
    inclusive = monitor_for(profile(high_limit(INSTANT, beyond_at_threshold=True)))
    (opened,) = excursions(feed(inclusive, at_limit), OPEN)
    # The result says which side the threshold is on, for the event's ``limit``.
    assert opened.beyond_at_threshold is True
    above = excursions(feed(monitor_for(profile(high_limit(INSTANT))), [(0, 8.01)]), OPEN)
    assert [r.beyond_at_threshold for r in above] == [False]
    limit = Limit(direction=Direction.ABOVE, threshold=8.0, rules=(INSTANT,))
    assert not limit.is_beyond(8.0)
    assert limit.is_beyond(8.01)
    assert limit.name == "above"


def test_who_freeze_alarm_counts_the_threshold_and_needs_an_hour() -> None:
    m = ConditionMonitor(assignments={"fridge": "who-pqs-refrigerator"})
    # -0.49 for two hours: never at or below -0.5.
    assert feed(m, every(60, 0, 7200, -0.49), subject="fridge") == []
    m = ConditionMonitor(assignments={"fridge": "who-pqs-refrigerator"})
    results = feed(m, [(0, 4.0), *every(60, 60, 7200, -0.5)], subject="fridge")
    opened = excursions(results, OPEN)
    assert [(r.limit, r.rule) for r in opened] == [("freeze", RuleKind.CONSECUTIVE)]
    assert opened[0].beyond_at_threshold is True
    # Beyond from the first reading at -0.5 (the crossing is that reading itself): 60 s.
    assert secs(opened[0].start) == pytest.approx(60)
    assert secs(opened[0].at) == 3660


def test_consecutive_rule_opens_after_t_and_reports_the_run_start() -> None:
    m = monitor_for(profile(high_limit(consecutive(1800))))
    results = feed(m, [*every(60, 0, 600, 5.0), *every(60, 600, 3000, 9.0), (3000, 5.0)])
    opened = excursions(results, OPEN)
    assert len(opened) == 1
    assert secs(opened[0].start) == pytest.approx(585)  # 5 at 540 s, 9 at 600 s
    assert secs(opened[0].at) == 2400  # the first reading with 1800 s beyond
    assert opened[0].time_beyond_s == pytest.approx(2400 - 585)
    closed = excursions(results, CLOSE)
    assert secs(closed[0].end) == pytest.approx(2940 + 60 * 0.25)


def test_a_short_spike_under_a_consecutive_rule_raises_nothing() -> None:
    m = monitor_for(profile(high_limit(consecutive(1800))))
    spike = [*every(60, 0, 1200, 5.0), (1200, 12.0), *every(60, 1260, 7200, 5.0)]
    # Twenty minutes beyond, then back: still short of 30 minutes in a row.
    ramp = [*every(60, 7200, 8400, 9.0), *every(60, 8400, 9000, 5.0)]
    assert feed(m, spike + ramp) == []
    # The spike: 5 -> 12 -> 5 a minute apart is above 8 for 2 x 60 x 4/7 s; the ramp for
    # 15 + 1140 + 15 s.
    assert m.time_beyond_s("pal", TEMP, "high") == pytest.approx(120 * 4 / 7 + 1170)


def test_cumulative_rule_opens_when_the_total_reaches_t_and_again_on_the_next_episode() -> None:
    m = monitor_for(profile(high_limit(cumulative(1800))))
    points: list[tuple[float, float]] = []
    t = 0.0
    # Episodes beyond of 10, 10, 15 and 5 minutes, with an hour in range between them.
    for minutes in (10, 10, 15, 5):
        points += every(60, t, t + 3600, 5.0)
        t += 3600
        points += every(60, t, t + minutes * 60, 9.0)
        t += minutes * 60
    points.append((t, 5.0))
    results = feed(m, points)
    opened = excursions(results, OPEN)
    assert len(opened) == 2
    third_start = 3 * 3600 + 20 * 60 - 15  # interpolated crossing of the third episode
    assert secs(opened[0].start) == pytest.approx(third_start)
    # Each episode of m minutes is beyond for m x 60 - 30 s (interpolated edges): 2 x 570 s
    # before the third, which needs 660 s more: the first reading at or after its start + 660.
    assert secs(opened[0].at) == 12660
    assert opened[0].time_beyond_s == pytest.approx(12660 - third_start)
    fourth_start = 4 * 3600 + 35 * 60 - 15
    assert secs(opened[1].start) == pytest.approx(fourth_start)
    assert secs(opened[1].at) == pytest.approx(fourth_start + 15)  # budget already spent
    assert len(excursions(results, CLOSE)) == 2


def test_open_delay_debounces_an_instant_rule() -> None:
    m = monitor_for(profile(high_limit(INSTANT, open_delay_s=300)))
    short = [*every(60, 0, 600, 5.0), *every(60, 600, 780, 9.0), *every(60, 780, 1800, 5.0)]
    assert feed(m, short) == []
    results = feed(m, [*every(60, 1800, 2400, 9.0), (2400, 5.0)])
    opened = excursions(results, OPEN)
    assert [secs(r.at) for r in opened] == [2100]  # met at 1800 s, 300 s later
    assert secs(opened[0].start) == pytest.approx(1785)  # 5 at 1740 s, 9 at 1800 s


def _noise_at_the_limit(start: float, end: float) -> list[tuple[float, float]]:
    return [(t, 8.2 if (t // 60) % 2 else 7.9) for t in range(int(start), int(end), 60)]


def test_hysteresis_and_close_delay_keep_noise_at_the_limit_from_flapping() -> None:
    points = [*every(60, 0, 600, 5.0), *_noise_at_the_limit(600, 4200), *every(60, 4200, 6000, 6.0)]
    bare = feed(monitor_for(profile(high_limit(INSTANT))), points)
    assert len(excursions(bare, OPEN)) >= 25  # one per minute above 8
    calm = monitor_for(profile(high_limit(INSTANT, hysteresis=0.5, close_delay_s=600)))
    results = feed(calm, points)
    assert len(excursions(results, OPEN)) == 1
    closed = excursions(results, CLOSE)
    assert len(closed) == 1
    # The end is the last return below 8 (between 4140 s at 8.2 and 4200 s at 6.0); the close
    # is confirmed 600 s after the first reading past the hysteresis band (7.5 or lower).
    assert secs(closed[0].end) == pytest.approx(4140 + 60 * 0.2 / 2.2)
    assert secs(closed[0].at) == 4800
    # Time beyond counts only the minutes actually above 8, not the dips.
    assert closed[0].time_beyond_s < (4200 - 600) * 0.75


def test_updates_are_rate_limited_while_an_excursion_lasts() -> None:
    p = profile(high_limit(INSTANT), update_interval_s=300)
    results = feed(monitor_for(p), [(0, 5.0), *every(30, 30, 1830, 9.0), (1830, 5.0)])
    updates = excursions(results, UPDATE)
    assert [secs(r.at) for r in updates] == [330, 630, 930, 1230, 1530]
    assert [r.time_beyond_s for r in updates] == sorted(r.time_beyond_s for r in updates)
    assert len({r.result_id for r in updates}) == len(updates)


def test_a_gap_counts_nowhere_and_keeps_a_run_beyond_open() -> None:
    p = profile(high_limit(INSTANT), max_gap_s=600)
    m = monitor_for(p)
    results = feed(m, [(0, 5.0), (60, 9.0), (120, 9.0), (5000, 9.0), (5060, 9.0), (5120, 5.0)])
    assert len(excursions(results, OPEN)) == 1
    closed = excursions(results, CLOSE)
    assert len(closed) == 1
    # 15 + 60 before the gap, 60 + 15 after it; the 4880 s gap counts as neither.
    assert closed[0].time_beyond_s == pytest.approx(150)
    assert secs(closed[0].start) == pytest.approx(45)
    # After a gap nothing is interpolated: a run that starts there starts at the reading.
    m2 = monitor_for(p)
    r2 = feed(m2, [(0, 5.0), (5000, 9.0), (5060, 5.0)])
    assert secs(excursions(r2, OPEN)[0].start) == 5000


def test_humidity_limits_and_the_subjects_mkt_on_humidity_results() -> None:
    p = profile(
        name="dry",
        humidity_pct=(Limit(direction=Direction.ABOVE, threshold=75.0, rules=(INSTANT,)),),
    )
    m = monitor_for(p)
    feed(m, [(0, 20.0), (600, 20.0)])
    results = feed(m, [(0, 60.0), (60, 80.0), (120, 60.0)], quantity=Quantity.HUMIDITY_PCT)
    opened = excursions(results, OPEN)
    assert len(opened) == 1
    assert opened[0].quantity is Quantity.HUMIDITY_PCT
    assert opened[0].mkt_c == pytest.approx(20.0)


@pytest.mark.parametrize("bad", [300.0, -120.0, math.nan, math.inf])
def test_impossible_values_are_sensor_faults_not_readings(bad: float) -> None:
    m = monitor_for(profile(high_limit(INSTANT)))
    results = feed(m, [(0, 5.0), (60, bad), (120, bad), (180, 5.0)])
    faults = [r for r in results if isinstance(r, SensorFaultResult)]
    assert [f.phase for f in faults] == [FaultPhase.FAULT, FaultPhase.RECOVERED]
    assert faults[0].fault_id == faults[1].fault_id
    assert secs(faults[0].at) == 60
    assert excursions(results) == []
    assert m.counters["fault"] == 2
    # The faulty values are not in the MKT: 180 s at 5 °C.
    assert m.mkt_c("pal") == pytest.approx(5.0)


def test_reassigning_a_subject_closes_its_excursions_and_starts_a_new_period() -> None:
    m = monitor_for(profile(high_limit(INSTANT)))
    feed(m, [(0, 5.0), (60, 9.0)])
    assert m.assign("pal", "test") == []  # the same profile again: nothing changes
    closed = m.assign("pal", "frozen")
    assert [(r.phase, r.close_reason) for r in excursions(closed)] == [
        (CLOSE, CloseReason.REASSIGNED)
    ]
    assert m.open_excursions() == []
    assert m.time_beyond_s("pal", TEMP, "high") == 0.0  # a new period
    feed(m, [(120, -10.0)])
    with pytest.raises(KeyError):
        m.time_beyond_s("pal", TEMP, "nonexistent")


def test_unassigned_subjects_are_counted_and_ignored() -> None:
    m = ConditionMonitor()
    assert m.observe("nobody", TEMP, 30.0, at(0)) == []
    assert m.counters["unassigned"] == 1
    m2 = ConditionMonitor(default_profile="pharma-2-8")
    assert excursions(m2.observe("anybody", TEMP, 30.0, at(0)), OPEN)
    assert m2.profile_of("anybody") == PRESETS["pharma-2-8"]


def test_naive_times_are_refused() -> None:
    m = monitor_for(profile(high_limit(INSTANT)))
    with pytest.raises(ValueError, match="timezone"):
        m.observe("pal", TEMP, 5.0, at(0).replace(tzinfo=None))


def test_the_period_summary() -> None:
    m = monitor_for(profile(high_limit(INSTANT), max_gap_s=600))
    feed(m, [(0, 5.0), (60, 9.0), (120, 5.0), (2000, 6.0), (2060, 6.0)])
    (s,) = m.summary("pal")
    assert s.quantity is TEMP
    assert (s.readings, s.min, s.max) == (5, 5.0, 9.0)
    assert (s.covered_s, s.gap_s) == (180, 1880)
    # Linear between readings: 60 s averaging 7, 60 s averaging 7, 60 s at 6.
    assert s.mean == pytest.approx((7 * 60 + 7 * 60 + 6 * 60) / 180)
    assert s.time_beyond_s == {"high": pytest.approx(30)}
    assert s.mkt_c == m.mkt_c("pal")
    assert (secs(s.period_start), secs(s.last_reading)) == (0, 2060)
    assert m.summary("nobody") == []
