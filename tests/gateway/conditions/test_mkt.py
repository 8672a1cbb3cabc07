"""Mean kinetic temperature: the published example, a hand computation, irregular series."""

from __future__ import annotations

import itertools
import math

import pytest

from gateway.conditions import (
    DELTA_H_OVER_R_K,
    mean_kinetic_temperature_c,
    mkt_from_sums_c,
)
from tests.gateway.conditions.helpers import (
    INSTANT,
    excursions,
    feed,
    high_limit,
    monitor_for,
    profile,
)


def test_delta_h_over_r_is_the_usp_value() -> None:
    # USP <1079.2>: ΔH = 83.144 kJ/mol, R = 8.3144 J/(mol K).
    assert pytest.approx(83_144 / 8.3144) == DELTA_H_OVER_R_K


def test_the_worked_example_20_c_2_h_2_c_4_h_25_c_1_h_gives_15_7_c() -> None:
    # The published worked example (Isopharm, "What is Mean Kinetic Temperature?",
    # https://systems.isopharm.co.uk/mean-kinetic-temperature/: 20 °C for 2 h, 2 °C for 4 h,
    # 25 °C for 1 h are "thermally equivalent" to 15.7 °C for 7 h). Also checked against the
    # USP <1079.2> formula worked by hand:
    # exp(-10000/293.15) = 1.5320e-15, exp(-10000/275.15) = 1.6447e-16,
    # exp(-10000/298.15) = 2.7145e-15; weighted by hours (2, 4, 1) their mean is 9.1947e-16,
    # and 10000 / -ln(9.1947e-16) - 273.15 = 15.678 °C (the arithmetic mean is 10.43 °C).
    hour = 3600.0
    mkt = mean_kinetic_temperature_c([(2 * hour, 20.0), (4 * hour, 2.0), (1 * hour, 25.0)])
    assert mkt is not None
    assert round(mkt, 1) == 15.7
    assert mkt == pytest.approx(15.678, abs=0.001)


def test_a_hand_computed_two_level_series() -> None:
    # exp(-10000/273.15) = 1.2604e-16 and exp(-10000/293.15) = 1.5320e-15; their mean is
    # 8.290e-16, and 10000 / -ln(8.290e-16) - 273.15 = 14.816 °C (the arithmetic mean is 10).
    mkt = mean_kinetic_temperature_c([(3600.0, 0.0), (3600.0, 20.0)])
    assert mkt == pytest.approx(14.816, abs=0.001)
    assert mean_kinetic_temperature_c([(10.0, 5.0), (30.0, 5.0)]) == pytest.approx(5.0)
    assert mean_kinetic_temperature_c([]) is None
    assert mkt_from_sums_c(0.0, 0.0) is None
    with pytest.raises(ValueError, match="negative"):
        mean_kinetic_temperature_c([(-1.0, 5.0)])


def _direct_trapezoid_mkt(points: list[tuple[float, float]], max_gap_s: float) -> float:
    """The formula evaluated directly: ∫exp(-ΔH/RT)dt by trapezoids, gaps left out."""
    weighted = 0.0
    covered = 0.0
    for (t0, c0), (t1, c1) in itertools.pairwise(points):
        dt = t1 - t0
        if dt > max_gap_s:
            continue
        w0 = math.exp(-10_000.0 / (c0 + 273.15))
        w1 = math.exp(-10_000.0 / (c1 + 273.15))
        weighted += (w0 + w1) / 2 * dt
        covered += dt
    return 10_000.0 / -math.log(weighted / covered) - 273.15


def test_the_monitor_weights_irregular_readings_by_time_and_leaves_gaps_out() -> None:
    points = [
        (0.0, 4.0), (17.0, 4.5), (90.0, 9.5), (95.0, 12.0), (400.0, 7.0),
        (401.0, 3.0), (700.0, 2.5), (4000.0, 25.0), (4030.0, 6.0), (4500.0, 5.0),
    ]  # fmt: skip
    m = monitor_for(profile(high_limit(INSTANT), max_gap_s=900))
    feed(m, points)
    expected = _direct_trapezoid_mkt(points, 900)
    assert m.mkt_c("pal") == pytest.approx(expected, abs=1e-9)
    # The 3300 s gap is left out: counting it at either neighbour would move the result.
    assert expected != pytest.approx(_direct_trapezoid_mkt(points, 1e9), abs=0.05)
    # Unevenly spaced readings: the plain per-reading mean (the evenly spaced formula) differs.
    per_reading = (
        10_000.0
        / -math.log(sum(math.exp(-10_000.0 / (c + 273.15)) for _, c in points) / len(points))
        - 273.15
    )
    assert m.mkt_c("pal") != pytest.approx(per_reading, abs=0.1)


def test_mkt_on_excursion_results_is_the_period_so_far() -> None:
    m = monitor_for(profile(high_limit(INSTANT)))
    opened, closed = excursions(feed(m, [(0.0, 5.0), (60.0, 5.0), (120.0, 11.0), (180.0, 5.0)]))
    assert opened.mkt_c == pytest.approx(_direct_trapezoid_mkt([(0, 5), (60, 5), (120, 11)], 900))
    assert closed.mkt_c == pytest.approx(
        _direct_trapezoid_mkt([(0, 5), (60, 5), (120, 11), (180, 5)], 900)
    )
    assert m.mkt_c("nobody") is None
