"""A fake ``org.bluez`` on a private D-Bus bus: the BLE half of the simulator's hardware.

The gateway's BLE driver runs the real bleak BlueZ backend against this service, so everything
from the D-Bus signals to the detection callbacks is the code path of the field. It implements
what bleak uses: the ObjectManager on ``/`` (GetManagedObjects, InterfacesAdded / Removed), one
``Adapter1`` + ``AdvertisementMonitorManager1`` per adapter, and ``Device1`` objects whose
properties change as tags advertise. Like bluetoothd it only reports what the adapter hears:
devices are announced and updated while a discovery session is running (active scanning) or
while a registered advertisement monitor's or-patterns match them (passive scanning).

Faults: :meth:`FakeBlueZ.restart` (bluetoothd restarted: the service leaves the bus and comes
back without sessions, monitors or devices), :meth:`FakeBlueZ.remove_adapter`,
:meth:`FakeBlueZ.refuse_start_discovery` (``InProgress``) and :meth:`FakeBlueZ.jam_radio`
(discovery "runs" but nothing is heard until the adapter is power cycled).

Why raw message dispatch and not dbus-fast's ``ServiceInterface``: checked, and it cannot
express this fake without losing what it is for.

- Flow control. ``MessageBus.export`` / ``unexport`` send ``InterfacesAdded`` /
  ``InterfacesRemoved`` at once, and ``ServiceInterface.emit_properties_changed`` sends
  ``PropertiesChanged`` at once, all synchronously, with no point where the fake could wait.
  Hundreds of devices appearing, changing or going at once (a discovery start, a restart, a
  dock door full of tags) are exactly the bursts that hit dbus-fast's EAGAIN bug (see
  ``FLOW_SYNC_EVERY_MESSAGES``): every send has to go through :meth:`FakeBlueZ._flow`, which
  counts it and waits for a round trip to the daemon every so many messages.
- The caller. BlueZ keeps discovery sessions, discovery filters and advertisement monitors
  per client (the D-Bus sender) and drops them when the client leaves the bus. A
  ``ServiceInterface`` method receives its arguments only, never the message or its sender.
- BlueZ's own errors for a wrong call (``org.bluez.Error.*``) and
  objects that exist only while the adapter reports them are plainer to write as a dispatch
  on (path, interface, member) than as exported objects kept in step with the fake's state.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from foundation.lifecycle import TaskOwner
from simulator.bluez.bus import add_match, add_match_message

__all__ = [
    "FLOW_SYNC_EVERY_MESSAGES",
    "FakeBlueZ",
    "MonitorInfo",
    "device_path",
    "normalise_uuid",
]

_log = logging.getLogger(__name__)

BLUEZ_SERVICE: Final = "org.bluez"
_OBJECT_MANAGER: Final = "org.freedesktop.DBus.ObjectManager"
_PROPERTIES: Final = "org.freedesktop.DBus.Properties"
_ADAPTER: Final = "org.bluez.Adapter1"
_MONITOR_MANAGER: Final = "org.bluez.AdvertisementMonitorManager1"
_MONITOR: Final = "org.bluez.AdvertisementMonitor1"
_DEVICE: Final = "org.bluez.Device1"

_ERR_IN_PROGRESS: Final = "org.bluez.Error.InProgress"
_ERR_FAILED: Final = "org.bluez.Error.Failed"
_ERR_NOT_READY: Final = "org.bluez.Error.NotReady"
_ERR_DOES_NOT_EXIST: Final = "org.bluez.Error.DoesNotExist"
_ERR_ALREADY_EXISTS: Final = "org.bluez.Error.AlreadyExists"
_ERR_INVALID_ARGS: Final = "org.bluez.Error.InvalidArguments"

#: Flow control for our own sends. dbus-fast (5.x, like python-dbus-next before it) treats
#: EAGAIN from a full socket send buffer as a fatal error and closes the connection: its writer
#: calls ``sock.send`` directly when its queue looks empty although a partly written message is
#: still pending (https://github.com/altdesktop/python-dbus-next/issues/153, open; the same
#: ``_MessageWriter.write_callback`` is in dbus-fast's aio/message_bus.py). A burst of hundreds
#: of devices hits that. So before sending more than this many messages the fake waits for a
#: round trip to the daemon, which proves the daemon has read everything before it (concurrent
#: senders queue behind that wait). 64 small messages, even at the kernel's per-send overhead
#: of 1 to 2 KiB, stay below the default unix socket send buffer (~208 KiB). Real bluetoothd
#: does not pace itself (libdbus queues without limit); tests that need its unpaced bursts
#: send them from a plain connection.
FLOW_SYNC_EVERY_MESSAGES: Final = 64
#: The 16-bit UUIDs of the Bluetooth base UUID, as BlueZ spells them in ServiceData keys.
_BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"

#: AD types used to match advertisement-monitor or-patterns against a device's data.
_AD_COMPLETE_UUID16: Final = 0x03
_AD_COMPLETE_NAME: Final = 0x09
_AD_SERVICE_DATA_UUID16: Final = 0x16
_AD_SERVICE_DATA_UUID32: Final = 0x20
_AD_SERVICE_DATA_UUID128: Final = 0x21
_AD_MANUFACTURER: Final = 0xFF

OrPatternValue = tuple[int, int, bytes]

#: Argument signatures of the methods the fake implements; anything else is InvalidArgs, as
#: bluetoothd's D-Bus layer answers.
_SIGNATURES: Final = {
    (_ADAPTER, "StartDiscovery"): "",
    (_ADAPTER, "StopDiscovery"): "",
    (_ADAPTER, "SetDiscoveryFilter"): "a{sv}",
    (_ADAPTER, "GetDiscoveryFilters"): "",
    (_ADAPTER, "RemoveDevice"): "o",
    (_MONITOR_MANAGER, "RegisterMonitor"): "o",
    (_MONITOR_MANAGER, "UnregisterMonitor"): "o",
    (_PROPERTIES, "Get"): "ss",
    (_PROPERTIES, "Set"): "ssv",
    (_PROPERTIES, "GetAll"): "s",
    (_OBJECT_MANAGER, "GetManagedObjects"): "",
}


def normalise_uuid(uuid: str) -> str:
    """A service UUID as BlueZ reports it: full 128-bit, lower case ("feaa" -> "0000feaa-...")."""
    uuid = uuid.lower()
    if len(uuid) == 4:
        return f"0000{uuid}{_BASE_UUID_SUFFIX}"
    if len(uuid) == 8:
        return f"{uuid}{_BASE_UUID_SUFFIX}"
    return uuid


def device_path(adapter: str, address: str) -> str:
    """The object path BlueZ gives a device: ``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF``."""
    return f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"


@dataclass(frozen=True, slots=True)
class MonitorInfo:
    """An advertisement monitor a client registered (passive scanning)."""

    owner: str
    path: str
    patterns: tuple[OrPatternValue, ...]


@dataclass(slots=True)
class _Device:
    address: str
    adapter: str
    rssi: int | None = None
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    name: str | None = None
    tx_power: int | None = None
    uuids: tuple[str, ...] = ()
    #: InterfacesAdded has been sent since the service (re)started.
    announced: bool = False

    @property
    def path(self) -> str:
        return device_path(self.adapter, self.address)

    def properties(self) -> dict[str, Variant]:
        props: dict[str, Variant] = {
            "Address": Variant("s", self.address),
            "AddressType": Variant("s", "random"),
            "Alias": Variant("s", self.name or self.address.replace(":", "-")),
            "Adapter": Variant("o", f"/org/bluez/{self.adapter}"),
            "Paired": Variant("b", False),
            "Bonded": Variant("b", False),
            "Trusted": Variant("b", False),
            "Blocked": Variant("b", False),
            "LegacyPairing": Variant("b", False),
            "Connected": Variant("b", False),
            "ServicesResolved": Variant("b", False),
            "UUIDs": Variant("as", list(self.uuids)),
        }
        props.update(self.advertised())
        return props

    def advertised(self) -> dict[str, Variant]:
        props: dict[str, Variant] = {}
        if self.rssi is not None:
            props["RSSI"] = Variant("n", self.rssi)
        if self.name is not None:
            props["Name"] = Variant("s", self.name)
        if self.tx_power is not None:
            props["TxPower"] = Variant("n", self.tx_power)
        if self.manufacturer_data:
            props["ManufacturerData"] = _manufacturer_variant(self.manufacturer_data)
        if self.service_data:
            props["ServiceData"] = _service_data_variant(self.service_data)
        return props

    def ad_structures(self) -> list[tuple[int, bytes]]:
        """The device's data as AD structures, for matching monitor or-patterns."""
        ads: list[tuple[int, bytes]] = []
        for company, data in self.manufacturer_data.items():
            ads.append((_AD_MANUFACTURER, company.to_bytes(2, "little") + data))
        for uuid, data in self.service_data.items():
            if uuid.endswith(_BASE_UUID_SUFFIX) and uuid.startswith("0000"):
                ads.append((_AD_SERVICE_DATA_UUID16, bytes.fromhex(uuid[4:8])[::-1] + data))
            elif uuid.endswith(_BASE_UUID_SUFFIX):
                ads.append((_AD_SERVICE_DATA_UUID32, bytes.fromhex(uuid[:8])[::-1] + data))
            else:
                raw = bytes.fromhex(uuid.replace("-", ""))[::-1]
                ads.append((_AD_SERVICE_DATA_UUID128, raw + data))
        short = [u for u in self.uuids if u.endswith(_BASE_UUID_SUFFIX) and u.startswith("0000")]
        if short:
            ads.append((_AD_COMPLETE_UUID16, b"".join(bytes.fromhex(u[4:8])[::-1] for u in short)))
        if self.name:
            ads.append((_AD_COMPLETE_NAME, self.name.encode()))
        return ads


def _manufacturer_variant(data: Mapping[int, bytes]) -> Variant:
    return Variant("a{qv}", {k: Variant("ay", v) for k, v in data.items()})


def _service_data_variant(data: Mapping[str, bytes]) -> Variant:
    return Variant("a{sv}", {k: Variant("ay", v) for k, v in data.items()})


def _matches(patterns: Sequence[OrPatternValue], ads: Sequence[tuple[int, bytes]]) -> bool:
    for start, ad_type, content in patterns:
        for kind, value in ads:
            if kind == ad_type and value[start : start + len(content)] == content:
                return True
    return False


@dataclass(slots=True)
class _Monitor:
    info: MonitorInfo
    found: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Adapter:
    name: str
    address: str
    powered: bool = True
    #: Clients (unique bus names) with a running discovery session.
    sessions: set[str] = field(default_factory=set)
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Registered application roots (owner, path) and the monitors found under them.
    apps: set[tuple[str, str]] = field(default_factory=set)
    monitors: dict[tuple[str, str], _Monitor] = field(default_factory=dict)
    devices: dict[str, _Device] = field(default_factory=dict)
    refuse_start: int = 0
    jammed: bool = False

    @property
    def path(self) -> str:
        return f"/org/bluez/{self.name}"

    @property
    def discovering(self) -> bool:
        return bool(self.sessions)

    def properties(self) -> dict[str, dict[str, Variant]]:
        return {
            _ADAPTER: {
                "Address": Variant("s", self.address),
                "AddressType": Variant("s", "public"),
                "Name": Variant("s", f"tagrelay-sim-{self.name}"),
                "Alias": Variant("s", f"tagrelay-sim-{self.name}"),
                "Class": Variant("u", 0),
                "Powered": Variant("b", self.powered),
                "PowerState": Variant("s", "on" if self.powered else "off"),
                "Discoverable": Variant("b", False),
                "Pairable": Variant("b", False),
                "Discovering": Variant("b", self.discovering),
                "UUIDs": Variant("as", []),
                "Roles": Variant("as", ["central", "peripheral"]),
            },
            _MONITOR_MANAGER: {
                "SupportedMonitorTypes": Variant("as", ["or_patterns"]),
                "SupportedFeatures": Variant("as", []),
            },
        }


class FakeBlueZ:
    """``org.bluez`` on ``bus_address``: ``async with FakeBlueZ(bus.address) as bluez: ...``."""

    def __init__(self, bus_address: str, adapters: Sequence[str] = ("hci0",)) -> None:
        self._bus_address = bus_address
        self._adapters: dict[str, _Adapter] = {
            name: _Adapter(name, f"00:1A:7D:DA:71:{index:02X}")
            for index, name in enumerate(adapters)
        }
        self._bus: MessageBus | None = None
        self._closed = False
        self._owner = TaskOwner("fake-bluez")
        self._flow_lock = asyncio.Lock()
        self._unsynced = 0
        self._changed = asyncio.Event()
        #: Clients whose ObjectManager signals we already match (per connection of ours).
        self._watched_apps: set[str] = set()
        #: Event counts: adverts_offered, adverts_sent, start_discovery, stop_discovery,
        #: refused_in_progress, register_monitor, device_found, restarts, power_off, power_on...
        self.counters: collections.Counter[str] = collections.Counter()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._owner.start()
        try:
            await self._connect()
        except BaseException as exc:
            await self._owner.stop(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        try:
            await self._disconnect()
        finally:
            # Replies in progress finish (they are short); the bus is gone, so they fail fast.
            await self._owner.stop(exc_type, exc, tb, cancel=())

    async def _connect(self) -> None:
        bus = MessageBus(bus_address=self._bus_address, bus_type=BusType.SYSTEM)
        connected = False
        try:
            await bus.connect()
            connected = True
            bus.add_message_handler(self._on_message)
            # Clients that leave the bus lose their discovery sessions and monitors, as in BlueZ.
            await add_match(
                bus,
                "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'",
            )

            await bus.request_name(BLUEZ_SERVICE)
        except BaseException:
            bus.disconnect()
            if connected:  # one that never connected never finishes disconnecting
                with contextlib.suppress(Exception):
                    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            raise
        self._bus = bus
        self._unsynced = 0
        self._watched_apps.clear()
        for adapter in self._adapters.values():
            self._send_signal(
                "/",
                _OBJECT_MANAGER,
                "InterfacesAdded",
                "oa{sa{sv}}",
                [adapter.path, adapter.properties()],
            )
        self._notify()

    async def _disconnect(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        bus.disconnect()
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    # -- state seen by tests -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """The service is on the bus (False while "bluetoothd" is restarting)."""
        return self._bus is not None

    def discovering(self, adapter: str = "hci0") -> bool:
        return self._adapter(adapter).discovering

    def powered(self, adapter: str = "hci0") -> bool:
        return self._adapter(adapter).powered

    def monitors(self, adapter: str = "hci0") -> list[MonitorInfo]:
        return [m.info for m in self._adapter(adapter).monitors.values()]

    def scanning(self, adapter: str = "hci0") -> bool:
        """Someone is listening: a discovery session or an active advertisement monitor."""
        ad = self._adapter(adapter)
        return ad.discovering or bool(ad.monitors)

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is re-checked whenever the fake's state changes."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                event = self._changed
                await event.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _adapter(self, name: str) -> _Adapter:
        try:
            return self._adapters[name]
        except KeyError:
            raise ValueError(f"no adapter {name!r}") from None

    # -- devices -------------------------------------------------------------------------------

    async def upsert_device(
        self,
        address: str,
        *,
        adapter: str = "hci0",
        rssi: int | None = None,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        name: str | None = None,
        tx_power: int | None = None,
        uuids: Sequence[str] = (),
    ) -> None:
        """One advertisement heard from ``address``: creates or updates its Device1 object.

        Like BlueZ, manufacturer and service data accumulate per key, and only changed
        properties are signalled; an RSSI reading counts as a change every time (each advert
        carries one), so an RSSI-only advert reaches the client as its own PropertiesChanged.
        """
        ad = self._adapter(adapter)
        address = address.upper()
        device = ad.devices.get(address)
        if device is None:
            device = ad.devices[address] = _Device(address, adapter)
        changed: dict[str, Variant] = {}
        if rssi is not None:
            device.rssi = rssi
            changed["RSSI"] = Variant("n", rssi)
        if manufacturer_data:
            merged = {**device.manufacturer_data, **manufacturer_data}
            if merged != device.manufacturer_data:
                device.manufacturer_data = merged
                changed["ManufacturerData"] = _manufacturer_variant(merged)
        if service_data:
            merged_sd = {
                **device.service_data,
                **{normalise_uuid(k): v for k, v in service_data.items()},
            }
            if merged_sd != device.service_data:
                device.service_data = merged_sd
                changed["ServiceData"] = _service_data_variant(merged_sd)
        if name is not None and name != device.name:
            device.name = name
            changed["Name"] = Variant("s", name)
            changed["Alias"] = Variant("s", name)
        if tx_power is not None and tx_power != device.tx_power:
            device.tx_power = tx_power
            changed["TxPower"] = Variant("n", tx_power)
        new_uuids = tuple(normalise_uuid(u) for u in uuids)
        if new_uuids and new_uuids != device.uuids:
            device.uuids = new_uuids
            changed["UUIDs"] = Variant("as", list(new_uuids))
        self.counters["adverts_offered"] += 1
        await self._flow()
        if not self._heard(ad, device):
            return
        if not device.announced:
            device.announced = True
            self._send_signal(
                "/",
                _OBJECT_MANAGER,
                "InterfacesAdded",
                "oa{sa{sv}}",
                [device.path, {_DEVICE: device.properties()}],
            )
        elif changed:
            self._send_signal(
                device.path, _PROPERTIES, "PropertiesChanged", "sa{sv}as", [_DEVICE, changed, []]
            )
        else:
            return
        self.counters["adverts_sent"] += 1

    async def remove_device(self, address: str, *, adapter: str = "hci0") -> None:
        """The device is forgotten (BlueZ removes temporary devices it no longer hears)."""
        ad = self._adapter(adapter)
        device = ad.devices.pop(address.upper(), None)
        if device is None:
            return
        await self._flow()
        for monitor in ad.monitors.values():
            if device.address in monitor.found:
                monitor.found.discard(device.address)
                self._call_monitor(monitor.info, "DeviceLost", device.path)
        if device.announced:
            self._send_signal(
                "/", _OBJECT_MANAGER, "InterfacesRemoved", "oas", [device.path, [_DEVICE]]
            )

    def _heard(self, ad: _Adapter, device: _Device) -> bool:
        if self._bus is None or not ad.powered or ad.jammed:
            return False
        heard = ad.discovering
        if ad.monitors:
            ads = device.ad_structures()
            for monitor in ad.monitors.values():
                if _matches(monitor.info.patterns, ads):
                    heard = True
                    if device.address not in monitor.found:
                        monitor.found.add(device.address)
                        self.counters["device_found"] += 1
                        self._call_monitor(monitor.info, "DeviceFound", device.path)
        return heard

    # -- faults --------------------------------------------------------------------------------

    async def restart(self, down_s: float = 0.5) -> None:
        """bluetoothd restarts: the service leaves the bus, loses all sessions, monitors and
        devices, and comes back ``down_s`` later announcing its adapters again."""
        self.counters["restarts"] += 1
        await self._disconnect()
        for ad in self._adapters.values():
            ad.sessions.clear()
            ad.filters.clear()
            ad.apps.clear()
            ad.monitors.clear()
            ad.refuse_start = 0
            ad.jammed = False
            for device in ad.devices.values():
                device.announced = False
        self._notify()
        await asyncio.sleep(down_s)
        if not self._closed:  # a restart still running when the fake is shut down stays down
            await self._connect()

    async def remove_adapter(self, adapter: str) -> None:
        """The adapter is unplugged: its devices and then the adapter leave the object tree."""
        ad = self._adapter(adapter)
        del self._adapters[adapter]
        for device in list(ad.devices.values()):
            if device.announced:
                await self._flow()
                self._send_signal(
                    "/", _OBJECT_MANAGER, "InterfacesRemoved", "oas", [device.path, [_DEVICE]]
                )
        await self._flow()
        self._send_signal(
            "/",
            _OBJECT_MANAGER,
            "InterfacesRemoved",
            "oas",
            [ad.path, [_ADAPTER, _MONITOR_MANAGER]],
        )
        self._notify()

    def refuse_start_discovery(self, times: int = 1, *, adapter: str = "hci0") -> None:
        """The next ``times`` StartDiscovery calls fail with org.bluez.Error.InProgress."""
        self._adapter(adapter).refuse_start += times

    def drop_discovery_sessions(self, adapter: str = "hci0") -> None:
        """bluetoothd forgets every discovery session without leaving the bus (as after the
        kernel ended a scan under it): clients only notice that adverts stop."""
        ad = self._adapter(adapter)
        ad.sessions.clear()
        ad.filters.clear()
        self._adapter_changed(ad, {"Discovering": Variant("b", False)})

    def jam_radio(self, adapter: str = "hci0") -> None:
        """Discovery keeps "running" but nothing is heard until the adapter is power cycled
        (the controller wedged; restarting the scan does not help)."""
        self._adapter(adapter).jammed = True

    # -- sending -------------------------------------------------------------------------------

    def _send_signal(
        self, path: str, interface: str, member: str, sig: str, body: list[Any]
    ) -> None:
        bus = self._bus
        if bus is None or not bus.connected:
            return
        bus.send(Message.new_signal(path, interface, member, sig, body))
        self._unsynced += 1

    async def _flow(self) -> None:
        """Before sending more, wait until the daemon has read enough of what we sent (see
        FLOW_SYNC_EVERY_MESSAGES). Called before a send, so concurrent senders queue here."""
        while self._unsynced >= FLOW_SYNC_EVERY_MESSAGES:
            async with self._flow_lock:
                bus = self._bus
                if self._unsynced < FLOW_SYNC_EVERY_MESSAGES:
                    continue  # another sender synced while we waited for the lock
                if bus is None or not bus.connected:
                    self._unsynced = 0  # nothing in flight on a connection that is gone
                    return
                in_flight = self._unsynced
                with contextlib.suppress(Exception):
                    await bus.call(
                        Message(
                            destination="org.freedesktop.DBus",
                            path="/org/freedesktop/DBus",
                            interface="org.freedesktop.DBus.Peer",
                            member="Ping",
                        )
                    )
                # The reply proves the daemon read everything sent before the ping; what
                # synchronous handlers sent meanwhile is still in flight.
                self._unsynced = max(0, self._unsynced - in_flight)

    def _call_monitor(self, monitor: MonitorInfo, member: str, *args: str) -> None:
        """Call the client's AdvertisementMonitor1 method (no reply needed to go on)."""
        bus = self._bus
        if bus is None or not self._owner.running:
            return
        message = Message(
            destination=monitor.owner,
            path=monitor.path,
            interface=_MONITOR,
            member=member,
            signature="o" * len(args),
            body=list(args),
        )
        self._owner.spawn(self._call_quietly(bus, message), name="monitor-call", many=True)
        self._unsynced += 1

    @staticmethod
    async def _call_quietly(bus: MessageBus, message: Message) -> None:
        # A client that went away or unexported its monitor is not the fake's problem.
        with contextlib.suppress(Exception):
            reply = await bus.call(message)
            if reply is not None and reply.message_type is MessageType.ERROR:
                _log.debug("%s on %s failed: %s", message.member, message.path, reply.body)

    # -- method calls --------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> Message | bool | None:
        if msg.message_type is MessageType.SIGNAL:
            self._on_signal(msg)
            return None
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        path, interface, member = msg.path, msg.interface, msg.member
        expected = _SIGNATURES.get((interface or "", member or ""))
        if expected is not None and msg.signature != expected:
            raise DBusError(
                "org.freedesktop.DBus.Error.InvalidArgs",
                f"{member} takes ({expected}), not ({msg.signature})",
            )
        if interface == _OBJECT_MANAGER and member == "GetManagedObjects" and path == "/":
            return Message.new_method_return(msg, "a{oa{sa{sv}}}", [self._managed_objects()])
        if interface == _PROPERTIES:
            return self._on_properties(msg)
        adapter = next((a for a in self._adapters.values() if a.path == path), None)
        if adapter is None:
            return None
        sender = msg.sender or ""
        if interface == _ADAPTER:
            return self._on_adapter(msg, adapter, sender)
        if interface == _MONITOR_MANAGER:
            return self._on_monitor_manager(msg, adapter, sender)
        return None

    def _on_adapter(self, msg: Message, ad: _Adapter, sender: str) -> Message | None:
        member = msg.member
        if member == "SetDiscoveryFilter":
            ad.filters[sender] = dict(msg.body[0])
            return Message.new_method_return(msg)
        if member == "GetDiscoveryFilters":
            filters = ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable"]
            return Message.new_method_return(msg, "as", [filters])
        if member == "StartDiscovery":
            self.counters["start_discovery"] += 1
            if ad.refuse_start > 0:
                ad.refuse_start -= 1
                self.counters["refused_in_progress"] += 1
                raise DBusError(_ERR_IN_PROGRESS, "Operation already in progress")
            if not ad.powered:
                raise DBusError(_ERR_NOT_READY, "Resource Not Ready")
            if sender in ad.sessions:
                raise DBusError(_ERR_IN_PROGRESS, "Operation already in progress")
            was = ad.discovering
            ad.sessions.add(sender)
            if not was:
                self._adapter_changed(ad, {"Discovering": Variant("b", True)})
            return Message.new_method_return(msg)
        if member == "StopDiscovery":
            self.counters["stop_discovery"] += 1
            if sender not in ad.sessions:
                # What bluetoothd answers a client whose session it does not know, e.g. after
                # it restarted: bleak raises it from stop().
                raise DBusError(_ERR_FAILED, "No discovery started")
            ad.sessions.discard(sender)
            ad.filters.pop(sender, None)
            if not ad.discovering:
                self._adapter_changed(ad, {"Discovering": Variant("b", False)})
            return Message.new_method_return(msg)
        if member == "RemoveDevice":
            target = str(msg.body[0])
            address = next((a for a, d in ad.devices.items() if d.path == target), None)
            if address is None:
                raise DBusError(_ERR_DOES_NOT_EXIST, "Does Not Exist")
            self._owner.spawn(
                self.remove_device(address, adapter=ad.name), name="remove-device", many=True
            )
            return Message.new_method_return(msg)
        return None

    def _on_monitor_manager(self, msg: Message, ad: _Adapter, sender: str) -> Message | None:
        root = str(msg.body[0]) if msg.body else ""
        if msg.member == "RegisterMonitor":
            self.counters["register_monitor"] += 1
            if (sender, root) in ad.apps:
                raise DBusError(_ERR_ALREADY_EXISTS, "Already Exists")
            ad.apps.add((sender, root))
            # BlueZ learns the monitors under the root from the app's objects: those exported
            # later arrive as InterfacesAdded, those exported already are fetched. The match
            # rule is sent before the reply, so the daemon has it before the app can export.
            assert self._bus is not None
            if sender not in self._watched_apps:
                self._watched_apps.add(sender)
                rule = f"type='signal',sender='{sender}',interface='{_OBJECT_MANAGER}'"
                self._bus.send(add_match_message(rule, reply=False))
            self._owner.spawn(
                self._fetch_monitors(self._bus, sender, root), name="fetch-monitors", many=True
            )
            return Message.new_method_return(msg)
        if msg.member == "UnregisterMonitor":
            self.counters["unregister_monitor"] += 1
            if (sender, root) not in ad.apps:
                raise DBusError(_ERR_DOES_NOT_EXIST, "Does Not Exist")
            ad.apps.discard((sender, root))
            for key in [k for k in ad.monitors if k[0] == sender and k[1].startswith(root)]:
                del ad.monitors[key]
            self._notify()
            return Message.new_method_return(msg)
        return None

    def _on_signal(self, msg: Message) -> None:
        if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus":
            name, _old, new = msg.body
            if not new:
                self._client_gone(str(name))
            return
        if msg.interface == _OBJECT_MANAGER and msg.member == "InterfacesAdded" and msg.sender:
            path, interfaces = msg.body
            self._add_monitors(msg.sender, {str(path): interfaces})

    def _add_monitors(self, owner: str, objects: Mapping[str, Mapping[str, Any]]) -> None:
        """Take up the AdvertisementMonitor1 objects ``owner`` exports under a registered root."""
        for path, interfaces in objects.items():
            props = interfaces.get(_MONITOR)
            if props is None:
                continue
            for ad in self._adapters.values():
                for app_owner, root in ad.apps:
                    if app_owner != owner or not path.startswith(root):
                        continue
                    if (owner, path) in ad.monitors:
                        continue
                    patterns = tuple(
                        (int(start), int(kind), bytes(content))
                        for start, kind, content in props["Patterns"].value
                    )
                    info = MonitorInfo(owner, path, patterns)
                    ad.monitors[(owner, path)] = _Monitor(info)
                    self.counters["monitors_activated"] += 1
                    self._call_monitor(info, "Activate")
                    self._notify()

    async def _fetch_monitors(self, bus: MessageBus, owner: str, root: str) -> None:
        """Monitors exported before RegisterMonitor: ask the app, as BlueZ does."""
        with contextlib.suppress(Exception):
            message = Message(
                destination=owner, path=root, interface=_OBJECT_MANAGER, member="GetManagedObjects"
            )
            reply = await bus.call(message)
            if reply is not None and reply.message_type is MessageType.METHOD_RETURN:
                self._add_monitors(owner, reply.body[0])

    def _client_gone(self, name: str) -> None:
        for ad in self._adapters.values():
            if name in ad.sessions:
                ad.sessions.discard(name)
                ad.filters.pop(name, None)
                if not ad.discovering:
                    self._adapter_changed(ad, {"Discovering": Variant("b", False)})
            ad.apps = {app for app in ad.apps if app[0] != name}
            for key in [k for k in ad.monitors if k[0] == name]:
                del ad.monitors[key]
        self._notify()

    def _adapter_changed(self, ad: _Adapter, changed: dict[str, Variant]) -> None:
        self._send_signal(
            ad.path, _PROPERTIES, "PropertiesChanged", "sa{sv}as", [_ADAPTER, changed, []]
        )
        self._notify()

    def _on_properties(self, msg: Message) -> Message:
        objects = self._managed_objects()
        interfaces = objects.get(msg.path or "")
        if interfaces is None:
            raise DBusError("org.freedesktop.DBus.Error.UnknownObject", f"no object {msg.path}")
        interface = str(msg.body[0])
        props = interfaces.get(interface)
        if props is None:
            raise DBusError("org.freedesktop.DBus.Error.UnknownInterface", interface)
        if msg.member == "GetAll":
            return Message.new_method_return(msg, "a{sv}", [props])
        name = str(msg.body[1])
        if msg.member == "Get":
            if name not in props:
                raise DBusError("org.freedesktop.DBus.Error.UnknownProperty", name)
            return Message.new_method_return(msg, "v", [props[name]])
        if msg.member == "Set" and interface == _ADAPTER and name == "Powered":
            value = msg.body[2].value
            if not isinstance(value, bool):
                raise DBusError(_ERR_INVALID_ARGS, "Powered is a boolean")
            ad = next(a for a in self._adapters.values() if a.path == msg.path)
            self._set_powered(ad, value)
            return Message.new_method_return(msg)
        raise DBusError("org.freedesktop.DBus.Error.PropertyReadOnly", name)

    def _set_powered(self, ad: _Adapter, powered: bool) -> None:
        if powered == ad.powered:
            return
        self.counters["power_on" if powered else "power_off"] += 1
        ad.powered = powered
        changed = {"Powered": Variant("b", powered), "PowerState": Variant("s", "on")}
        if not powered:
            changed["PowerState"] = Variant("s", "off")
            # Powering off ends every discovery session, clears a wedged controller and drops
            # the temporary devices, as bluetoothd does.
            ad.jammed = False
            if ad.sessions:
                ad.sessions.clear()
                ad.filters.clear()
                changed["Discovering"] = Variant("b", False)
            forgotten = [d for d in ad.devices.values() if d.announced]
            for device in forgotten:
                device.announced = False
            if forgotten and self._owner.running:
                # Hundreds of devices can go at once: sent paced, after this handler returns.
                self._owner.spawn(self._send_removed(forgotten), name="send-removed", many=True)
            for monitor in ad.monitors.values():
                monitor.found.clear()
        self._adapter_changed(ad, changed)

    async def _send_removed(self, devices: list[_Device]) -> None:
        for device in devices:
            await self._flow()
            if device.announced:
                continue  # heard again (power back on) before its removal went out: keep it
            self._send_signal(
                "/", _OBJECT_MANAGER, "InterfacesRemoved", "oas", [device.path, [_DEVICE]]
            )

    def _managed_objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        objects: dict[str, dict[str, dict[str, Variant]]] = {}
        for ad in self._adapters.values():
            objects[ad.path] = ad.properties()
            for device in ad.devices.values():
                if device.announced:
                    objects[device.path] = {_DEVICE: device.properties()}
        return objects
