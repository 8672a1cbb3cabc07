"""Device health on a fake clock: silence learned from the reporting interval (with its floor),
chemistry-aware low battery, stuck readings, and the recovery from each."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.conditions import (
    BATTERY_THRESHOLDS_MV,
    Chemistry,
    ConditionMonitor,
    DeviceHealth,
    DeviceSettings,
    FaultPhase,
    HealthIssue,
    HealthResult,
    Profile,
    Quantity,
    Rule,
    RuleKind,
)
from tests.gateway.conditions.helpers import at, high_limit

TAG = "smartlabel:0102030405060708"


def health(settings: DeviceSettings | None = None, watched: bool = True) -> DeviceHealth:
    chosen = settings or DeviceSettings()
    return DeviceHealth(lambda device: chosen if watched else None)


def report(h: DeviceHealth, every_s: float, n: int, start: float = 0.0) -> float:
    """``n`` sightings ``every_s`` apart; returns the last time."""
    t = start
    for k in range(n):
        t = start + k * every_s
        assert h.heard(TAG, t) == []
    return t


def silent_at(h: DeviceHealth, last: float, until: float, step: float = 1.0) -> float | None:
    """The first tick at which the device is reported silent (None: never up to ``until``)."""
    t = last
    while t <= until:
        found = h.tick(t)
        if found:
            (r,) = found
            assert r.issue is HealthIssue.SILENT
            assert r.phase is FaultPhase.FAULT
            assert r.last_seen == last
            return t
        t += step
    return None


# --- silence -----------------------------------------------------------------------------


def test_silence_is_learned_from_the_reporting_interval_above_the_floor() -> None:
    h = health(DeviceSettings(silent_floor_s=60, silent_factor=4))
    last = report(h, 30.0, 10)
    assert h.interval_s(TAG) == 30.0
    # 4 × 30 s = 120 s > the 60 s floor.
    assert silent_at(h, last, last + 1000) == last + 120


def test_the_floor_holds_for_a_fast_device() -> None:
    h = health(DeviceSettings(silent_floor_s=300, silent_factor=4))
    last = report(h, 1.0, 20)  # a BLE tag advertising every second
    assert silent_at(h, last, last + 1000) == last + 300


def test_a_slow_device_is_allowed_its_own_interval() -> None:
    h = health(DeviceSettings(silent_floor_s=300, silent_factor=3))
    last = report(h, 600.0, 6)  # a logger reporting every 10 min
    assert h.tick(last + 1799) == []
    assert silent_at(h, last, last + 5000, step=10) == last + 1800


def test_the_interval_is_a_median_one_missed_report_does_not_move_it() -> None:
    h = health(DeviceSettings(silent_floor_s=10, silent_factor=4))
    t = report(h, 30.0, 6)
    t += 60.0  # one report missed
    h.heard(TAG, t)
    t = report(h, 30.0, 4, start=t + 30)
    assert h.interval_s(TAG) == 30.0


def test_before_an_interval_is_learned_the_unlearned_allowance_applies() -> None:
    h = health(DeviceSettings(silent_floor_s=60, silent_unlearned_s=900))
    h.heard(TAG, 0.0)
    assert silent_at(h, 0.0, 2000, step=10) == 900


def test_silent_is_reported_once_and_its_recovery_once_and_the_silence_is_no_interval() -> None:
    h = health(DeviceSettings(silent_floor_s=60, silent_factor=4))
    last = report(h, 30.0, 10)
    (silent,) = h.tick(last + 200)
    assert silent.silent_for_s == 200
    assert h.tick(last + 300) == []
    assert h.tick(last + 5000) == []
    (back,) = h.heard(TAG, last + 5000)
    assert back.phase is FaultPhase.RECOVERED
    assert back.issue is HealthIssue.SILENT
    assert back.issue_id == silent.issue_id
    assert back.result_id != silent.result_id
    assert back.silent_for_s == 5000
    assert h.heard(TAG, last + 5000) == []  # the same sighting again
    assert h.interval_s(TAG) == 30.0  # the 5000 s silence did not become the interval
    # Silent again later: a new episode with its own id.
    (again,) = h.tick(last + 5000 + 120)
    assert again.issue_id != silent.issue_id


def test_an_unwatched_device_is_not_tracked_unless_watch_is_asked() -> None:
    h = health(watched=False)
    h.heard(TAG, 0.0)
    assert h.tick(10_000) == []
    h.heard(TAG, 0.0, watch=True)  # a SmartLabel: watched with the defaults
    h.heard(TAG, 30.0, watch=True)
    (silent,) = h.tick(30.0 + DeviceSettings().silent_floor_s)
    assert silent.device == TAG


def test_a_silent_sensor_never_implies_an_excursion_nor_time_beyond() -> None:
    """Beyond the limit before and after a silence: the silence is not time beyond."""
    profile = Profile(
        name="p",
        temperature_c=(high_limit(Rule(kind=RuleKind.CONSECUTIVE, duration_s=1800)),),
        warning=None,
    )
    monitor = ConditionMonitor([profile], {TAG: "p"})
    h = health(DeviceSettings(silent_floor_s=60))
    results = []
    for k in range(10):  # 9 °C for 270 s
        h.heard(TAG, 30.0 * k)
        results += monitor.observe(TAG, Quantity.TEMPERATURE_C, 9.0, at(30.0 * k))
    (silent,) = h.tick(270.0 + 240)
    assert silent.issue is HealthIssue.SILENT
    # Heard again an hour later, still at 9 °C.
    h.heard(TAG, 3870.0)
    results += monitor.observe(TAG, Quantity.TEMPERATURE_C, 9.0, at(3870.0))
    assert results == []
    assert monitor.time_beyond_s(TAG, Quantity.TEMPERATURE_C, "high") == 270.0


# --- battery -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chemistry", "cells", "ok_mv", "low_mv"),
    [
        (Chemistry.LI_MNO2_COIN, 1, 2950, 2500),
        (Chemistry.LI_SOCL2, 1, 3600, 3300),
        (Chemistry.ALKALINE, 2, 3000, 2200),
        (Chemistry.LI_ION, 1, 3900, 3500),
    ],
)
def test_low_battery_by_chemistry_after_readings_in_a_row_and_its_recovery(
    chemistry: Chemistry, cells: int, ok_mv: int, low_mv: int
) -> None:
    settings = DeviceSettings(battery_chemistry=chemistry, battery_cells=cells)
    threshold = settings.battery_threshold()
    assert threshold is not None
    assert threshold.low_mv == low_mv
    assert threshold.low_mv == BATTERY_THRESHOLDS_MV[chemistry].low_mv * cells
    h = health(settings)
    assert h.battery(TAG, 0.0, ok_mv) == []
    assert h.battery(TAG, 1.0, low_mv + 1) == []  # above the threshold
    assert h.battery(TAG, 2.0, low_mv) == []  # 1st at the threshold (inclusive)
    assert h.battery(TAG, 3.0, low_mv - 50) == []  # 2nd
    assert h.battery(TAG, 4.0, ok_mv) == []  # a rested cell: the run starts over
    assert h.battery(TAG, 5.0, low_mv) == []
    assert h.battery(TAG, 6.0, low_mv) == []
    (low,) = h.battery(TAG, 7.0, low_mv - 10)  # 3rd in a row
    assert low.issue is HealthIssue.LOW_BATTERY
    assert low.phase is FaultPhase.FAULT
    assert low.battery_mv == low_mv - 10
    assert chemistry.value in low.detail
    assert h.battery(TAG, 8.0, low_mv - 20) == []  # once per episode
    # Between the thresholds: still low.
    for t in range(9, 20):
        assert h.battery(TAG, float(t), (threshold.low_mv + threshold.ok_mv) // 2) == []
    assert h.battery(TAG, 20.0, threshold.ok_mv) == []
    assert h.battery(TAG, 21.0, threshold.ok_mv) == []
    (ok,) = h.battery(TAG, 22.0, threshold.ok_mv + 5)
    assert ok.phase is FaultPhase.RECOVERED
    assert ok.issue_id == low.issue_id


def test_battery_thresholds_are_configurable_and_without_any_nothing_is_checked() -> None:
    custom = DeviceSettings(battery_low_mv=2000, battery_ok_mv=2100, battery_readings=1)
    h = health(custom)
    assert h.battery(TAG, 0.0, 2001) == []
    (low,) = h.battery(TAG, 1.0, 2000)
    assert "custom" in low.detail
    override = DeviceSettings(battery_chemistry=Chemistry.LI_MNO2_COIN, battery_low_mv=2300)
    assert override.battery_threshold() is not None
    assert override.battery_threshold().low_mv == 2300  # type: ignore[union-attr]
    none = health(DeviceSettings())
    assert all(none.battery(TAG, float(t), 100) == [] for t in range(10))
    with pytest.raises(ValidationError):
        DeviceSettings(battery_low_mv=2000)  # no chemistry: both needed
    with pytest.raises(ValidationError):
        DeviceSettings(battery_chemistry=Chemistry.LI_ION, battery_ok_mv=3000)  # ok <= low


# --- stuck readings ----------------------------------------------------------------------


def test_stuck_needs_both_the_time_and_the_reading_count() -> None:
    settings = DeviceSettings(stuck_after_s=3600, stuck_readings=20)
    h = health(settings)
    t = 0.0
    found: list[HealthResult] = []
    while not found:
        usable, found = h.value(TAG, "temperature_c", t, 5.0)
        assert usable is (not found)
        t += 30.0
    (stuck,) = found
    assert stuck.issue is HealthIssue.STUCK
    assert stuck.quantity == "temperature_c"
    assert stuck.value == 5.0
    assert stuck.at == 3600.0
    # Few readings over a long time is not stuck either (a label reporting hourly).
    slow = health(DeviceSettings(stuck_after_s=3600, stuck_readings=20))
    for k in range(19):
        assert slow.value(TAG, "temperature_c", k * 3600.0, 5.0) == (True, [])


def test_a_stuck_value_is_withheld_until_the_sensor_moves_then_recovered() -> None:
    h = health(DeviceSettings(stuck_after_s=300, stuck_readings=5, stuck_tolerance=0.01))
    for k in range(10):
        # Within the tolerance counts as the same value.
        usable, found = h.value(TAG, "humidity_pct", k * 60.0, 50.0 + (0.01 if k % 2 else 0))
        if k < 5:
            assert (usable, found) == (True, [])
    assert h.value(TAG, "humidity_pct", 600.0, 50.0) == (False, [])  # reported once
    assert h.value(TAG, "humidity_pct", 300.0, 12.0) == (True, [])  # older: not checked
    usable, (back,) = h.value(TAG, "humidity_pct", 660.0, 50.5)
    assert usable
    assert back.phase is FaultPhase.RECOVERED
    assert back.issue is HealthIssue.STUCK
    assert back.value == 50.5
    # Each quantity on its own.
    assert h.value(TAG, "temperature_c", 660.0, 4.0) == (True, [])


def test_a_noisy_real_sensor_is_never_stuck_and_the_check_can_be_disabled() -> None:
    h = health(DeviceSettings(stuck_after_s=600, stuck_readings=5))
    for k in range(1000):
        value = 5.0 + (0.01 if k % 3 == 0 else 0.0)
        assert h.value(TAG, "temperature_c", k * 30.0, value)[1] == []
    off = health(DeviceSettings(stuck_after_s=None))
    assert all(off.value(TAG, "temperature_c", k * 30.0, 5.0) == (True, []) for k in range(500))


# --- any sequence --------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["heard", "tick", "battery", "value"]),
        st.floats(min_value=0.0, max_value=2000.0),
        st.floats(min_value=1500.0, max_value=4000.0),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_any_sequence_alternates_faults_and_recoveries_per_issue(
    ops: list[tuple[str, float, float]],
) -> None:
    """Whatever arrives in whatever order: per device and issue, a fault, then its recovery
    (same issue id), then perhaps a new fault; never two faults or a recovery of nothing."""
    h = health(
        DeviceSettings(
            silent_floor_s=60,
            battery_chemistry=Chemistry.LI_MNO2_COIN,
            battery_readings=2,
            stuck_after_s=120,
            stuck_readings=3,
        )
    )
    now = 0.0
    found: list[HealthResult] = []
    for op, dt, number in ops:
        now += dt
        if op == "heard":
            found += h.heard(TAG, now)
        elif op == "tick":
            found += h.tick(now)
        elif op == "battery":
            found += h.battery(TAG, now, number * 0.7)
        else:
            found += h.value(TAG, "temperature_c", now, round(number / 1000, 0))[1]
    open_: dict[HealthIssue, str] = {}
    for r in found:
        if r.phase is FaultPhase.FAULT:
            assert r.issue not in open_, found
            open_[r.issue] = r.issue_id
        else:
            assert open_.pop(r.issue) == r.issue_id, found
    assert len({r.result_id for r in found}) == len(found)
