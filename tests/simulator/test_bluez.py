"""The fake BlueZ seen from a plain D-Bus client: what bluetoothd would answer and signal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.bluez import FakeBlueZ, PrivateBus, add_match, device_path, normalise_uuid

ADAPTER = "/org/bluez/hci0"


class Client:
    """A D-Bus client that records the signals org.bluez sends."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.signals: list[Message] = []
        self._changed = asyncio.Event()
        bus.add_message_handler(self._on_message)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is MessageType.SIGNAL and msg.interface != "org.freedesktop.DBus":
            self.signals.append(msg)
            self._changed.set()

    async def wait_signals(self, member: str, count: int, timeout_s: float = 10.0) -> list[Message]:
        async with asyncio.timeout(timeout_s):
            while len(found := [s for s in self.signals if s.member == member]) < count:
                self._changed.clear()
                await self._changed.wait()
        return found

    async def call(
        self,
        member: str,
        interface: str = "org.bluez.Adapter1",
        path: str = ADAPTER,
        signature: str = "",
        body: list[Any] | None = None,
    ) -> Message:
        reply = await self.bus.call(
            Message(
                destination="org.bluez",
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=body or [],
            )
        )
        assert reply is not None
        return reply


@pytest.fixture
async def client(private_bus: PrivateBus, bluez: FakeBlueZ) -> AsyncIterator[Client]:
    bus = await MessageBus(bus_address=private_bus.address).connect()
    try:
        await add_match(bus, "type='signal',sender='org.bluez'")
        yield Client(bus)
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


async def test_private_bus_is_stopped_by_pid() -> None:
    with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as workdir:
        async with PrivateBus(Path(workdir)) as bus:
            pid = bus.pid
            assert bus.address.startswith("unix:path=")
            os.kill(pid, 0)  # running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_managed_objects_show_a_central_powered_adapter(client: Client) -> None:
    reply = await client.call("GetManagedObjects", "org.freedesktop.DBus.ObjectManager", "/")
    (objects,) = reply.body
    adapter = objects[ADAPTER]
    assert "central" in adapter["org.bluez.Adapter1"]["Roles"].value
    assert adapter["org.bluez.Adapter1"]["Powered"].value is True
    assert adapter["org.bluez.Adapter1"]["Address"].value
    assert adapter["org.bluez.AdvertisementMonitorManager1"]["SupportedMonitorTypes"].value == [
        "or_patterns"
    ]


async def test_discovery_sessions_like_bluetoothd(client: Client, bluez: FakeBlueZ) -> None:
    reply = await client.call("StopDiscovery")
    assert reply.error_name == "org.bluez.Error.Failed"
    assert reply.body == ["No discovery started"]
    assert (await client.call("StartDiscovery")).message_type is MessageType.METHOD_RETURN
    assert bluez.discovering()
    (changed,) = await client.wait_signals("PropertiesChanged", 1)
    assert changed.body[1]["Discovering"].value is True
    assert (await client.call("StartDiscovery")).error_name == "org.bluez.Error.InProgress"
    assert (await client.call("StopDiscovery")).message_type is MessageType.METHOD_RETURN
    assert not bluez.discovering()
    bluez.refuse_start_discovery(2)
    for _ in range(2):
        assert (await client.call("StartDiscovery")).error_name == "org.bluez.Error.InProgress"
    assert (await client.call("StartDiscovery")).message_type is MessageType.METHOD_RETURN
    assert bluez.counters["refused_in_progress"] == 2


async def test_devices_appear_only_while_discovering(client: Client, bluez: FakeBlueZ) -> None:
    address = "C1:00:00:00:00:01"
    await bluez.upsert_device(address, rssi=-70, manufacturer_data={0x0499: b"\x05\x01"})
    assert bluez.counters["adverts_sent"] == 0
    await client.call("StartDiscovery")
    await bluez.upsert_device(
        address,
        rssi=-69,
        service_data={"feaa": b"\x10\x00"},
        name="tag-1",
        tx_power=4,
        uuids=["feaa"],
    )
    (added,) = await client.wait_signals("InterfacesAdded", 1)
    path, interfaces = added.body
    assert path == device_path("hci0", address)
    props = interfaces["org.bluez.Device1"]
    assert props["Address"].value == address
    assert props["Adapter"].value == ADAPTER
    assert props["Alias"].value == "tag-1"
    assert props["Name"].value == "tag-1"
    assert props["UUIDs"].value == [normalise_uuid("feaa")]
    assert props["ServiceData"].signature == "a{sv}"
    assert props["RSSI"].value == -69
    assert props["TxPower"].value == 4
    assert props["ManufacturerData"].signature == "a{qv}"
    assert props["ManufacturerData"].value[0x0499].value == b"\x05\x01"
    assert props["ServiceData"].value[normalise_uuid("feaa")].value == b"\x10\x00"
    # An RSSI-only advert is its own PropertiesChanged with just the RSSI.
    await bluez.upsert_device(address, rssi=-50)
    changes = await client.wait_signals("PropertiesChanged", 2)
    assert changes[-1].path == path
    assert set(changes[-1].body[1]) == {"RSSI"}
    await bluez.remove_device(address)
    (removed,) = await client.wait_signals("InterfacesRemoved", 1)
    assert removed.body == [path, ["org.bluez.Device1"]]


async def test_restart_forgets_sessions_and_comes_back(client: Client, bluez: FakeBlueZ) -> None:
    await client.call("StartDiscovery")
    await bluez.restart(down_s=0.05)
    assert bluez.counters["restarts"] == 1
    assert not bluez.discovering()
    reply = await client.call("StopDiscovery")
    assert reply.body == ["No discovery started"]
    added = await client.wait_signals("InterfacesAdded", 1)
    assert added[0].body[0] == ADAPTER


async def test_power_off_ends_discovery_and_drops_devices(client: Client, bluez: FakeBlueZ) -> None:
    await client.call("StartDiscovery")
    await bluez.upsert_device("C1:00:00:00:00:02", rssi=-60)
    await client.wait_signals("InterfacesAdded", 1)
    reply = await client.call(
        "Set",
        "org.freedesktop.DBus.Properties",
        signature="ssv",
        body=["org.bluez.Adapter1", "Powered", Variant("b", False)],
    )
    assert reply.message_type is MessageType.METHOD_RETURN
    assert not bluez.powered()
    assert not bluez.discovering()
    await client.wait_signals("InterfacesRemoved", 1)
    assert (await client.call("StartDiscovery")).error_name == "org.bluez.Error.NotReady"


async def test_remove_adapter(client: Client, bluez: FakeBlueZ) -> None:
    await bluez.remove_adapter("hci0")
    (removed,) = await client.wait_signals("InterfacesRemoved", 1)
    assert removed.body[0] == ADAPTER
    reply = await client.call("GetManagedObjects", "org.freedesktop.DBus.ObjectManager", "/")
    assert reply.body == [{}]


async def test_a_client_leaving_ends_its_session(private_bus: PrivateBus, bluez: FakeBlueZ) -> None:
    bus = await MessageBus(bus_address=private_bus.address).connect()
    await Client(bus).call("StartDiscovery")
    assert bluez.discovering()
    bus.disconnect()
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
    await bluez.wait_until(lambda: not bluez.discovering())


async def test_burst_of_a_thousand_devices_keeps_the_connection(
    client: Client, bluez: FakeBlueZ
) -> None:
    await client.call("StartDiscovery")
    count = 1000
    await asyncio.gather(
        *(
            bluez.upsert_device(
                f"C2:00:00:00:{i // 256:02X}:{i % 256:02X}",
                rssi=-50,
                manufacturer_data={0x0499: bytes(24)},
                service_data={"feaa": bytes(18)},
            )
            for i in range(count)
        )
    )
    added = await client.wait_signals("InterfacesAdded", count, timeout_s=30.0)
    assert len({s.body[0] for s in added}) == count
    assert bluez.running
    assert bluez.counters["adverts_sent"] == count


CALLS = st.tuples(
    st.sampled_from(
        [
            ("org.bluez.Adapter1", "StartDiscovery"),
            ("org.bluez.Adapter1", "StopDiscovery"),
            ("org.bluez.Adapter1", "SetDiscoveryFilter"),
            ("org.bluez.Adapter1", "RemoveDevice"),
            ("org.bluez.Adapter1", "Bogus"),
            ("org.bluez.AdvertisementMonitorManager1", "RegisterMonitor"),
            ("org.bluez.AdvertisementMonitorManager1", "UnregisterMonitor"),
            ("org.freedesktop.DBus.Properties", "Get"),
            ("org.freedesktop.DBus.Properties", "Set"),
            ("org.freedesktop.DBus.Properties", "GetAll"),
        ]
    ),
    st.sampled_from([ADAPTER, "/", "/org/bluez/hci9", f"{ADAPTER}/dev_00_00_00_00_00_01"]),
    st.sampled_from(
        [
            ("", []),
            ("s", ["org.bluez.Adapter1"]),
            ("ss", ["org.bluez.Adapter1", "Powered"]),
            ("ssv", ["org.bluez.Adapter1", "Powered", Variant("s", "yes")]),
            ("ssv", ["org.bluez.Adapter1", "Powered", Variant("b", True)]),
            ("ssv", ["org.bluez.Adapter1", "Powered", Variant("b", False)]),
            ("o", ["/org/bleak/1/2"]),
            ("a{sv}", [{"Transport": Variant("s", "le")}]),
            ("u", [7]),
        ]
    ),
)


async def _fuzz_round(calls: list[Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as workdir:
        async with PrivateBus(Path(workdir)) as bus, FakeBlueZ(bus.address) as bluez:
            conn = await MessageBus(bus_address=bus.address).connect()
            try:
                client = Client(conn)
                for (interface, member), path, (signature, body) in calls:
                    reply = await client.call(member, interface, path, signature, body)
                    # Every call gets an answer: a return or a D-Bus error, never silence.
                    assert reply.message_type in (MessageType.METHOD_RETURN, MessageType.ERROR)
                # Whatever happened, the service still answers and its state is coherent.
                reply = await client.call(
                    "GetManagedObjects", "org.freedesktop.DBus.ObjectManager", "/"
                )
                assert reply.message_type is MessageType.METHOD_RETURN
                assert bluez.running
                # Our client is the only one: the adapter discovers exactly when it holds a
                # session, which StopDiscovery then ends.
                discovering = bluez.discovering()
                stop = await client.call("StopDiscovery")
                assert (stop.message_type is MessageType.METHOD_RETURN) == discovering
                assert not bluez.discovering()
            finally:
                conn.disconnect()
                await conn.wait_for_disconnect()  # type: ignore[no-untyped-call]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(CALLS, max_size=12))
def test_fuzzed_method_calls_always_get_an_answer(calls: list[Any]) -> None:
    asyncio.run(_fuzz_round(calls))


async def test_runs_as_its_own_process_and_generates_traffic(private_bus: PrivateBus) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator.bluez",
        "--bus-address",
        private_bus.address,
        "--tags",
        "3",
        "--rate-hz",
        "20",
        "--duration-s",
        "0.5",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    bus = await MessageBus(bus_address=private_bus.address).connect()
    try:
        assert json.loads(await process.stdout.readline()) == {"serving": True}
        await add_match(bus, "type='signal',sender='org.bluez'")
        client = Client(bus)
        await client.call("StartDiscovery")
        assert json.loads(await process.stdout.readline())["ready"] is True
        summary = json.loads(await asyncio.wait_for(process.stdout.readline(), 15.0))
        assert summary["offered"] >= 3
        added = await client.wait_signals("InterfacesAdded", 3)
        assert len({s.body[0] for s in added}) == 3
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        if process.returncode is None:
            process.terminate()
        assert await asyncio.wait_for(process.wait(), 10.0) == 0
        await process.stdout.read()
