"""Shocks: recording threshold, alarm limit with a minimum pulse, re-alarm interval."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from gateway.conditions import (
    ConditionMonitor,
    Profile,
    SensorFaultResult,
    ShockLimit,
    ShockResult,
)
from tests.gateway.conditions.helpers import at


def _shocks(results: Sequence[object]) -> list[ShockResult]:
    return [r for r in results if isinstance(r, ShockResult)]


def test_record_and_alarm_thresholds_and_the_minimum_pulse() -> None:
    m = ConditionMonitor(assignments={"box": "parcel"})  # alarm 25 g / 3 ms, record 10 g
    assert m.observe_shock("box", at(0), (0.0, 8.0, 0.0), 2.0) == []
    (sorter,) = _shocks(m.observe_shock("box", at(10), (6.0, 8.0, 0.0), 2.0))
    assert (sorter.alarm, sorter.peak_g, sorter.threshold_g) == (False, 10.0, 10.0)
    (short,) = _shocks(m.observe_shock("box", at(20), (0.0, 0.0, 40.0), 1.0))
    assert not short.alarm  # too short a pulse to alarm, still recorded
    (drop,) = _shocks(m.observe_shock("box", at(30), (4.5, -3.0, 60.0), 8.0))
    assert drop.alarm
    assert drop.peak_g == pytest.approx(math.sqrt(4.5**2 + 3.0**2 + 60.0**2))
    assert (drop.peak_x_g, drop.peak_y_g, drop.peak_z_g) == (4.5, -3.0, 60.0)
    assert drop.threshold_g == 25.0
    assert drop.duration_ms == 8.0
    assert drop.result_id != sorter.result_id


def test_after_an_alarm_at_most_one_per_interval_with_the_running_peak() -> None:
    m = ConditionMonitor(assignments={"box": "parcel"})  # re-alarm after 300 s
    first = _shocks(m.observe_shock("box", at(0), (0.0, 0.0, 30.0), 5.0))[0]
    assert first.alarm
    assert first.suppressed == 0
    second = _shocks(m.observe_shock("box", at(60), (0.0, 0.0, 70.0), 5.0))[0]
    third = _shocks(m.observe_shock("box", at(120), (0.0, 0.0, 40.0), 5.0))[0]
    assert not second.alarm
    assert not third.alarm
    assert (third.running_peak_g, third.suppressed) == (70.0, 2)
    later = _shocks(m.observe_shock("box", at(400), (0.0, 0.0, 30.0), 5.0))[0]
    assert later.alarm
    assert (later.running_peak_g, later.suppressed) == (70.0, 2)
    again = _shocks(m.observe_shock("box", at(460), (0.0, 0.0, 26.0), 5.0))[0]
    assert not again.alarm
    assert (again.running_peak_g, again.suppressed) == (26.0, 1)


def test_unknown_duration_alarms_only_without_a_minimum() -> None:
    m = ConditionMonitor(assignments={"box": "parcel"})
    assert not _shocks(m.observe_shock("box", at(0), (0.0, 0.0, 50.0), None))[0].alarm
    any_pulse = Profile(name="fragile", shock=ShockLimit(alarm_g=5.0), warning=None)
    m2 = ConditionMonitor([any_pulse], {"tv": "fragile"})
    (r,) = _shocks(m2.observe_shock("tv", at(0), (0.0, 3.0, 4.0), None))
    assert r.alarm
    assert r.peak_g == 5.0


def test_impossible_shocks_are_faults_and_subjects_without_a_limit_are_ignored() -> None:
    m = ConditionMonitor(assignments={"box": "parcel", "pal": "pharma-2-8"})
    (fault,) = m.observe_shock("box", at(0), (5000.0, 0.0, 0.0), 1.0)
    assert isinstance(fault, SensorFaultResult)
    assert fault.quantity == "shock_g"
    assert m.observe_shock("pal", at(0), (0.0, 0.0, 90.0), 10.0) == []
    assert m.counters["unassigned"] == 1
