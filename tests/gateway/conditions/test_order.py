"""Readings out of order: history batches merged with live readings, duplicates, too late."""

from __future__ import annotations

import random

import pytest

from gateway.conditions import (
    CHECKPOINT_EVERY_READINGS,
    START_CORRECTION_TOLERANCE_S,
    CloseReason,
    ConditionMonitor,
    ConditionResult,
    ExcursionPhase,
    ExcursionResult,
)
from tests.gateway.conditions.helpers import (
    INSTANT,
    TEMP,
    at,
    consecutive,
    excursions,
    feed,
    high_limit,
    monitor_for,
    profile,
    secs,
)

OPEN, CLOSE = ExcursionPhase.OPEN, ExcursionPhase.CLOSE


def _curve(t: float) -> float:
    """5 °C, 10 °C between 1800 s and 3600 s, 5 °C again."""
    return 10.0 if 1800 <= t < 3600 else 5.0


READINGS = [(float(t), _curve(t)) for t in range(0, 7200, 60)]


def _closed(results: list[ConditionResult]) -> list[tuple[str, float, float, float]]:
    return [
        (r.excursion_id, secs(r.start), secs(r.end), round(r.time_beyond_s, 6))
        for r in excursions(results, CLOSE)
        if r.close_reason is CloseReason.RETURNED
    ]


def test_a_history_batch_after_live_readings_gives_the_in_order_result() -> None:
    p = profile(high_limit(INSTANT, hysteresis=0.3))
    in_order = monitor_for(p)
    expected = feed(in_order, READINGS)
    # The label is out of range from 1500 s to 4000 s: live readings before and after, the
    # logged ones arrive afterwards as one batch (oldest first, as a label sends them).
    live = [r for r in READINGS if not 1500 < r[0] < 4000]
    history = [r for r in READINGS if 1500 < r[0] < 4000]
    merged = monitor_for(p)
    got = feed(merged, [r for r in live if r[0] <= 4100])
    got += merged.observe_many("pal", TEMP, [(at(t), v) for t, v in history])
    got += feed(merged, [r for r in live if r[0] > 4100])
    assert _closed(got) == _closed(expected)
    assert [r.result_id for r in excursions(got, OPEN)] == [
        r.result_id for r in excursions(expected, OPEN)
    ]
    assert merged.mkt_c("pal") == pytest.approx(in_order.mkt_c("pal"))
    assert merged.time_beyond_s("pal", TEMP, "high") == pytest.approx(
        in_order.time_beyond_s("pal", TEMP, "high")
    )
    assert merged.counters["late_merged"] == len(history)


def test_shuffled_and_repeated_readings_never_double_count() -> None:
    p = profile(high_limit(INSTANT))
    in_order = monitor_for(p)
    feed(in_order, READINGS)
    rnd = random.Random(7)
    shuffled = READINGS[:]
    # Local disorder (resends interleaving with new frames) plus duplicates of some readings.
    for i in range(0, len(shuffled) - 4, 3):
        window = shuffled[i : i + 4]
        rnd.shuffle(window)
        shuffled[i : i + 4] = window
    shuffled += rnd.sample(READINGS[-40:], 10)
    m = monitor_for(p)
    results = feed(m, shuffled)
    assert m.time_beyond_s("pal", TEMP, "high") == pytest.approx(
        in_order.time_beyond_s("pal", TEMP, "high")
    )
    assert m.mkt_c("pal") == pytest.approx(in_order.mkt_c("pal"))
    assert m.counters["duplicate"] == 10
    returned = [r for r in excursions(results, CLOSE) if r.close_reason is CloseReason.RETURNED]
    assert len(returned) == 1
    assert len({r.result_id for r in results}) == len(results)


def test_an_excursion_seen_first_from_live_readings_is_superseded_by_its_true_start() -> None:
    p = profile(high_limit(INSTANT))
    m = monitor_for(p)
    # Live: in range until 1500 s, then the label is out of range; it is back at 2460 s, warm.
    first = feed(m, [*[(t, 5.0) for t in range(0, 1560, 60)], (2460.0, 10.0)])
    (early,) = excursions(first, OPEN)
    assert secs(early.start) == 2460  # after a gap (960 s > 900 s) nothing is interpolated
    # The history batch shows it went above 8 °C at 1800 s.
    batch = [(at(t), _curve(t)) for t in range(1560, 2460, 60)]
    merged = m.observe_many("pal", TEMP, batch)
    superseded = [r for r in excursions(merged, CLOSE) if r.close_reason is CloseReason.SUPERSEDED]
    assert [r.excursion_id for r in superseded] == [early.excursion_id]
    (corrected,) = excursions(merged, OPEN)
    assert secs(corrected.start) == pytest.approx(1776)  # 5 at 1740 s, 10 at 1800 s: 3/5
    assert corrected.excursion_id != early.excursion_id
    assert [e[3] for e in m.open_excursions()] == [corrected.excursion_id]


def test_a_late_reading_that_moves_the_start_a_little_corrects_it_in_place() -> None:
    """The same label heard by advert (at 100.384 s) and by the serial reader (its reading time
    100.000 s, relayed later): the crossing moves by a fraction of a second. One excursion,
    opened once, closed once as returned, with the in-order start and figures; nothing is
    superseded."""
    p = profile(high_limit(INSTANT))
    live = [*[(float(t), 5.0) for t in range(0, 100, 30)], (100.384, 9.0)]
    later = [(float(t), 9.0) for t in range(130, 400, 30)] + [(400.0, 5.0), (430.0, 5.0)]
    m = monitor_for(p)
    results = feed(m, live)
    (opened,) = excursions(results, OPEN)
    results += feed(m, [(100.0, 9.0)])  # the serial copy, late
    assert m.counters["late_merged"] == 1
    assert m.open_excursions()[0][3] == opened.excursion_id
    results += feed(m, later)
    assert [r.phase for r in excursions(results)] == [OPEN, CLOSE]
    (closed,) = excursions(results, CLOSE)
    assert closed.close_reason is CloseReason.RETURNED
    assert closed.excursion_id == opened.excursion_id
    in_order = monitor_for(p)
    (expected,) = excursions(feed(in_order, sorted([*live, (100.0, 9.0), *later])), CLOSE)
    assert closed.start == expected.start != opened.start
    assert abs(secs(opened.start) - secs(closed.start)) < 0.5
    assert closed.end == expected.end
    assert closed.time_beyond_s == pytest.approx(expected.time_beyond_s)
    assert closed.mean == pytest.approx(expected.mean)


@pytest.mark.parametrize(
    "move_s", [START_CORRECTION_TOLERANCE_S - 1, START_CORRECTION_TOLERANCE_S + 1]
)
def test_the_start_correction_tolerance_separates_correcting_from_superseding(
    move_s: float,
) -> None:
    """Live readings 60 s apart: 5 °C, then 10 °C at 1800 s. A late reading of 10 °C
    between them moves the interpolated crossing earlier by ``move_s``: within the tolerance
    the excursion keeps its id, beyond it the old one is closed as superseded."""
    p = profile(high_limit(INSTANT))
    m = monitor_for(p)
    first = feed(m, [*[(float(t), 5.0) for t in range(0, 1800, 60)], (1800.0, 10.0)])
    (early,) = excursions(first, OPEN)
    assert secs(early.start) == pytest.approx(1776)  # 3/5 of the way from 1740 s to 1800 s
    # With 5 °C at 1740 s and 10 °C at t, the crossing is 1740 + 0.6 (t - 1740).
    t = 1740 + (1776 - move_s - 1740) / 0.6
    merged = feed(m, [(t, 10.0)])
    superseded = [r for r in excursions(merged, CLOSE) if r.close_reason is CloseReason.SUPERSEDED]
    opened = excursions(merged, OPEN)
    if move_s <= START_CORRECTION_TOLERANCE_S:
        assert (superseded, opened) == ([], [])
        assert m.open_excursions()[0][3] == early.excursion_id
    else:
        assert [r.excursion_id for r in superseded] == [early.excursion_id]
        assert [secs(r.start) for r in opened] == [pytest.approx(1776 - move_s)]
        assert m.open_excursions()[0][3] == opened[0].excursion_id


def test_readings_older_than_the_oldest_checkpoint_are_dropped_as_too_late() -> None:
    m = monitor_for(profile(high_limit(consecutive(600))))
    n = 3 * CHECKPOINT_EVERY_READINGS
    feed(m, [(float(t * 60), 5.0) for t in range(n)])
    before = m.time_beyond_s("pal", TEMP, "high")
    assert m.observe("pal", TEMP, 30.0, at(90)) == []
    assert m.counters["too_late"] == 1
    assert m.time_beyond_s("pal", TEMP, "high") == before
    # One within the journal is merged.
    m.observe("pal", TEMP, 9.0, at((n - 3) * 60 + 30))
    assert m.counters["late_merged"] == 1
    assert m.time_beyond_s("pal", TEMP, "high") > before


def test_merging_returns_no_result_twice() -> None:
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    live = [(float(t), 5.0 + t / 600) for t in range(0, 3600, 60)]
    results = feed(m, live)
    # A resent batch of readings the gateway already had: all duplicates, nothing new.
    again = m.observe_many("pal", TEMP, [(at(t), v) for t, v in live[-20:]])
    assert again == []
    ids = [r.result_id for r in results]
    assert len(ids) == len(set(ids))
    assert all(isinstance(r, ExcursionResult) or r.result_id for r in results)


def test_a_warning_is_raised_once_per_approach_even_when_late_readings_move_it() -> None:
    """Live readings warn of a warming after a gap; the history batch that fills the gap
    would have warned earlier. The approach keeps the one warning already raised."""
    from gateway.conditions import WarningPhase, WarningResult

    def curve(t: float) -> float:  # 4 °C, then +0.2 °C/min from 1200 s
        return 4.0 if t < 1200 else round(4.0 + (t - 1200) / 300, 2)

    times = [float(t) for t in range(0, 2700, 30)]
    live = [(t, curve(t)) for t in times if not 1200 <= t < 1800]
    history = [(t, curve(t)) for t in times if 1200 <= t < 1800]
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    results: list[ConditionResult] = []
    for t, v in live:
        results += m.observe("pal", TEMP, v, at(t))
    first = [r for r in results if isinstance(r, WarningResult)]
    assert [(w.phase, w.limit) for w in first] == [(WarningPhase.RAISED, "high")]
    results += m.observe_many("pal", TEMP, [(at(t), v) for t, v in history])
    warned = [r for r in results if isinstance(r, WarningResult)]
    assert warned == first
    # In time order the warning comes earlier: the merge did not hide a different approach.
    in_order = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    ordered = [
        r
        for t in times
        for r in in_order.observe("pal", TEMP, curve(t), at(t))
        if isinstance(r, WarningResult)
    ]
    assert len(ordered) == 1
    assert secs(ordered[0].at) < secs(first[0].at)


@pytest.mark.parametrize("step_s", [-120.0, -45.0, 45.0, 1200.0])
def test_a_clock_correction_never_counts_time_twice(step_s: float) -> None:
    """A label's clock is corrected by a time sync half way (it was off by ``-step_s``): its
    readings after the correction step back (merged with the ones already counted) or forward
    (a longer interval, or a gap). Either way the covered time is the span of the reading
    times, counted once, and the time beyond the limit is no more than that span holds."""
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    times = [30.0 * k for k in range(60)]
    values = [5.0 if k < 20 or k >= 40 else 9.0 for k in range(60)]  # above 8 °C, k 20..39
    stamped = [t if k < 30 else t + step_s for k, t in enumerate(times)]
    for t, v in zip(stamped, values, strict=True):
        m.observe("pal", TEMP, v, at(t))
    (summary,) = m.summary("pal")
    distinct = sorted(set(stamped))
    span = distinct[-1] - distinct[0]
    assert summary.covered_s + summary.gap_s == pytest.approx(span)
    assert summary.readings + m.counters["duplicate"] == len(stamped)
    beyond = summary.time_beyond_s["high"]
    # 20 readings at 9 °C, 30 s apart, plus the crossings: 600 s of truth; the step can
    # only shorten or stretch the stretch it falls in, never repeat one.
    assert beyond <= 600.0 + max(step_s, 0.0) + 30.0
    if step_s > 900:  # longer than max_gap_s: a gap, counted nowhere
        assert summary.gap_s >= step_s
