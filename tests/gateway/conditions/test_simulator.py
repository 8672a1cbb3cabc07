"""The engine on the simulator's curves: the cross-dock cold pallet and a frozen load.

The readings are what the simulated labels report (``World.sensor_value`` every reporting
period, the same function the simulator's SmartLabel reader sends from), fed with their own
times. Tolerance: the excursion's start and end within one reporting period of the ground truth
(readings are interpolated, so a noiseless curve gives them almost exactly; a reading's value
is rounded to 0.01 °C), its open and close within one period after the truth.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime

import pytest

from gateway.conditions import (
    ConditionMonitor,
    ConditionResult,
    ExcursionPhase,
    ShockResult,
    WarningPhase,
    mkt_from_sums_c,
)
from simulator.world import World, load_scenario
from simulator.world.loader import parse_scenario
from tests.gateway.conditions.helpers import TEMP, excursions, warnings

OPEN, CLOSE = ExcursionPhase.OPEN, ExcursionPhase.CLOSE


def _run(world: World, item: str, profile: str) -> tuple[ConditionMonitor, list[ConditionResult]]:
    curve = next(i for i in world.scenario.items if i.id == item).sensors["temperature_c"]
    m = ConditionMonitor(assignments={item: profile})
    results: list[ConditionResult] = []
    steps = int(world.scenario.duration_s // curve.period_s)
    for k in range(steps + 1):
        t = k * curve.period_s
        value = world.sensor_value(item, "temperature_c", t)
        results += m.observe(item, TEMP, value, world.when(t))
    return m, results


def _secs(world: World, when: datetime | None) -> float:
    assert when is not None
    return (when - world.start).total_seconds()


def test_cross_dock_cold_pallet_excursion_matches_the_ground_truth() -> None:
    world = World(load_scenario("cross-dock"))
    truth = next(e for e in world.scenario.ground_truth.excursions if e.item == "PAL-0001")
    assert (truth.above, truth.start_s, truth.end_s) == (8.0, 780, 1320)
    period = (
        next(i for i in world.scenario.items if i.id == "PAL-0001")
        .sensors["temperature_c"]
        .period_s
    )
    _m, results = _run(world, "PAL-0001", "pharma-2-8")
    opened = excursions(results, OPEN)
    closed = excursions(results, CLOSE)
    assert [(r.limit, r.rule) for r in opened] == [("high", "instant")]
    assert len(closed) == 1
    (o,), (c,) = opened, closed
    assert abs(_secs(world, o.start) - truth.start_s) <= period
    assert abs(_secs(world, c.end) - truth.end_s) <= period
    assert 0 <= _secs(world, o.at) - truth.start_s <= period
    assert 0 <= _secs(world, c.at) - truth.end_s <= period
    assert c.time_beyond_s == pytest.approx(truth.end_s - truth.start_s, abs=period)
    sampled = [world.sensor_value("PAL-0001", "temperature_c", k * period) for k in range(61)]
    assert c.max == max(sampled)  # 11.34 at 1110 s: the 11.5 peak at 1100 s is not sampled
    # The MKT on the close is the formula over the readings so far (trapezoids, no gaps).
    values = [
        world.sensor_value("PAL-0001", "temperature_c", k * period)
        for k in range(int(_secs(world, c.at) // period) + 1)
    ]
    weights = [math.exp(-10_000 / (v + 273.15)) for v in values]
    weighted = sum((a + b) / 2 * period for a, b in itertools.pairwise(weights))
    assert c.mkt_c == pytest.approx(mkt_from_sums_c(weighted, period * (len(values) - 1)))
    # Nothing else alarms: no other excursion, no shock, no sensor fault.
    assert {type(r).__name__ for r in results} <= {"ExcursionResult", "WarningResult"}
    # The early warning on the high limit comes at least 5 minutes before the crossing.
    # No other warning: the cooling after the close (1 °C/min) is a recovery, not an approach
    # to the low limit (WARNING_QUIET_AFTER_CLOSE_S).
    high = warnings(results)
    assert [(w.limit, w.phase) for w in high] == [("high", WarningPhase.RAISED)]
    assert truth.start_s - _secs(world, high[0].at) >= 300


def test_cross_dock_dropped_parcel_alarms_once_with_its_peak() -> None:
    world = World(load_scenario("cross-dock"))
    m = ConditionMonitor(default_profile="parcel")
    results: list[ConditionResult] = []
    for shock in world.shocks_between(-1, world.scenario.duration_s):
        results += m.observe_shock(
            shock.item, world.when(shock.t_s), shock.peak_g, shock.duration_ms
        )
    alarms = [r for r in results if isinstance(r, ShockResult) and r.alarm]
    assert [(a.subject, round(a.peak_g, 2)) for a in alarms] == [
        ("PCL-0007", round(math.hypot(4.5, -3.0, 60.0), 2))
    ]


FROZEN = """
name = "frozen-door-open"
description = "A frozen pallet: the door stands open a few minutes, later the reefer fails"
seed = {seed}
start = 2026-03-02T06:00:00Z
duration_s = 7200

[[doors]]
id = "D1"
name = "Door 1"
lat = 51.394
lon = 6.152
facing_deg = 0
dock_depth_m = 20
gateway = {{ id = "gw-1", adapter = "hci0", smartlabel_reader = true }}

[[items]]
id = "PAL-FRZ"
kind = "pallet"
at = "D1"
tags = [{{ format = "smartlabel", label_id = 42 }}]
# -20 °C; the door is open around 1320 s (a spike to -12 °C, above -15 from 1275 s to 1365 s);
# the reefer fails at 3000 s and the load warms slowly, above -15 from 4750 s.
[items.sensors.temperature_c]
points = [[0, -20.0], [1200, -20.0], [1320, -12.0], [1440, -20.0], [3000, -20.0], [7200, -8.0]]
noise = 0.2
period_s = 60

[[ground_truth.excursions]]
item = "PAL-FRZ"
sensor = "temperature_c"
above = -15.0
start_s = 1275
end_s = 1365

[[ground_truth.excursions]]
item = "PAL-FRZ"
sensor = "temperature_c"
above = -15.0
start_s = 4750
end_s = 7200
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frozen_load_ignores_the_door_open_spike_and_alarms_on_the_warm_up(seed: int) -> None:
    world = World(parse_scenario(FROZEN.format(seed=seed), "frozen-door-open"))
    spike, warm_up = world.scenario.ground_truth.excursions
    m, results = _run(world, "PAL-FRZ", "frozen")
    opened = excursions(results, OPEN)
    # The spike (90 s) is under the 15-minute consecutive rule and far from the 1 h total.
    assert [(r.limit, r.rule, r.rule_duration_s) for r in opened] == [
        ("high", "consecutive", 900.0)
    ]
    # Noise of 0.2 °C on a 0.17 °C/min warm-up moves the last crossing by up to a few minutes.
    assert abs(_secs(world, opened[0].start) - warm_up.start_s) <= 3 * 60
    assert _secs(world, opened[0].at) - _secs(world, opened[0].start) >= 900
    assert excursions(results, CLOSE) == []
    # The warm-up is warned of before it crosses -15 °C.
    raised = [w for w in warnings(results) if w.phase is WarningPhase.RAISED and w.limit == "high"]
    assert raised
    assert len(raised) == 1
    assert _secs(world, raised[0].at) < warm_up.start_s
    assert m.time_beyond_s("PAL-FRZ", TEMP, "high") == pytest.approx(
        (spike.end_s - spike.start_s) + (warm_up.end_s - warm_up.start_s), abs=4 * 60
    )
