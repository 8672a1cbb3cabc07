"""The simulator's additions for custody: GPS faults, route membership, the extended ground
truth, a vehicle's load that stays put when it reverses, and serial faults that need a reader."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from protocols.gps import FixQuality, GpsStreamDecoder, PositionFix
from simulator.runner import ScenarioRunner
from simulator.world import Garbage, GpsJump, GpsNoFix, ScenarioError, World, load_scenario
from simulator.world.geo import GeoPoint, distance_m
from simulator.world.loader import parse_scenario, shipped_scenarios

CUSTODY_SCENARIOS = ["busy-dock", "yard-return", "van-left-on-board", "van-misload-tunnel"]


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tr-cw-") as d:
        yield Path(d)


def test_every_shipped_scenario_loads_including_the_new_ones() -> None:
    names = shipped_scenarios()
    assert {"cross-dock", "delivery-route", *CUSTODY_SCENARIOS} <= set(names)
    for name in names:
        assert World(load_scenario(name)).scenario.name == name


def test_a_trailer_pulling_away_keeps_its_load_on_the_same_side() -> None:
    w = World(load_scenario("cross-dock"))
    door = GeoPoint(51.394000, 6.152000)
    # PCL-0033 stays on board; it used to jump from 11.1 m to 4.9 m from the door gateway.
    d = [distance_m(w.item_position("PCL-0033", t / 2), door) for t in range(2980, 3059)]
    assert min(d) >= 11.0
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(d))
    # It turns to drive off 40 m out, where door 3 no longer hears its load (body loss): the
    # nearest the load then comes to the door is beyond the receivers' reach.
    later = [distance_m(w.item_position("PCL-0033", float(t)), door) for t in range(1531, 1700)]
    assert min(later) > 20.0
    leaving = w.vehicle_state("TRL-17", 1510.0)
    assert leaving.heading_deg == pytest.approx(0.0, abs=1.0)  # it travels north ...
    assert leaving.body_heading_deg == pytest.approx(180.0, abs=1.0)  # ... nose still south


def test_a_van_turning_at_its_stops_is_not_reversing() -> None:
    w = World(load_scenario("delivery-route"))
    for t in (100.0, 500.0, 2300.0, 4300.0):
        v = w.vehicle_state("VAN-17", t)
        assert v.body_heading_deg == pytest.approx(v.heading_deg)


def test_gps_no_fix_and_jump_are_in_the_world_readings() -> None:
    tunnel = load_scenario("van-misload-tunnel")
    (no_fix,) = (f for f in tunnel.faults if isinstance(f, GpsNoFix))
    w = World(tunnel)
    assert w.gps_reading("gw-van-51", no_fix.t_s + 1).position is None
    after = w.gps_reading("gw-van-51", no_fix.t_s + no_fix.down_s + 1)
    assert after.position == w.vehicle_state("VAN-51", no_fix.t_s + no_fix.down_s + 1).position
    jumpy = load_scenario("van-left-on-board")
    (jump,) = (f for f in jumpy.faults if isinstance(f, GpsJump))
    wj = World(jumpy)
    reading = wj.gps_reading("gw-van-41", jump.t_s + 1)
    truth = wj.vehicle_state("VAN-41", jump.t_s + 1).position
    assert reading.jumped
    assert reading.position is not None
    assert distance_m(reading.position, truth) == pytest.approx(400.0, rel=0.01)
    assert not wj.gps_reading("gw-van-41", jump.t_s + jump.duration_s).jumped
    with pytest.raises(ValueError, match="not on a vehicle"):
        World(load_scenario("cross-dock")).gps_reading("gw-door-03", 0.0)


def test_route_membership_and_the_new_ground_truth_are_checked() -> None:
    scenarios = Path(__file__).parents[2] / "simulator" / "scenarios"
    text = (scenarios / "van-misload-tunnel.toml").read_text()
    ok = parse_scenario(text)
    assert ok.ground_truth.departures[0].misloaded == ("PCL-9901",)
    bad_cases = [
        ('stop = "S01"\nat = "VAN-51"', 'stop = "S77"\nat = "VAN-51"', "is not a stop of route"),
        ('misloaded = ["PCL-9901"]', 'misloaded = ["PCL-5101"]', "misloaded item is on the route"),
        ('missing = ["PCL-5106"]', 'missing = ["PCL-9901"]', "missing item is not on the route"),
        ('route = "R-0305-51"\nmissing', 'route = "R-9"\nmissing', "unknown route"),
    ]
    for old, new, match in bad_cases:
        assert old in text, old
        with pytest.raises(ScenarioError, match=match):
            parse_scenario(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ('kind = "garbage"\nt_s = 5\ngateway = "gw-door-02"', "no SmartLabel reader"),
        ('kind = "drop_bytes"\nt_s = 5\ngateway = "gw-door-02"', "no SmartLabel reader"),
        ('kind = "corrupt_crc"\nt_s = 5\ngateway = "gw-door-04"', "no SmartLabel reader"),
        ('kind = "gps_no_fix"\nt_s = 5\ngateway = "gw-door-03"\ndown_s = 5', "has no GPS"),
        ('kind = "gps_jump"\nt_s = 5\ngateway = "gw-door-03"\nduration_s = 5', "has no GPS"),
    ],
)
def test_faults_aimed_at_a_missing_device_are_refused(fault: str, match: str) -> None:
    path = Path(__file__).parents[2] / "simulator" / "scenarios" / "cross-dock.toml"
    text = path.read_text() + f"\n[[faults]]\n{fault}\n"
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(text)


async def test_a_serial_fault_at_a_gateway_without_a_reader_is_skipped_not_a_crash(
    workdir: Path,
) -> None:
    base = load_scenario("cross-dock")
    # model_copy does not validate: this is what a hand-built Scenario can still carry.
    scenario = base.model_copy(update={"faults": (Garbage(t_s=5.0, gateway="gw-door-02"),)})
    async with ScenarioRunner(scenario, workdir, speed=60.0, drive=False) as runner:
        await runner.step(10.0)
        (applied,) = runner.fault_log
        assert applied.kind == "garbage"
        assert not applied.applied
        assert "no smartlabel device" in applied.detail


async def test_the_gps_pty_says_no_fix_in_the_tunnel(workdir: Path) -> None:
    scenario = load_scenario("van-misload-tunnel")
    (no_fix,) = (f for f in scenario.faults if isinstance(f, GpsNoFix))
    async with ScenarioRunner(scenario, workdir, speed=60.0, drive=False) as runner:
        port_path = runner.endpoints.gateway("gw-van-51").gps_port
        assert port_path is not None
        decoder = GpsStreamDecoder()
        fixes: list[PositionFix] = []
        with serial.Serial(str(port_path), timeout=0.2) as port:
            await runner.step(no_fix.t_s + 10.0)
            async with asyncio.timeout(10.0):  # epochs come once a second
                while not any(f.fix is FixQuality.NONE for f in fixes):
                    data = await asyncio.to_thread(port.read, 4096)
                    fixes += [f for f in decoder.feed(data) if isinstance(f, PositionFix)]
        assert any(f.lat is None for f in fixes if f.fix is FixQuality.NONE)
        assert ("gps_no_fix", True) in [(a.kind, a.applied) for a in runner.fault_log]


@pytest.mark.parametrize(
    ("spike", "match"),
    [
        ('item = "PAL-0001"\nsensor = "temperature_c"\nstart_s = 1\nend_s = 2', "exactly one"),
        ('item = "NOPE"\nsensor = "temperature_c"\nabove = 8\nstart_s = 1\nend_s = 2', "unknown"),
        ('item = "PAL-0001"\nsensor = "t"\nabove = 8\nstart_s = 5\nend_s = 2', "after start"),
    ],
)
def test_spike_truths_are_checked(spike: str, match: str) -> None:
    path = Path(__file__).parents[2] / "simulator" / "scenarios" / "cross-dock.toml"
    base = path.read_text()
    ok = base + '\n[[ground_truth.spikes]]\nitem = "PAL-0001"\nsensor = "temperature_c"\n'
    ok += "above = 8.0\nstart_s = 100\nend_s = 130\n"
    assert parse_scenario(ok).ground_truth.spikes[0].above == 8.0
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(base + f"\n[[ground_truth.spikes]]\n{spike}\n")
