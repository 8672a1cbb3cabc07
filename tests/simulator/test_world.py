"""The world as a pure function of time: tracks, carries, curves, RSSI, clock, validation."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.world import ScenarioError, SimClock, World, load_scenario
from simulator.world.geo import GeoPoint, Projection, bearing_deg, distance_m
from simulator.world.loader import parse_scenario
from simulator.world.model import Curve
from simulator.world.radio import mean_rssi_dbm
from simulator.world.state import curve_value, derive_address

# A door, and a van that drives straight north from 5 m to 305 m out over 300 s, carrying one
# beacon. Its body loss is 0 so that only distance changes the RSSI.
BASE = """
name = "unit"
seed = {seed}
start = 2026-01-05T10:00:00Z
duration_s = 400

[radio]
path_loss_exponent = 2.0
shadowing_sigma_db = 4.0

[[doors]]
id = "D1"
lat = 50.0
lon = 8.0
gateway = {{ id = "gw-d1", adapter = "hci0", sensitivity_dbm = -200.0 }}

[[vehicles]]
id = "V1"
cargo_length_m = 0.001
body_loss_db = 0
gateway = {{ id = "gw-v1", adapter = "hci1", gps = true }}
track = [
  {{ t_s = 0, lat = 50.000045, lon = 8.0 }},
  {{ t_s = 300, lat = 50.002743, lon = 8.0 }},
]

[[items]]
id = "BOX"
at = "V1"
sensors.temperature_c = {{ points = [[0, 4.0], [100, 14.0]], noise = {noise}, period_s = 10 }}

[[items.tags]]
format = "ibeacon"
uuid = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
major = 1
minor = 2
interval_s = 0.1

[[items]]
id = "CRATE"
at = "D1"
tags = [{{ format = "smartlabel", label_id = 7 }}]

[[movements]]
item = "CRATE"
t_s = 50
to = "V1"
duration_s = 10

[[shocks]]
item = "CRATE"
t_s = 55
peak_g = [0, 0, 60]

[[faults]]
kind = "bluetoothd_restart"
t_s = 20

[[faults]]
kind = "garbage"
t_s = 10
gateway = "gw-d1"
"""


def world(seed: int = 1, noise: float = 0.0) -> World:
    return World(parse_scenario(BASE.format(seed=seed, noise=noise)))


def test_vehicle_moves_along_its_track() -> None:
    w = world()
    start, middle = w.vehicle_state("V1", 0).position, w.vehicle_state("V1", 150).position
    end = w.vehicle_state("V1", 300).position
    assert distance_m(start, middle) == pytest.approx(distance_m(middle, end), rel=1e-3)
    state = w.vehicle_state("V1", 150)
    assert state.speed_mps == pytest.approx(300.0 / 300.0, rel=0.01)
    assert state.heading_deg == pytest.approx(0.0, abs=0.1)  # due north
    parked = w.vehicle_state("V1", 350)
    assert parked.position == end
    assert parked.speed_mps == 0.0
    assert parked.heading_deg == pytest.approx(0.0, abs=0.1)  # keeps its last heading


def test_carried_item_is_in_transit_then_at_its_new_holder() -> None:
    w = world()
    assert w.holder_at("CRATE", 49.9) == "D1"
    assert w.holder_at("CRATE", 55) is None
    assert w.item_state("CRATE", 55).holder is None
    assert w.holder_at("CRATE", 60) == "V1"
    # Once on the van it travels with it.
    van = w.vehicle_state("V1", 250).position
    assert distance_m(w.item_position("CRATE", 250), van) < 2.0


def test_curve_interpolates_and_clamps() -> None:
    curve = Curve(points=((0.0, 4.0), (100.0, 14.0)))
    assert curve_value(curve, -5) == 4.0
    assert curve_value(curve, 25) == pytest.approx(6.5)
    assert curve_value(curve, 500) == 14.0


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=0, max_value=400, allow_nan=False))
def test_sensor_value_is_a_pure_function_of_time(t_s: float) -> None:
    a, b = world(seed=3, noise=0.5), world(seed=3, noise=0.5)
    assert a.sensor_value("BOX", "temperature_c", t_s) == b.sensor_value(
        "BOX", "temperature_c", t_s
    )
    assert (
        abs(
            a.sensor_value("BOX", "temperature_c", t_s)
            - curve_value(a.scenario.items[0].sensors["temperature_c"], t_s)
        )
        < 0.5 * 6
    )  # six sigma


def test_sensor_noise_depends_on_the_seed_and_is_constant_within_a_period() -> None:
    a, b = world(seed=1, noise=0.5), world(seed=2, noise=0.5)
    series_a = [a.sensor_value("BOX", "temperature_c", t) for t in range(0, 400, 10)]
    series_b = [b.sensor_value("BOX", "temperature_c", t) for t in range(0, 400, 10)]
    assert series_a != series_b
    # Within one 10 s period the noise is the same draw, so on the flat part the value is too.
    assert a.sensor_value("BOX", "temperature_c", 200) == a.sensor_value(
        "BOX", "temperature_c", 209.9
    )


def test_rssi_decreases_with_distance_on_average() -> None:
    w = world()
    buckets: dict[int, list[int]] = {}
    for tenth in range(0, 3000):
        t = tenth / 10
        s = w.snapshot(t).heard_by("gw-d1")
        box = next(x for x in s.values() if x.item == "BOX")
        buckets.setdefault(int(box.distance_m // 50), []).append(box.rssi_dbm)
    means = [statistics.fmean(buckets[k]) for k in sorted(buckets)]
    assert len(means) >= 5
    assert all(b < a for a, b in itertools.pairwise(means)), means
    # The noise averages out to the log-distance model (here at about 100 m).
    t_100 = 95.0 / 300.0 * 300.0
    samples = [w.snapshot(t_100 + k / 10).heard_by("gw-d1") for k in range(100)]
    rssi = [next(x for x in s.values() if x.item == "BOX").rssi_dbm for s in samples]
    d = next(x for x in samples[0].values() if x.item == "BOX").distance_m
    assert statistics.fmean(rssi) == pytest.approx(mean_rssi_dbm(-59.0, d, 2.0), abs=1.5)
    assert 2.0 < statistics.pstdev(rssi) < 6.0


def test_gateway_only_hears_tags_above_its_sensitivity() -> None:
    w = world()
    # gw-v1 has the default -95 dBm floor; the crate on the dock 2..20 m behind the door is
    # heard while the van is close, and not once the van is 300 m away.
    assert "CRATE" in w.snapshot(1).items_heard_by("gw-v1")
    late = World(w.scenario.model_copy(update={"movements": ()}))
    assert "CRATE" not in late.snapshot(350).items_heard_by("gw-v1")


def test_same_seed_same_world_other_seed_other_rssi() -> None:
    assert world(seed=5).snapshot(123.4) == world(seed=5).snapshot(123.4)
    rssi = [
        [s.rssi_dbm for s in world(seed=seed).snapshot(t).sightings]
        for seed in (5, 6)
        for t in (10.0, 20.0, 30.0)
    ]
    assert rssi[:3] != rssi[3:]


def test_snapshot_time_is_scenario_start_plus_t() -> None:
    snap = world().snapshot(90)
    assert snap.when == datetime(2026, 1, 5, 10, 1, 30, tzinfo=UTC)
    assert World(world().scenario, start=datetime(2030, 1, 1, tzinfo=UTC)).when(1) == datetime(
        2030, 1, 1, 0, 0, 1, tzinfo=UTC
    )


def test_shocks_and_faults_in_half_open_windows() -> None:
    w = world()
    assert [s.item for s in w.shocks_between(54, 55)] == ["CRATE"]
    assert w.shocks_between(55, 56) == []
    assert [f.kind for f in w.faults_between(-1, 100)] == ["garbage", "bluetoothd_restart"]
    assert w.faults_between(20, 100) == []


def test_derived_addresses_are_stable_random_static() -> None:
    a = derive_address("cross-dock", "PCL-0001", 0)
    assert a == derive_address("cross-dock", "PCL-0001", 0)
    assert a != derive_address("cross-dock", "PCL-0001", 1)
    assert int(a[:2], 16) & 0xC0 == 0xC0
    assert len({r.address for r in world().tags}) == 2


def test_projection_round_trips() -> None:
    proj = Projection(GeoPoint(51.39, 6.15))
    p = proj.offset(GeoPoint(51.39, 6.15), 30.0, -40.0)
    assert distance_m(GeoPoint(51.39, 6.15), p) == pytest.approx(50.0, rel=1e-3)
    x, y = proj.to_xy(p)
    assert x == pytest.approx(30.0)
    assert y == pytest.approx(-40.0)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sim_clock_runs_at_speed() -> None:
    real = FakeMonotonic()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = SimClock(start, speed=60.0, real_monotonic=real)
    assert clock.elapsed_s() == 0.0
    real.now += 2.5
    assert clock.elapsed_s() == pytest.approx(150.0)
    assert clock.now() == start + timedelta(seconds=150)
    assert clock.real_seconds_until(300.0) == pytest.approx(2.5)
    assert clock.real_seconds_until(100.0) == 0.0
    with pytest.raises(ValueError, match="speed"):
        SimClock(start, speed=0)
    with pytest.raises(ValueError, match="timezone"):
        SimClock(datetime(2026, 1, 1), speed=1)


def test_sim_clock_lead_in_holds_t0_in_the_future() -> None:
    real = FakeMonotonic()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = SimClock(start, speed=20.0, real_monotonic=real, lead_in_real_s=10.0)
    assert clock.t0_real == real.now + 10.0
    assert clock.elapsed_s() == pytest.approx(-200.0)  # the world waits at its start
    real.now += 10.5
    assert clock.elapsed_s() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="lead_in"):
        SimClock(start, speed=1.0, lead_in_real_s=-1.0)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ('at = "D1"', 'at = "NOWHERE"', "unknown holder"),
        ('adapter = "hci1"', 'adapter = "hci0"', "duplicate adapter"),
        ('adapter = "hci1"', 'adapter = "usb0"', "hci0"),
        ("start = 2026-01-05T10:00:00Z", "start = 2026-01-05T10:00:00", "UTC offset"),
        ("t_s = 50\n", "t_s = -1\n", "greater than or equal"),
        ('kind = "bluetoothd_restart"', 'kind = "meteor_strike"', "meteor_strike"),
        ('gateway = "gw-d1"', 'gateway = "gw-nope"', "unknown gateway"),
        ("[[doors]]", "[[doors]]\nbogus = 1", "Extra inputs"),
        ("duration_s = 400", "duration_s = [", "not valid TOML"),
    ],
)
def test_invalid_scenarios_are_rejected_with_the_reason(old: str, new: str, match: str) -> None:
    text = BASE.format(seed=1, noise=0.0)
    assert old in text
    with pytest.raises(ScenarioError, match=match) as exc:
        parse_scenario(text.replace(old, new, 1), "bad.toml")
    assert exc.value.source == "bad.toml"


def test_ground_truth_must_be_consistent() -> None:
    text = (
        BASE.format(seed=1, noise=0.0)
        + """
[[ground_truth.handoffs]]
door = "D1"
vehicle = "V1"
window_s = [0, 100]
expected = ["BOX", "CRATE"]
confirmed = ["BOX"]
missing = []
"""
    )
    with pytest.raises(ScenarioError, match="partition"):
        parse_scenario(text)
    ok = parse_scenario(text.replace("missing = []", 'missing = ["CRATE"]'))
    assert ok.ground_truth.handoffs[0].missing == ("CRATE",)


def test_a_vehicle_waiting_to_leave_faces_its_first_leg() -> None:
    scenario = load_scenario("cross-dock")
    w = World(scenario)
    first, second = scenario.vehicles[0].track[:2]
    leg = bearing_deg(GeoPoint(first.lat, first.lon), GeoPoint(second.lat, second.lon))
    assert 180.0 < leg < 270.0  # from the gate towards the doors: south-west
    assert w.vehicle_state("TRL-17", 0).heading_deg == pytest.approx(leg)
    assert w.vehicle_state("TRL-17", -10).heading_deg == pytest.approx(leg)
