"""The ground truth for the cold chain: shock alarms, warnings and spikes are checked against
the scenario, every shipped scenario still loads, and the frozen world's curve crosses its
limit exactly where its truth says."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.world import (
    ScenarioError,
    World,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)

CROSS_DOCK = Path(__file__).parents[2] / "simulator" / "scenarios" / "cross-dock.toml"


def test_every_shipped_scenario_loads() -> None:
    names = shipped_scenarios()
    assert {"cross-dock", "frozen-door-open"} <= set(names)
    for name in names:
        assert load_scenario(name).name == name


@pytest.mark.parametrize(
    ("truth", "match"),
    [
        ('[[ground_truth.shocks]]\nitem = "PCL-0007"\nt_s = 333', "no shock of PCL-0007"),
        ('[[ground_truth.shocks]]\nitem = "NOPE"\nt_s = 332', "no shock of NOPE"),
        (
            '[[ground_truth.warnings]]\nitem = "PAL-0001"\nsensor = "temperature_c"\nby_s = 1',
            "exactly one",
        ),
        (
            '[[ground_truth.warnings]]\nitem = "PCL-0002"\nsensor = "temperature_c"\n'
            "above = 8\nby_s = 1",
            "its sensor",
        ),
    ],
)
def test_condition_truths_are_checked(truth: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(CROSS_DOCK.read_text() + f"\n{truth}\n")


def test_cross_dock_lists_its_shock_alarm_and_warning() -> None:
    truth = load_scenario("cross-dock").ground_truth
    assert [(s.item, s.t_s) for s in truth.shocks] == [("PCL-0007", 332)]
    assert [(w.item, w.above, w.by_s) for w in truth.warnings] == [("PAL-0001", 8.0, 480)]


def test_the_frozen_curve_crosses_where_its_truth_says() -> None:
    scenario = load_scenario("frozen-door-open")
    world = World(scenario)
    (spike,) = scenario.ground_truth.spikes
    (excursion,) = scenario.ground_truth.excursions
    (warning,) = scenario.ground_truth.warnings
    item = scenario.items[0]
    curve = item.sensors["temperature_c"]
    assert spike.above == excursion.above == warning.above == -15.0
    assert warning.by_s < excursion.start_s
    noiseless = scenario.model_copy(
        update={
            "items": (
                item.model_copy(
                    update={"sensors": {"temperature_c": curve.model_copy(update={"noise": 0.0})}}
                ),
            )
        }
    )
    flat = World(noiseless)
    beyond = [
        t
        for t in range(int(scenario.duration_s))
        if flat.sensor_value(item.id, "temperature_c", t) > -15.0
    ]
    in_spike = [t for t in beyond if t < 1000]
    assert spike.start_s < in_spike[0]
    assert in_spike[-1] < spike.end_s
    assert in_spike[-1] - in_spike[0] < 60  # 45 s: far below the 15-minute rule
    warm = [t for t in beyond if t >= 1000]
    assert warm[0] - 1 <= excursion.start_s <= warm[0]
    assert warm[-1] == scenario.duration_s - 1
    assert world.sensor_value(item.id, "temperature_c", 0) < -19.0
