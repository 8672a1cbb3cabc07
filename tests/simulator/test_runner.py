"""The runner against the real simulated devices: fake BlueZ read back over D-Bus, ptys read
with pyserial, faults applied on schedule, and the drive loop at many times real time."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import serial
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from protocols.ble import decode_advertisement
from protocols.gps import GpsStreamDecoder, PositionFix
from protocols.smartlabel import (
    Ack,
    Environment,
    HistoryBatch,
    Shock,
    Status,
    StreamDecoder,
    build,
)
from simulator.runner import ScenarioRunner
from simulator.world import AdapterRemoved, BrokerOutage, PowerCut, Scenario, load_scenario
from simulator.world.geo import GeoPoint, distance_m

#: How long the tests wait for bytes or signals from the devices (they arrive within ms).
WAIT_S = 10.0


@pytest.fixture
def workdir() -> Any:
    # Short path: a unix socket path must stay under 108 bytes.
    with tempfile.TemporaryDirectory(prefix="tr-sim-") as d:
        yield Path(d)


@pytest.fixture
def cross_dock() -> Scenario:
    return load_scenario("cross-dock")


async def call(bus: MessageBus, path: str, interface: str, member: str, **kw: Any) -> Message:
    reply = await bus.call(
        Message(destination="org.bluez", path=path, interface=interface, member=member, **kw)
    )
    assert reply is not None
    assert reply.message_type is MessageType.METHOD_RETURN, reply.body
    return reply


@pytest.fixture
async def stepped(cross_dock: Scenario, workdir: Path) -> AsyncIterator[ScenarioRunner]:
    async with ScenarioRunner(cross_dock, workdir, speed=60.0, drive=False) as runner:
        yield runner


@pytest.fixture
async def quiet(cross_dock: Scenario, workdir: Path) -> AsyncIterator[ScenarioRunner]:
    """Cross-dock without its fault schedule (no bluetoothd restart in the middle)."""
    scenario = cross_dock.model_copy(update={"faults": ()})
    async with ScenarioRunner(scenario, workdir, speed=60.0, drive=False) as runner:
        yield runner


async def managed_devices(bus: MessageBus, adapter: str) -> dict[str, dict[str, Any]]:
    reply = await call(bus, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
    out: dict[str, dict[str, Any]] = {}
    for path, ifaces in reply.body[0].items():
        dev = ifaces.get("org.bluez.Device1")
        if dev is not None and path.startswith(f"/org/bluez/{adapter}/"):
            out[dev["Address"].value] = {k: v.value for k, v in dev.items()}
    return out


async def test_endpoints_name_every_gateway_device(stepped: ScenarioRunner) -> None:
    ends = stepped.endpoints
    assert ends.dbus_address.startswith("unix:path=")
    door3 = ends.gateway("gw-door-03")
    assert (door3.adapter, door3.door, door3.gps_port) == ("hci0", "D3", None)
    assert door3.smartlabel_port is not None
    assert door3.smartlabel_port.is_symlink()
    trailer = ends.gateway("gw-trailer-17")
    assert trailer.vehicle == "TRL-17"
    assert trailer.gps_port is not None
    assert trailer.gps_port.is_symlink()
    assert ends.to_json()["env"] == {"DBUS_SYSTEM_BUS_ADDRESS": ends.dbus_address}


async def test_tags_in_range_appear_on_the_fake_bluez(quiet: ScenarioRunner) -> None:
    stepped = quiet
    bus = await MessageBus(bus_address=stepped.endpoints.dbus_address).connect()
    try:
        await call(bus, "/org/bluez/hci0", "org.bluez.Adapter1", "StartDiscovery")
        snap = await stepped.step(200.0)  # trailer docked at door 3, nothing unloaded yet
        devices = await managed_devices(bus, "hci0")
        heard = snap.heard_by("gw-door-03")
        assert set(devices) == set(heard)
        assert len(devices) == len(stepped.world.tags) == 42  # 41 items, the pallet has two
        for address, props in devices.items():
            assert props["RSSI"] == heard[address].rssi_dbm
            manufacturer = {k: v.value for k, v in props.get("ManufacturerData", {}).items()}
            service = {k: v.value for k, v in props.get("ServiceData", {}).items()}
            adverts = decode_advertisement(manufacturer, service)
            assert len(adverts) == 1, props
        # Adapters nobody scans on announce nothing, as in BlueZ.
        assert await managed_devices(bus, "hci1") == {}
        # Once the trailer has gone, BlueZ forgets the two parcels left on it.
        await stepped.step(1500.0)
        await stepped.step(1800.0)
        after = await managed_devices(bus, "hci0")
        (handoff,) = stepped.scenario.ground_truth.handoffs
        missing = {r.address for r in stepped.world.tags if r.item in set(handoff.missing)}
        assert missing
        assert not missing & set(after)
        assert stepped.counters["devices_forgotten"] >= len(missing)
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


async def read_until(
    port: serial.Serial, feed: Callable[[bytes], bool], timeout_s: float = WAIT_S
) -> None:
    """Read the pty without blocking the loop until ``feed`` says it has seen enough."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        while True:
            data = await loop.run_in_executor(None, port.read, 4096)
            if data and feed(data):
                return


async def test_smartlabel_frames_arrive_on_the_reader_pty_and_acks_stop_resends(
    stepped: ScenarioRunner,
) -> None:
    door3 = stepped.endpoints.gateway("gw-door-03")
    assert door3.smartlabel_port is not None
    reader = stepped.devices["gw-door-03"].reader
    assert reader is not None
    pallet_label = next(
        r.tag.label_id
        for r in stepped.world.tags
        if r.item == "PAL-0001" and r.tag.format == "smartlabel"
    )
    decoder = StreamDecoder()
    got: list[Any] = []

    def feed(data: bytes) -> bool:
        got.extend(m for m in decoder.feed(data) if not hasattr(m, "reason"))
        # Every frame the reader holds has come at least once (a frame lost on the way comes
        # again as a resend, half a second later in a fast world).
        complete = len({(m.label_id, m.seq) for m in got}) >= reader.unacked
        return complete and any(
            isinstance(m, Environment) and m.label_id == pallet_label for m in got
        )

    with serial.Serial(str(door3.smartlabel_port), timeout=0.2) as port:
        await stepped.step(1000.0)  # the pallet is on the dock, inside its excursion
        await read_until(port, feed)
        env = next(m for m in got if isinstance(m, Environment) and m.label_id == pallet_label)
        assert env.temperature_c == stepped.world.sensor_value("PAL-0001", "temperature_c", 990)
        assert env.temperature_c is not None
        assert env.temperature_c > 8.0
        assert any(isinstance(m, Status) for m in got)
        # ACK everything: the reader records it and has nothing left to resend.
        for n, m in enumerate(got, 1):
            port.write(build(Ack(m.label_id, n, 0, m.seq)))
        await reader.wait_for(lambda: reader.unacked == 0)
        assert {(m.label_id, m.seq) for m in got} <= reader.acked


async def test_labels_replay_what_they_logged_out_of_range(quiet: ScenarioRunner) -> None:
    door3 = quiet.endpoints.gateway("gw-door-03")
    assert door3.smartlabel_port is not None
    decoder = StreamDecoder()
    got: list[Any] = []

    def feed(data: bytes) -> bool:
        got.extend(decoder.feed(data))
        return any(isinstance(m, HistoryBatch) for m in got)

    with serial.Serial(str(door3.smartlabel_port), timeout=0.2) as port:
        for t in range(0, 200, 10):  # the trailer drives in and docks; door 3 starts hearing
            await quiet.step(float(t))
        await read_until(port, feed)
    batch = next(m for m in got if isinstance(m, HistoryBatch))
    item = next(
        r.item for r in quiet.world.tags if getattr(r.tag, "label_id", None) == batch.label_id
    )
    # Readings from before door 3 could hear the label, each with its own time and value.
    assert len(batch.readings) >= 2
    for reading in batch.readings:
        t_s = reading.time - quiet.world.start.timestamp()
        assert t_s < 200
        assert reading.temperature_c == quiet.world.sensor_value(item, "temperature_c", t_s)
    assert quiet.counters["history_batches"] >= 1


async def test_the_60g_drop_is_relayed_as_a_shock(stepped: ScenarioRunner) -> None:
    (shock,) = stepped.scenario.shocks
    label = next(r for r in stepped.world.tags if r.item == shock.item)
    assert label.tag.format == "smartlabel"
    door3 = stepped.endpoints.gateway("gw-door-03")
    assert door3.smartlabel_port is not None
    decoder = StreamDecoder()
    shocks: list[Shock] = []

    def feed(data: bytes) -> bool:
        shocks.extend(m for m in decoder.feed(data) if isinstance(m, Shock))
        return bool(shocks)

    with serial.Serial(str(door3.smartlabel_port), timeout=0.2) as port:
        await stepped.step(shock.t_s - 1)
        await stepped.step(shock.t_s)
        await read_until(port, feed)
    # The whole 60 g drop arrives (the link carries 32-bit mg), every axis as scripted.
    assert shock.peak_g == (4.5, -3.0, 60.0)
    peaks = (shocks[0].peak_x_mg, shocks[0].peak_y_mg, shocks[0].peak_z_mg)
    assert peaks == (4_500, -3_000, 60_000)
    assert shocks[0].label_time == int(stepped.world.when(shock.t_s).timestamp())


async def test_gps_pty_reports_the_trailer_position(stepped: ScenarioRunner) -> None:
    trailer = stepped.endpoints.gateway("gw-trailer-17")
    assert trailer.gps_port is not None
    decoder = GpsStreamDecoder()
    fixes: list[PositionFix] = []

    def feed(data: bytes) -> bool:
        fixes.extend(f for f in decoder.feed(data) if isinstance(f, PositionFix))
        return any(f.lat is not None for f in fixes)

    with serial.Serial(str(trailer.gps_port), timeout=0.2) as port:
        snap = await stepped.step(60.0)  # driving in from the gate
        await read_until(port, feed)
    fix = next(f for f in fixes if f.lat is not None and f.lon is not None)
    assert fix.lat is not None
    assert fix.lon is not None
    truth = snap.vehicles["TRL-17"].position
    assert distance_m(truth, type(truth)(fix.lat, fix.lon)) < 50.0


async def test_van_gps_speaks_ubx_and_follows_the_route(workdir: Path) -> None:
    scenario = load_scenario("delivery-route").model_copy(update={"faults": ()})
    async with ScenarioRunner(scenario, workdir, speed=60.0, drive=False) as runner:
        van = runner.endpoints.gateway("gw-van-17")
        assert van.gps_ubx
        assert van.gps_port is not None
        decoder = GpsStreamDecoder()
        fixes: list[PositionFix] = []

        def feed(data: bytes) -> bool:
            fixes.extend(f for f in decoder.feed(data) if isinstance(f, PositionFix))
            return any(f.format == "ubx-nav-pvt" for f in fixes)

        stop = scenario.routes[0].stops[2]
        with serial.Serial(str(van.gps_port), timeout=0.2) as port:
            snap = await runner.step((stop.arrive_s + stop.depart_s) / 2)
            await read_until(port, feed)
        pvt = next(f for f in fixes if f.format == "ubx-nav-pvt")
        assert pvt.lat is not None
        assert pvt.lon is not None
        assert distance_m(GeoPoint(stop.lat, stop.lon), GeoPoint(pvt.lat, pvt.lon)) < stop.radius_m
        assert snap.vehicles["VAN-17"].at_stop == stop.id
        assert pvt.time is not None
        assert abs((pvt.time - snap.when).total_seconds()) < 5.0


async def test_faults_fall_due_in_order(stepped: ScenarioRunner) -> None:
    port = stepped.devices["gw-door-03"].reader_port
    assert port is not None
    bluez = stepped.bluez
    assert bluez is not None
    bus = await MessageBus(bus_address=stepped.endpoints.dbus_address).connect()
    try:
        await stepped.step(1.0)
        # discovery_refused: the first StartDiscovery is answered InProgress, the next works.
        start = Message(
            destination="org.bluez",
            path="/org/bluez/hci0",
            interface="org.bluez.Adapter1",
            member="StartDiscovery",
        )
        refused = await bus.call(start)
        assert refused is not None
        assert refused.error_name == "org.bluez.Error.InProgress"
        await call(bus, "/org/bluez/hci0", "org.bluez.Adapter1", "StartDiscovery")
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
    await stepped.step(1099.0)
    assert [f.kind for f in stepped.fault_log] == [
        "discovery_refused",
        "garbage",
        "corrupt_crc",
        "bluetoothd_restart",
    ]
    assert all(f.applied for f in stepped.fault_log)
    # bluetoothd_restart (2 simulated s at speed 60): the service left the bus and came back.
    await bluez.wait_until(lambda: bluez.counters["restarts"] == 1 and bluez.running, WAIT_S)
    await stepped.step(1100.0)  # unplugged for 10 s
    assert not port.link.exists()
    await stepped.step(1109.0)
    assert not port.link.exists()
    await stepped.step(1111.0)
    assert port.link.exists()
    assert port.replugs == 1
    assert port.device is not None
    assert str(port.link.readlink()) == port.device
    await stepped.step(1300.0)
    outage = stepped.fault_log[-1]
    assert (outage.kind, outage.applied, outage.detail) == (
        "broker_outage",
        False,
        "no broker hook given",
    )


async def test_adapter_removed_takes_the_gateways_adapter_away(
    cross_dock: Scenario, workdir: Path
) -> None:
    scenario = cross_dock.model_copy(
        update={"faults": (AdapterRemoved(t_s=300, gateway="gw-door-03"),)}
    )
    async with ScenarioRunner(scenario, workdir, speed=60.0, drive=False) as runner:
        bus = await MessageBus(bus_address=runner.endpoints.dbus_address).connect()
        try:
            await call(bus, "/org/bluez/hci0", "org.bluez.Adapter1", "StartDiscovery")
            await runner.step(299.0)
            assert await managed_devices(bus, "hci0")
            await runner.step(300.0)
            reply = await call(bus, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
            paths = set(reply.body[0])
            assert "/org/bluez/hci0" not in paths
            assert not any(p.startswith("/org/bluez/hci0/") for p in paths)
            assert "/org/bluez/hci1" in paths  # the neighbours' adapters stay
            adverts = runner.counters["adverts"]
            await runner.step(400.0)  # the world goes on; nothing more is pushed to hci0
            assert runner.counters["adverts"] > adverts
            assert not any(
                p.startswith("/org/bluez/hci0")
                for p in (
                    await call(bus, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
                ).body[0]
            )
        finally:
            bus.disconnect()
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
    assert [(f.kind, f.applied) for f in runner.fault_log] == [("adapter_removed", True)]


async def test_power_cut_kills_the_given_pid_and_broker_hook_runs(
    cross_dock: Scenario, workdir: Path
) -> None:
    scenario = cross_dock.model_copy(
        update={"faults": (BrokerOutage(t_s=5, down_s=30), PowerCut(t_s=10))}
    )
    outages: list[float] = []

    async def outage(down_real_s: float) -> None:
        outages.append(down_real_s)

    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)"
    )
    try:
        async with ScenarioRunner(
            scenario,
            workdir,
            speed=10.0,
            drive=False,
            power_cut_pid=victim.pid,
            on_broker_outage=outage,
        ) as runner:
            await runner.step(9.0)
            assert victim.returncode is None
            await runner.step(10.0)
            async with asyncio.timeout(WAIT_S):
                assert await victim.wait() == -9
        assert outages == [3.0]  # 30 simulated seconds at speed 10
        assert [f.applied for f in runner.fault_log] == [True, True]
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()


async def test_drive_loop_runs_the_scenario_at_speed(cross_dock: Scenario, workdir: Path) -> None:
    async with ScenarioRunner(
        cross_dock, workdir, speed=600.0, duration_s=240.0, tick_real_s=0.02
    ) as runner:
        async with asyncio.timeout(WAIT_S):
            await runner.wait_finished()
        assert runner.sim_time_s == 240.0
        assert runner.counters["label_messages"] > 0
        # Nobody was scanning, but every advert was offered to the fake BlueZ.
        assert runner.counters["adverts"] > 0
        assert runner.bluez is not None
        assert runner.bluez.counters["adverts_offered"] == runner.counters["adverts"]
    # Leaving the context unplugs every device: the gateway sees them go.
    assert not (workdir / "dev" / "gw-door-03-smartlabel").exists()


def adverts_produced(runner: ScenarioRunner, until_s: float) -> int:
    """How many adverts the world produces up to ``until_s``: every tag in range at every
    advertising instant (each tag of cross-dock advertises once a second)."""
    assert {ref.tag.interval_s for ref in runner.world.tags} == {1.0}
    return sum(len(runner.world.sightings(float(k))) for k in range(int(until_s) + 1))


async def test_a_long_step_delivers_every_advert_in_between(
    cross_dock: Scenario, workdir: Path
) -> None:
    async with ScenarioRunner(cross_dock, workdir, drive=False) as runner:
        await runner.step(0.0)
        await runner.step(12.5)  # twelve advertising instants in one step
        assert runner.counters["adverts"] == adverts_produced(runner, 12.5)
        assert runner.counters["adverts"] > 12 * 40


@pytest.mark.parametrize("speed", [20.0, 60.0])
async def test_a_fast_world_thins_no_advert(
    cross_dock: Scenario, workdir: Path, speed: float
) -> None:
    # The trailer reverses in from t = 150 s: the door gateways hear its load appear.
    async with ScenarioRunner(
        cross_dock, workdir, speed=speed, start=None, duration_s=200.0
    ) as runner:
        async with asyncio.timeout(WAIT_S + 200.0 / speed):
            await runner.wait_finished()
        assert runner.counters["adverts"] == adverts_produced(runner, 200.0)
