"""The shipped scenarios: they load, and the world they describe matches their ground truth."""

from __future__ import annotations

import math
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.world import Scenario, ScenarioError, World, load_scenario
from simulator.world.geo import GeoPoint, distance_m
from simulator.world.loader import parse_scenario, shipped_scenarios


@pytest.fixture(scope="module")
def cross_dock() -> World:
    return World(load_scenario("cross-dock"))


@pytest.fixture(scope="module")
def delivery() -> World:
    return World(load_scenario("delivery-route"))


def test_both_scenarios_are_shipped_and_load_by_name_or_path() -> None:
    assert {"cross-dock", "delivery-route"} <= set(shipped_scenarios())
    path = resources.files("simulator.scenarios").joinpath("cross-dock.toml")
    assert isinstance(load_scenario(str(path)), Scenario)


def test_cross_dock_manifest_counts(cross_dock: World) -> None:
    (h,) = cross_dock.scenario.ground_truth.handoffs
    assert (h.door, h.vehicle) == ("D3", "TRL-17")
    assert (len(h.expected), len(h.confirmed), len(h.missing), len(h.unexpected)) == (40, 38, 2, 1)
    on_board = {i.id for i in cross_dock.scenario.items if i.at == "TRL-17"}
    assert on_board == set(h.expected) | set(h.unexpected)


def test_cross_dock_items_end_where_the_truth_says(cross_dock: World) -> None:
    (h,) = cross_dock.scenario.ground_truth.handoffs
    end = h.window_s[1]
    for item in (*h.confirmed, *h.unexpected):
        assert cross_dock.holder_at(item, end) == "D3", item
    for item in h.missing:
        assert cross_dock.holder_at(item, end) == "TRL-17", item
    # Before the window, everything is still on the trailer.
    for item in (*h.expected, *h.unexpected):
        assert cross_dock.holder_at(item, h.window_s[0]) == "TRL-17"


def test_door_3_hears_the_load_while_docked_and_only_the_dock_after(cross_dock: World) -> None:
    (h,) = cross_dock.scenario.ground_truth.handoffs
    docked = cross_dock.snapshot(h.window_s[0] + 30).items_heard_by("gw-door-03")
    assert docked == {*h.expected, *h.unexpected}
    gone = cross_dock.snapshot(cross_dock.scenario.duration_s).items_heard_by("gw-door-03")
    assert gone == {*h.confirmed, *h.unexpected}
    # The trailer's own gateway takes the two left on board with it.
    trailer = cross_dock.snapshot(cross_dock.scenario.duration_s).items_heard_by("gw-trailer-17")
    assert trailer == set(h.missing)


def test_trailer_is_parked_at_door_3_for_the_window(cross_dock: World) -> None:
    (h,) = cross_dock.scenario.ground_truth.handoffs
    door = next(d for d in cross_dock.scenario.doors if d.id == "D3")
    for t in range(int(h.window_s[0]), int(h.window_s[1]), 60):
        state = cross_dock.vehicle_state("TRL-17", t)
        assert state.speed_mps == 0.0
        assert distance_m(state.position, GeoPoint(door.lat, door.lon)) < 10.0
    assert cross_dock.vehicle_state("TRL-17", 1700).speed_mps > 1.0


def test_cold_pallet_is_above_8_c_only_inside_the_excursion_window(cross_dock: World) -> None:
    (ex,) = cross_dock.scenario.ground_truth.excursions
    assert ex.above == 8.0
    for t in range(int(cross_dock.scenario.duration_s) + 1):
        value = cross_dock.sensor_value(ex.item, ex.sensor, t)
        inside = ex.start_s < t < ex.end_s
        assert (value > ex.above) == inside, (t, value)
    peak = max(cross_dock.sensor_value(ex.item, ex.sensor, t) for t in range(1800))
    assert peak > 11.0


def test_cross_dock_has_a_60_g_drop_during_unloading(cross_dock: World) -> None:
    (shock,) = cross_dock.scenario.shocks
    assert math.hypot(*shock.peak_g) >= 60.0
    assert cross_dock.holder_at(shock.item, shock.t_s) is None  # it happened while carried


def test_cross_dock_fault_schedule_covers_the_device_faults(cross_dock: World) -> None:
    kinds = {f.kind for f in cross_dock.faults_between(-1, cross_dock.scenario.duration_s)}
    assert {"garbage", "corrupt_crc", "unplug", "bluetoothd_restart", "broker_outage"} <= kinds


def test_delivery_route_has_25_parcels_and_10_stops(delivery: World) -> None:
    (route,) = delivery.scenario.routes
    assert len(route.stops) == 10
    assert len(delivery.scenario.items) == 25
    assert {d.item for d in delivery.scenario.ground_truth.deliveries} == {
        i.id for i in delivery.scenario.items
    }


def test_van_dwells_inside_each_stop_geofence(delivery: World) -> None:
    (route,) = delivery.scenario.routes
    for stop in route.stops:
        for t in (stop.arrive_s, (stop.arrive_s + stop.depart_s) / 2, stop.depart_s):
            state = delivery.vehicle_state("VAN-17", t)
            assert state.at_stop == stop.id
            assert distance_m(state.position, GeoPoint(stop.lat, stop.lon)) < stop.radius_m
    between = (route.stops[0].depart_s + route.stops[1].arrive_s) / 2
    assert delivery.vehicle_state("VAN-17", between).at_stop is None
    assert delivery.vehicle_state("VAN-17", between).speed_mps > 5.0


def test_each_parcel_leaves_the_van_at_its_actual_stop(delivery: World) -> None:
    stops = delivery.scenario.stops()
    end = delivery.scenario.duration_s
    for d in delivery.scenario.ground_truth.deliveries:
        assert delivery.holder_at(d.item, end) == d.actual_stop
        where = delivery.item_position(d.item, end)
        actual = stops[d.actual_stop]
        assert distance_m(where, GeoPoint(actual.lat, actual.lon)) < actual.radius_m
        # It is handed over while the van is at that stop.
        move = next(m for m in delivery.scenario.movements if m.item == d.item)
        assert actual.arrive_s <= move.t_s <= move.t_s + move.duration_s <= actual.depart_s


def test_exactly_one_parcel_is_dropped_outside_its_destination_geofence(delivery: World) -> None:
    stops = delivery.scenario.stops()
    wrong = [d for d in delivery.scenario.ground_truth.deliveries if d.wrong_stop]
    assert len(wrong) == 1
    (d,) = wrong
    expected = stops[d.expected_stop]
    where = delivery.item_position(d.item, delivery.scenario.duration_s)
    assert distance_m(where, GeoPoint(expected.lat, expected.lon)) > 10 * expected.radius_m


def test_van_stops_hearing_a_parcel_after_leaving_its_stop(delivery: World) -> None:
    stops = delivery.scenario.stops()
    for d in delivery.scenario.ground_truth.deliveries:
        stop = stops[d.actual_stop]
        assert d.item in delivery.snapshot(stop.arrive_s + 1).items_heard_by("gw-van-17")
        later = delivery.snapshot(stop.depart_s + 120).items_heard_by("gw-van-17")
        assert d.item not in later


CROSS_DOCK_TEXT = resources.files("simulator.scenarios").joinpath("cross-dock.toml").read_text()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=0), st.text(max_size=8)),
        min_size=1,
        max_size=4,
    )
)
def test_mangled_scenario_files_fail_with_a_scenario_error(edits: list[tuple[int, str]]) -> None:
    """Any text is either a valid scenario or a ScenarioError naming the file, never a crash."""
    text = CROSS_DOCK_TEXT
    for position, insert in edits:
        at = position % len(text)
        text = text[:at] + insert + text[at + len(insert) :]
    outcome: Scenario | ScenarioError
    try:
        outcome = parse_scenario(text, "mangled.toml")
    except ScenarioError as exc:
        outcome = exc
    if isinstance(outcome, ScenarioError):
        assert outcome.source == "mangled.toml"
    else:
        World(outcome).snapshot(outcome.duration_s / 2)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_rejected(value: str) -> None:
    text = CROSS_DOCK_TEXT.replace("peak_g = [4.5, -3.0, 60.0]", f"peak_g = [4.5, -3.0, {value}]")
    assert text != CROSS_DOCK_TEXT
    with pytest.raises(ScenarioError, match="finite"):
        parse_scenario(text)
