"""``tagrelay run`` as a real process against real devices: the simulator's cross-dock world
(fake BlueZ on a private bus, pty SmartLabel reader) with the configs it writes, a real
mosquitto, and the label -> outbox -> broker chain through a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import tomli_w

from gateway.conditions import PRESETS
from gateway.events import TelemetryReading
from gateway.events.common import LabelFrame
from gateway.registry import smartlabel_tag_id
from protocols.smartlabel import Environment
from simulator.serial import PtyPort, SmartLabelReaderSim
from simulator.world import SmartLabelTag, World, load_scenario
from simulator.world.model import EddystoneUidTag, IBeaconTag
from tests.fixtures.mosquitto import Broker, stop_process
from tests.gateway.uplink.helpers import subscribe

#: Python, dbus-daemon, the ptys and the fake BlueZ start in well under a second alone; CI
#: machines run other tests beside this one.
START_TIMEOUT_S = 30.0
#: The cross-dock world at this speed unloads a parcel every 0.75 s from t = 240 s (12 s).
SPEED = 20.0


@contextmanager
def gateway_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        stop_process(proc)


@asynccontextmanager
async def simulation(
    workdir: Path, broker: Broker, *args: str
) -> AsyncIterator[tuple[dict[str, Any], asyncio.subprocess.Process]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "simulate",
        *args,
        "--workdir",
        str(workdir / "sim"),
        "--gateway-configs",
        str(workdir / "configs"),
        "--broker",
        f"mqtt://{broker.host}:{broker.port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = await proc.stdout.readline()
        assert line, "the simulator exited before saying where to look"
        yield json.loads(line), proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def cross_dock_tags() -> dict[str, str]:
    """Tag id -> item id for the items unloaded at door 3 (BLE-visible formats)."""
    scenario = load_scenario("cross-dock")
    moved = {m.item for m in scenario.movements if m.to == "D3"}
    tags: dict[str, str] = {}
    for item in scenario.items:
        if item.id not in moved:
            continue
        for tag in item.tags:
            if isinstance(tag, SmartLabelTag):
                tags[smartlabel_tag_id(tag.label_id)] = item.id
            elif isinstance(tag, IBeaconTag):
                tags[f"ibeacon:{tag.uuid}:{tag.major}:{tag.minor}"] = item.id
    return tags


async def test_door_gateway_reports_presence_and_smartlabel_telemetry(
    mosquitto: Broker, tmp_path: Path
) -> None:
    expected = cross_dock_tags()
    async with (
        subscribe(mosquitto, "tagrelay/v1/gw-door-03/events/#") as sub,
        # The gateway on its own clock: the world at 20x sends its adverts 20 times as often,
        # which is what presence needs to decide within seconds.
        simulation(
            tmp_path, mosquitto, "cross-dock", "--speed", str(SPEED), "--gateway-clock", "system"
        ) as (where, _),
    ):
        config = Path(where["gateway_configs"]["gw-door-03"])
        with gateway_process(config, tmp_path / "gw-door-03.log") as proc:

            def entered(_: object) -> set[str]:
                return {
                    e["tag"]
                    for e in sub.events()
                    if e["kind"] == "presence.enter" and e["tag"] in expected
                }

            def telemetry(_: object) -> list[dict[str, Any]]:
                return [
                    e
                    for e in sub.events()
                    if e["kind"] == "telemetry.reading"
                    and e["source"]["device"].startswith("smartlabel:")
                ]

            # Parcels unloaded near door 3's gateway (within about 5 m: the zone's depth with
            # the default levels, docs/presence.md) become present there.
            await sub.wait_until(lambda m: len(entered(m)) >= 5, timeout_s=60)
            await sub.wait_until(lambda m: len(telemetry(m)) >= 3, timeout_s=30)
            assert proc.poll() is None, (tmp_path / "gw-door-03.log").read_text()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
    enters = [e for e in sub.events() if e["kind"] == "presence.enter" and e["tag"] in expected]
    for e in enters:
        assert e["gateway_id"] == "gw-door-03"
        assert e["zone"] == "door-d3"
        assert e["source"] == {"device": e["tag"], "via": "hci0", "zone": "door-d3"}
        assert e["sightings"] >= 1
        assert e["rssi_max_dbm"] >= e["rssi_mean_dbm"]
    # At most one enter per tag per visit: no flapping while the parcel sits on the dock.
    tags = [e["tag"] for e in enters]
    assert len(tags) == len(set(tags))
    readings = [e for e in sub.events() if e["kind"] == "telemetry.reading"]
    assert any("temperature_c" in e["values"] for e in readings)
    log = (tmp_path / "gw-door-03.log").read_text()
    assert "Traceback" not in log


def write_reader_config(tmp_path: Path, broker: Broker, reader: Path) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(
        'gateway_id = "gw-labels"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "[uplink]\n"
        f'host = "{broker.host}"\nport = {broker.port}\ntransport = "tcp"\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.5\n"
        "[[smartlabel_readers]]\n"
        f'path = "{reader}"\n'
    )
    return path


LABELS = [0x5A4B000000000001 + i for i in range(5)]


def reading_ids(keys: set[tuple[int, int]], sent: dict[tuple[int, int], int]) -> set[str]:
    return {
        TelemetryReading.make_id(
            "gw-labels", LabelFrame(smartlabel_tag_id(label), seq, None, sent[(label, seq)])
        )
        for label, seq in keys
    }


async def send_frames(
    reader: SmartLabelReaderSim, n: int, pause_s: float, sent: dict[tuple[int, int], int]
) -> None:
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        seq = reader.next_seq(label)
        sent[(label, seq)] = 1_767_225_600 + i
        reader.send(
            Environment(
                label_id=label,
                seq=seq,
                label_time=sent[(label, seq)],
                temperature_c=4.0 + (i % 7) / 10,
                humidity_pct=80.0,
            )
        )
        await asyncio.sleep(pause_s)


async def wait_for(predicate: Any, reader: SmartLabelReaderSim, timeout_s: float = 60.0) -> None:
    async with asyncio.timeout(timeout_s):
        await reader.wait_for(predicate)


async def test_sigkill_loses_no_acked_label_frame(mosquitto: Broker, tmp_path: Path) -> None:
    sent = 300
    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=0.5) as reader,
        subscribe(mosquitto, "tagrelay/v1/gw-labels/events/#") as sub,
    ):
        config = write_reader_config(tmp_path, mosquitto, tmp_path / "reader")
        log = tmp_path / "daemon.log"
        times: dict[tuple[int, int], int] = {}
        sender = asyncio.create_task(send_frames(reader, sent, 0.01, times))
        with gateway_process(config, log) as proc:
            await wait_for(lambda: len(reader.acked) >= 60, reader)
            proc.kill()  # a power cut while labels are sending
            await asyncio.to_thread(proc.wait, 10)
        acked_before_kill = set(reader.acked)
        with gateway_process(config, log) as proc:
            await sender
            await wait_for(lambda: len(reader.acked) >= sent, reader)
            every = reading_ids(set(reader.acked), times)
            await sub.wait_until(
                lambda m: every <= {e["event_id"] for e in sub.events()}, timeout_s=60
            )
            assert proc.poll() is None
    # Every frame the gateway ACKed, before the kill and after, reached the broker.
    received = {e["event_id"] for e in sub.events()}
    assert reading_ids(acked_before_kill, times) <= received
    assert len(reader.acked) == sent
    assert reader.dropped == set()
    # A resent frame is the same fact: no event beyond one per frame (duplicates are allowed on
    # the wire after a kill, but never under another id).
    readings = {e["event_id"] for e in sub.events() if e["kind"] == "telemetry.reading"}
    assert readings == every
    assert "Traceback" not in log.read_text()


def cross_dock_manifest() -> tuple[list[str], set[str]]:
    """The tag ids of door 3's manifest items, and those of the two that stay on board."""
    scenario = load_scenario("cross-dock")
    (truth,) = scenario.ground_truth.handoffs
    items = {i.id: i for i in scenario.items}
    expected: list[str] = []
    missing: set[str] = set()
    for item_id in truth.expected:
        for tag in items[item_id].tags:
            tid = tag_ids_of(tag)
            if tid is not None:
                expected.append(tid)
                if item_id in truth.missing:
                    missing.add(tid)
    return expected, missing


def tag_ids_of(tag: object) -> str | None:
    if isinstance(tag, SmartLabelTag):
        return smartlabel_tag_id(tag.label_id)
    if isinstance(tag, IBeaconTag):
        return f"ibeacon:{tag.uuid}:{tag.major}:{tag.minor}"
    if isinstance(tag, EddystoneUidTag):
        return f"eddystone:{tag.namespace.lower()}:{tag.instance.lower()}"
    return None


@pytest.mark.slow
@pytest.mark.timeout(360)
async def test_door_gateway_confirms_the_handoff_in_scenario_time(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """The platform opens door 3's handoff session; the gateway, following the simulated
    world's clock, confirms parcels as they are carried onto the dock and never one that stays
    in the trailer."""
    expected, on_board = cross_dock_manifest()
    speed = 20.0  # every advert is delivered at any speed; 20x keeps one gateway exact
    async with (
        subscribe(mosquitto, "tagrelay/v1/gw-door-03/#") as sub,
        simulation(tmp_path, mosquitto, "cross-dock", "--speed", str(speed)) as (where, _),
    ):
        config = Path(where["gateway_configs"]["gw-door-03"])
        with gateway_process(config, tmp_path / "gw-door-03.log") as proc:
            await sub.wait_until(
                lambda m: any(x.topic.endswith("/status") for x in m), timeout_s=START_TIMEOUT_S
            )
            start = datetime.fromisoformat(where["start"])
            command = {
                "id": "open-1",
                "session_id": "H-TRL-17",
                "door": "door-d3",
                "from_party": "Northline Freight",
                "to_party": "4012345000009",
                "expected": expected,
                "documents": [{"type": "ASN", "number": "ASN-77"}],
                # The scenario's handoff window: from the trailer docking to its departure.
                "window_start": (start + timedelta(seconds=180)).isoformat(),
                "window_end": (start + timedelta(seconds=1500)).isoformat(),
            }
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as platform:
                await platform.publish(
                    "tagrelay/v1/gw-door-03/cmd/handoff/open", json.dumps(command), qos=1
                )

            def confirmed(_: object) -> set[str]:
                return {
                    e["evidence"]["tag"]
                    for e in sub.events()
                    if e["kind"] == "handoff.item" and e["session_id"] == "H-TRL-17"
                }

            await sub.wait_until(lambda m: len(confirmed(m)) >= 8, timeout_s=240)
            assert proc.poll() is None, (tmp_path / "gw-door-03.log").read_text()
    answers = [json.loads(m.payload) for m in sub.messages if "/result/" in m.topic]
    assert any(a.get("ok") for a in answers), answers
    # The retained birth says what the clock is: the simulated world's, trusted.
    births = [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/status")]
    assert births[0]["state"] == "online"
    assert births[0]["clock_state"] == "ntp"
    items = [e for e in sub.events() if e["kind"] == "handoff.item"]
    assert not confirmed(None) & on_board  # nothing still in the trailer is confirmed
    assert confirmed(None) <= set(expected)
    start = datetime.fromisoformat(where["start"])
    for item in items:
        assert item["door"] == "door-d3"
        assert item["time_source"] == "ntp"
        # Stamped in scenario time: the unloading runs from t = 240 s.
        when = datetime.fromisoformat(item["time"])
        assert when - start > timedelta(seconds=240), json.dumps(item)


def assign_in_config(config: Path, assignments: dict[str, str]) -> None:
    """Assign condition profiles in a written gateway config (the config path of assignment)."""
    data = tomllib.loads(config.read_text())
    data["conditions"] = {"assignments": assignments}
    config.write_text(tomli_w.dumps(data))


def alarms(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything that alarms: excursions, warnings, shock alarms, sensor faults, low battery."""
    return [
        e
        for e in events
        if e["kind"] in ("condition.excursion", "condition.warning")
        or (e["kind"] == "condition.shock" and e["alarm"])
        or (e["kind"] == "device.status" and e["state"] in ("sensor_fault", "low_battery"))
    ]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_the_cold_pallet_excursion_is_raised_and_closed_in_scenario_time(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """The platform assigns the 2-8 °C profile to the cold pallet's SmartLabel (by command)
    and the parcel profile to the parcels' SmartLabels (by config); the door gateway, on the
    world's clock, warns of the pallet's warming, opens the excursion when it passes 8 °C on
    the dock (t = 780 s) and closes it when it is cold again (t = 1320 s), alarms on the
    dropped parcel's shock with its peak, and raises nothing else the ground truth does not
    list."""
    scenario = load_scenario("cross-dock")
    truth = scenario.ground_truth
    (excursion,) = truth.excursions
    (warning,) = truth.warnings
    pallet = next(i for i in scenario.items if i.id == excursion.item)
    label = next(t for t in pallet.tags if isinstance(t, SmartLabelTag))
    tag = smartlabel_tag_id(label.label_id)
    parcels = {
        smartlabel_tag_id(t.label_id): i.id
        for i in scenario.items
        if i.kind == "parcel"
        for t in i.tags
        if isinstance(t, SmartLabelTag)
    }
    async with (
        subscribe(mosquitto, "tagrelay/v1/gw-door-03/#") as sub,
        simulation(tmp_path, mosquitto, "cross-dock", "--speed", "20") as (where, _),
    ):
        config = Path(where["gateway_configs"]["gw-door-03"])
        assign_in_config(config, dict.fromkeys(parcels, "parcel"))
        with gateway_process(config, tmp_path / "gw-door-03.log") as proc:
            await sub.wait_until(
                lambda m: any(x.topic.endswith("/status") for x in m), timeout_s=START_TIMEOUT_S
            )
            command = {"id": "assign-1", "profile": "pharma-2-8", "subjects": [tag]}
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as platform:
                await platform.publish(
                    "tagrelay/v1/gw-door-03/cmd/profiles/assign", json.dumps(command), qos=1
                )

            def phases(_: object) -> list[dict[str, Any]]:
                return [
                    e
                    for e in sub.events()
                    if e["kind"] == "condition.excursion" and e["source"]["device"] == tag
                ]

            await sub.wait_until(
                lambda m: any(e["close_reason"] == "returned" for e in phases(m)), timeout_s=200
            )
            assert proc.poll() is None, (tmp_path / "gw-door-03.log").read_text()
    start = datetime.fromisoformat(where["start"])

    def at(e: dict[str, Any], field: str = "time") -> float:
        return (datetime.fromisoformat(e[field]) - start).total_seconds()

    excursions = phases(None)
    # Exactly one open and one close: the label is heard both by advert and by the serial
    # reader, whose copy of a reading arrives late and moves the crossing by milliseconds;
    # that corrects the start in place and never supersedes the excursion.
    assert [e["phase"] for e in excursions if e["phase"] != "update"] == ["open", "close"], [
        (e["phase"], e["close_reason"], e["start"]) for e in excursions
    ]
    opened, closed = (e for e in excursions if e["phase"] != "update")
    assert closed["close_reason"] == "returned"
    assert {e["excursion_id"] for e in excursions} == {opened["excursion_id"]}
    assert opened["limit"] == {
        "quantity": "temperature_c",
        "bound": "high",
        "value": 8.0,
        "beyond_at_threshold": False,
    }
    period_s = 30  # the pallet label's reporting interval: the truth within one of them
    assert abs(at(closed, "start") - excursion.start_s) <= period_s, at(closed, "start")
    assert abs(at(closed, "end") - excursion.end_s) <= period_s, at(closed, "end")
    # Reported (the reading that opened / closed it) within one interval after the truth; the
    # close after the profile's hysteresis (back below 8 - 0.3 °C on the world's curve).
    assert 0 <= at(opened) - excursion.start_s <= period_s, at(opened)
    (high,) = (lim for lim in PRESETS["pharma-2-8"].temperature_c if lim.name == "high")
    world = World(scenario)
    back_s = next(
        t
        for t in range(int(excursion.end_s), int(scenario.duration_s))
        if world.sensor_value(pallet.id, "temperature_c", t) <= 8.0 - high.hysteresis
    )
    assert 0 <= at(closed) - back_s <= period_s, (at(closed), back_s)
    assert closed["time_beyond_s"] == pytest.approx(
        excursion.end_s - excursion.start_s, abs=period_s
    )
    assert closed["max"] > 11.0
    # MKT of the monitoring period (from the first reading under the profile to the closing
    # one), by the formula over the world's curve (noise-free for this pallet) sampled every
    # second: the gateway integrates 10-30 s readings linearly, which on this piecewise-linear
    # curve differs by a few hundredths of a degree at most (0.05 °C allowed).
    period = (at(closed, "period_start"), at(closed))
    assert 0 <= period[0] < excursion.start_s, period
    weights = [
        math.exp(-10_000.0 / (world.sensor_value(pallet.id, "temperature_c", t) + 273.15))
        for t in range(math.ceil(period[0]), math.floor(period[1]) + 1)
    ]
    expected_mkt = -10_000.0 / math.log(sum(weights) / len(weights)) - 273.15
    assert closed["mkt_c"] == pytest.approx(expected_mkt, abs=0.05), (period, expected_mkt)
    # The dropped parcel's shock alarms once, with its peak (the label reports mg).
    (shock_truth,) = truth.shocks
    spec = next(s for s in scenario.shocks if s.item == shock_truth.item)
    shocks = [e for e in alarms(sub.events()) if e["kind"] == "condition.shock"]
    assert [parcels[e["source"]["device"]] for e in shocks] == [shock_truth.item]
    assert shocks[0]["peak_g"] == pytest.approx(math.hypot(*spec.peak_g), abs=0.01)
    assert abs(at(shocks[0]) - shock_truth.t_s) < 1.0
    # The warming is warned of once, by the time the truth says.
    warnings = [e for e in alarms(sub.events()) if e["kind"] == "condition.warning"]
    raised = [e for e in warnings if e["phase"] == "raised"]
    assert [(e["source"]["device"], e["limit"]["bound"]) for e in raised] == [(tag, "high")]
    assert at(raised[0]) <= warning.by_s, at(raised[0])
    # Nothing else alarms: no other subject's excursion, warning, shock alarm or sensor fault.
    others = [
        e
        for e in alarms(sub.events())
        if e["source"]["device"] != tag and e["kind"] != "condition.shock"
    ]
    assert others == []
    assert {e["kind"] for e in alarms(sub.events()) if e["source"]["device"] == tag} == {
        "condition.excursion",
        "condition.warning",
    }
    print(
        f"cross-dock e2e: warning lead {excursion.start_s - at(raised[0]):.0f} s; "
        f"open reported {at(opened) - excursion.start_s:+.1f} s, start "
        f"{at(closed, 'start') - excursion.start_s:+.1f} s; close reported "
        f"{at(closed) - back_s:+.1f} s after the hysteresis, end "
        f"{at(closed, 'end') - excursion.end_s:+.1f} s; MKT {closed['mkt_c']:.3f} °C "
        f"(formula {expected_mkt:.3f} °C over {period[0]:.0f}..{period[1]:.0f} s)"
    )
