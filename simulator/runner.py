"""The scenario runner: the world's state, turned into the traffic of real-looking devices.

:class:`ScenarioRunner` starts what a scenario's gateways need (a private D-Bus bus with a fake
BlueZ exposing one adapter per gateway, a SmartLabel reader on a pty per gateway that has one,
a GPS receiver on a pty per vehicle gateway), then every tick asks the
:class:`~simulator.world.World` for a snapshot and pushes the difference into those devices:
adverts with the current RSSI and sensor values, devices forgotten once out of range, label
messages relayed by the readers that hear the label (history batches for what a label logged
while nobody heard it), GPS fixes, and the faults that fall due. Its :attr:`endpoints` say
where a gateway should look; nothing here knows the gateway exists.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from foundation.lifecycle import TaskOwner
from protocols.smartlabel import (
    HISTORY_MAX_READINGS,
    Environment,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    Message,
    Shock,
    Status,
    StatusFlags,
)
from simulator.bluez import FakeBlueZ, PrivateBus
from simulator.serial import GpsReceiverSim, PtyPort, SmartLabelReaderSim
from simulator.world import (
    AdapterRemoved,
    BluetoothdRestart,
    BrokerOutage,
    CorruptCrc,
    DiscoveryRefused,
    DropBytes,
    Fault,
    Garbage,
    GpsJump,
    GpsNoFix,
    PowerCut,
    Scenario,
    SimClock,
    SmartLabelTag,
    Snapshot,
    TagRef,
    Unplug,
    World,
    advert_for,
)

__all__ = [
    "AppliedFault",
    "Endpoints",
    "GatewayEndpoint",
    "ScenarioRunner",
]

_log = logging.getLogger(__name__)

#: Real seconds between ticks at most (at speed 5 or less): slow enough that a scenario of a
#: few hundred tags stays well under one core. Faster worlds tick once per shortest advertising
#: interval of simulated time, down to MIN_TICK_REAL_S; adverts that fall due between two ticks
#: are still all delivered (see :meth:`ScenarioRunner.step`).
TICK_REAL_S: Final = 0.2
#: The shortest tick: 100 ticks a second, so that up to speed 100 the world moves by at most a
#: simulated second between ticks (GPS positions, label readings; adverts are caught up anyway).
MIN_TICK_REAL_S: Final = 0.01
#: At most this many advertising instants are caught up in one step (a world run so fast, or
#: a machine so loaded, that more fall between two ticks thins its adverts instead of stalling).
MAX_CATCH_UP_INSTANTS: Final = 64
#: BlueZ forgets a temporary device this long after its last advert (its TemporaryTimeout).
DEVICE_FORGET_AFTER_S: Final = 30.0
#: A label without sensors still sends a heartbeat this often.
HEARTBEAT_PERIOD_S: Final = 60.0
#: Labels report battery and health this often (real labels: every few minutes).
STATUS_PERIOD_S: Final = 300.0
#: A label's log holds this many readings; older ones are overwritten (flagged as overflow).
HISTORY_CAPACITY: Final = 4 * HISTORY_MAX_READINGS
#: Shorter real outages than this would be over before a gateway could even notice them.
MIN_FAULT_REAL_S: Final = 0.05
#: The drive loop logs a progress line this often.
PROGRESS_EVERY_REAL_S: Final = 5.0
#: Label-side shock threshold reported in shock messages (2 g is a typical "handle with care").
SHOCK_THRESHOLD_MG: Final = 2000
#: The simulated label's accelerometer full scale (±200 g, what parcel shock sensors are
#: built for); peaks beyond it saturate there, as docs/protocol.md specifies. A 60 g drop is
#: carried as it is (the link's peaks are 32-bit mg).
SHOCK_FULL_SCALE_MG: Final = 200_000
#: Fixes per simulated second from the simulated GPS receiver (a 1 Hz receiver) ...
GPS_RATE_HZ: Final = 1.0
#: ... and at most this many per real second in a fast world (a fix per simulated second up to
#: speed 100: vehicle rules count fixes and their age in simulated seconds).
GPS_MAX_RATE_HZ: Final = 100.0


@dataclass(frozen=True, slots=True)
class GatewayEndpoint:
    """Where one gateway finds its devices."""

    id: str
    adapter: str
    door: str | None
    vehicle: str | None
    smartlabel_port: Path | None
    gps_port: Path | None
    gps_ubx: bool

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "adapter": self.adapter,
            "door": self.door,
            "vehicle": self.vehicle,
            "smartlabel_port": None if self.smartlabel_port is None else str(self.smartlabel_port),
            "gps_port": None if self.gps_port is None else str(self.gps_port),
            "gps_ubx": self.gps_ubx,
        }


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Everything a gateway (or a test) needs to find the simulated world."""

    scenario: str
    dbus_address: str
    start: datetime
    speed: float
    duration_s: float
    gateways: tuple[GatewayEndpoint, ...]

    def gateway(self, gateway_id: str) -> GatewayEndpoint:
        return next(g for g in self.gateways if g.id == gateway_id)

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "dbus_address": self.dbus_address,
            "env": {"DBUS_SYSTEM_BUS_ADDRESS": self.dbus_address},
            "start": self.start.isoformat(),
            "speed": self.speed,
            "duration_s": self.duration_s,
            "adapters": sorted(g.adapter for g in self.gateways),
            "gateways": [g.to_json() for g in self.gateways],
        }


@dataclass(frozen=True, slots=True)
class AppliedFault:
    """A scheduled fault that fell due: whether it could be applied, and if not why."""

    t_s: float
    kind: str
    applied: bool
    detail: str = ""


@dataclass(slots=True)
class _Devices:
    reader_port: PtyPort | None = None
    reader: SmartLabelReaderSim | None = None
    gps_port: PtyPort | None = None
    gps: GpsReceiverSim | None = None


@dataclass(slots=True)
class _Label:
    ref: TagRef
    label_id: int
    seq: int = 0
    history: collections.deque[HistoryReading] | None = None
    overflowed: bool = False

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) % 2**32
        return self.seq


class ScenarioRunner:
    """Runs a scenario's devices: ``async with ScenarioRunner(scenario, workdir) as run: ...``.

    With ``drive=True`` (the default) a background task advances the world at ``speed`` times
    real time until the scenario's duration; with ``drive=False`` the caller advances it with
    :meth:`step`, which is how tests get exact, repeatable instants.

    Faults that reach beyond the devices are the caller's: ``power_cut_pid`` is killed with
    SIGKILL by ``power_cut``, and ``on_broker_outage(down_real_s)`` runs as a task for each
    ``broker_outage`` (cancelled if the runner stops first). Without them those faults are
    skipped and recorded as such in :attr:`fault_log`.
    """

    def __init__(
        self,
        scenario: Scenario,
        workdir: Path,
        *,
        speed: float = 1.0,
        start: datetime | None = None,
        duration_s: float | None = None,
        drive: bool = True,
        tick_real_s: float | None = None,
        real_monotonic: Callable[[], float] = time.monotonic,
        power_cut_pid: int | None = None,
        on_broker_outage: Callable[[float], Awaitable[None]] | None = None,
        lead_in_real_s: float = 0.0,
    ) -> None:
        if speed <= 0 or (tick_real_s is not None and tick_real_s <= 0):
            raise ValueError("speed and tick_real_s must be positive")
        self.scenario = scenario
        self.world = World(scenario, start=start or scenario.start or _utc_now_whole_s())
        self._intervals = sorted({ref.tag.interval_s for ref in self.world.tags})
        if tick_real_s is None:
            # One tick per shortest advertising interval of simulated time, within the bounds.
            shortest = self._intervals[0] if self._intervals else 1.0
            tick_real_s = min(TICK_REAL_S, max(MIN_TICK_REAL_S, shortest / speed))
        self.workdir = workdir
        self.speed = speed
        self.duration_s = min(duration_s or scenario.duration_s, scenario.duration_s)
        self._drive_enabled = drive
        self._tick_real_s = tick_real_s
        self._real_monotonic = real_monotonic
        self.power_cut_pid = power_cut_pid
        if lead_in_real_s < 0:
            raise ValueError("lead_in_real_s must not be negative")
        self._lead_in_real_s = lead_in_real_s
        self._on_broker_outage = on_broker_outage
        self.clock: SimClock | None = None
        self.bluez: FakeBlueZ | None = None
        self._bus: PrivateBus | None = None
        self.devices: dict[str, _Devices] = {}
        self.fault_log: list[AppliedFault] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.finished = asyncio.Event()
        self._t = -1.0  # so that what is due at t = 0 happens on the first step
        self._tags = {ref.address: ref for ref in self.world.tags}
        self._labels = {
            ref.address: _Label(
                ref, ref.tag.label_id, history=collections.deque(maxlen=HISTORY_CAPACITY)
            )
            for ref in self.world.tags
            if isinstance(ref.tag, SmartLabelTag)
        }
        self._advert_tick: dict[tuple[str, str], int] = {}
        self._last_heard: dict[tuple[str, str], float] = {}
        self._removed_adapters: set[str] = set()
        self._replug_at: list[tuple[float, PtyPort]] = []
        self._shocked: set[str] = set()
        #: The devices are entered on its stack, then its tasks (the drive, fault tasks) run.
        self._owner = TaskOwner("scenario-runner")
        self._items = {i.id: i for i in scenario.items}

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self._start(self._owner)
        except BaseException as exc:
            await self._owner.stop(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def _start(self, stack: TaskOwner) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._bus = await stack.enter_async_context(PrivateBus(self.workdir / "dbus"))
        adapters = sorted(g.adapter for g in self.scenario.gateways)
        self.bluez = await stack.enter_async_context(FakeBlueZ(self._bus.address, adapters))
        for gw in self.scenario.gateways:
            dev = self.devices[gw.id] = _Devices()
            if gw.smartlabel_reader:
                link = self.workdir / "dev" / f"{gw.id}-smartlabel"
                dev.reader_port = await stack.enter_async_context(PtyPort(link))
                dev.reader = await stack.enter_async_context(
                    SmartLabelReaderSim(dev.reader_port, speed=self.speed)
                )
            if gw.gps:
                dev.gps_port = await stack.enter_async_context(
                    PtyPort(self.workdir / "dev" / f"{gw.id}-gps")
                )
                dev.gps = await stack.enter_async_context(
                    GpsReceiverSim(
                        dev.gps_port,
                        rate_hz=min(GPS_MAX_RATE_HZ, GPS_RATE_HZ * self.speed),
                        ubx=gw.gps_ubx,
                    )
                )
        await stack.start()
        # Scenario time starts once every device is up, so nothing due at t = 0 is missed.
        self.clock = SimClock(
            self.world.start,
            speed=self.speed,
            real_monotonic=self._real_monotonic,
            lead_in_real_s=self._lead_in_real_s,
        )
        if self._drive_enabled:
            stack.spawn(self._drive(), name="drive")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Fault tasks (a bluetoothd restart half-way, a broker outage) are cancelled with it.
        await self._owner.stop(exc_type, exc, tb)

    @property
    def endpoints(self) -> Endpoints:
        if self._bus is None:
            raise RuntimeError("the runner is not started")
        gateways = []
        for gw in self.scenario.gateways:
            placement = self.world.gateways[gw.id]
            dev = self.devices[gw.id]
            gateways.append(
                GatewayEndpoint(
                    id=gw.id,
                    adapter=gw.adapter,
                    door=placement.door,
                    vehicle=placement.vehicle,
                    smartlabel_port=None if dev.reader_port is None else dev.reader_port.link,
                    gps_port=None if dev.gps_port is None else dev.gps_port.link,
                    gps_ubx=gw.gps_ubx,
                )
            )
        return Endpoints(
            scenario=self.scenario.name,
            dbus_address=self._bus.address,
            start=self.world.start,
            speed=self.speed,
            duration_s=self.duration_s,
            gateways=tuple(gateways),
        )

    @property
    def sim_time_s(self) -> float:
        """The last simulated instant pushed to the devices (-1 before the first step)."""
        return self._t

    async def wait_finished(self) -> None:
        await self.finished.wait()

    # --- the tick ----------------------------------------------------------------------------

    async def _drive(self) -> None:
        assert self.clock is not None
        next_progress = self._real_monotonic()
        while True:
            t = min(self.clock.elapsed_s(), self.duration_s)
            if t < 0:  # the lead-in: the world waits at its start
                await asyncio.sleep(min(-t / self.speed, self._tick_real_s))
                continue
            await self.step(t)
            if self._real_monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_REAL_S
                _log.info(
                    "t=%.0fs of %.0fs: %d adverts, %d label messages, %d faults",
                    t,
                    self.duration_s,
                    self.counters["adverts"],
                    self.counters["label_messages"],
                    len(self.fault_log),
                )
            if t >= self.duration_s:
                _log.info("scenario %s finished at t=%.0fs", self.scenario.name, t)
                self.finished.set()
                return
            await asyncio.sleep(self._tick_real_s)

    async def step(self, t_s: float) -> Snapshot:
        """Advance the devices to simulated time ``t_s`` (never backwards) and return the world.

        Adverts go out at their tags' advertising instants (multiples of the interval): every
        instant since the last step is delivered, each as the world has it then (position,
        RSSI, sensors), in order, so a step longer than an advertising interval (a fast world)
        thins nothing (up to MAX_CATCH_UP_INSTANTS instants a step)."""
        if self.bluez is None:
            raise RuntimeError("the runner is not started")
        t = min(max(t_s, self._t), self.duration_s)
        prev, self._t = self._t, t
        snap = self.world.snapshot(t)
        for instant in self._advert_instants(prev, t):
            await self._push_adverts(snap if instant == t else self.world.snapshot(instant))
        self._replug_due(t)
        for fault in self.world.faults_between(prev, t):
            await self._apply(fault)
        for shock in self.world.shocks_between(prev, t):
            self._shocked.add(shock.item)
        self._relay_labels(prev, snap)
        self._push_gps(snap)
        return snap

    def _advert_instants(self, prev: float, t: float) -> list[float]:
        """The advertising instants (multiples of a tag interval) after the last step up to
        this one, earliest first, the latest MAX_CATCH_UP_INSTANTS of them (the first step: the
        latest instant only)."""
        instants: set[float] = set()
        for interval in self._intervals:
            last = math.floor(t / interval)
            # The first step starts the world where it is asked to: no history before it.
            first = last if prev < 0 else math.floor(prev / interval) + 1
            for k in range(max(first, last - MAX_CATCH_UP_INSTANTS + 1), last + 1):
                if prev < k * interval <= t:
                    instants.add(k * interval)
        return sorted(instants)[-MAX_CATCH_UP_INSTANTS:]

    async def _push_adverts(self, snap: Snapshot) -> None:
        assert self.bluez is not None
        t = snap.t_s
        for s in snap.sightings:
            if s.adapter in self._removed_adapters:
                continue
            ref = self._tags[s.address]
            key = (s.adapter, s.address)
            self._last_heard[key] = t
            tick = math.floor(t / ref.tag.interval_s)
            if self._advert_tick.get(key) == tick:
                continue  # this advertising interval was already heard
            self._advert_tick[key] = tick
            sensors = snap.items[ref.item].sensors
            payload = advert_for(
                ref.tag, ref.address, sensors, tick, shock_latched=ref.item in self._shocked
            )
            await self.bluez.upsert_device(
                s.address,
                adapter=s.adapter,
                rssi=s.rssi_dbm,
                manufacturer_data=payload.manufacturer_data,
                service_data=payload.service_data,
            )
            self.counters["adverts"] += 1
        for key, last in list(self._last_heard.items()):
            if t - last > DEVICE_FORGET_AFTER_S:
                del self._last_heard[key]
                self._advert_tick.pop(key, None)
                if key[0] not in self._removed_adapters:
                    await self.bluez.remove_device(key[1], adapter=key[0])
                    self.counters["devices_forgotten"] += 1

    def _relay_labels(self, prev: float, snap: Snapshot) -> None:
        readers = {gw: dev.reader for gw, dev in self.devices.items() if dev.reader is not None}
        if not readers:
            return
        heard = {gw: snap.heard_by(gw) for gw in readers}
        for address, label in self._labels.items():
            hearing = [readers[gw] for gw in readers if address in heard[gw]]
            messages = self._label_messages(label, prev, snap.t_s)
            if not hearing:
                self._log_readings(label, messages)
                continue
            if label.history:
                messages = self._history_batches(label) + messages
            for msg in messages:
                for reader in hearing:
                    reader.send(msg)
                self.counters["label_messages"] += 1

    def _label_messages(self, label: _Label, prev: float, t: float) -> list[Message]:
        """What ``label`` transmits in (prev, t]: its latest reading, shocks, status."""
        item = self._items[label.ref.item]
        out: list[Message] = []
        period = min((c.period_s for c in item.sensors.values()), default=HEARTBEAT_PERIOD_S)
        due = math.floor(t / period) * period
        if due > prev:
            # A step longer than a period (very high speed) reports only the latest reading.
            when = self._label_time(due)
            if item.sensors:
                out.append(
                    Environment(
                        label.label_id,
                        label.next_seq(),
                        when,
                        self._reading(item.id, "temperature_c", due),
                        self._reading(item.id, "humidity_pct", due),
                    )
                )
            else:
                out.append(Heartbeat(label.label_id, label.next_seq(), when))
        for shock in self.world.shocks_between(prev, t):
            if shock.item == item.id:
                # Only beyond the label's own full scale does an axis saturate.
                x, y, z = (
                    max(-SHOCK_FULL_SCALE_MG, min(SHOCK_FULL_SCALE_MG, round(g * 1000)))
                    for g in shock.peak_g
                )
                out.append(
                    Shock(
                        label.label_id,
                        label.next_seq(),
                        self._label_time(shock.t_s),
                        x,
                        y,
                        z,
                        shock.duration_ms,
                        SHOCK_THRESHOLD_MG,
                    )
                )
        status_due = math.floor(t / STATUS_PERIOD_S) * STATUS_PERIOD_S
        if status_due > prev:
            tag = label.ref.tag
            assert isinstance(tag, SmartLabelTag)
            flags = StatusFlags(0)
            if item.id in self._shocked:
                flags |= StatusFlags.SHOCK_LATCHED
            if label.overflowed:
                flags |= StatusFlags.HISTORY_OVERFLOW
            out.append(
                Status(
                    label.label_id,
                    label.next_seq(),
                    self._label_time(status_due),
                    tag.battery_mv,
                    tag.firmware_version,
                    int(flags),
                    0,
                    int(status_due),
                )
            )
        return out

    def _log_readings(self, label: _Label, messages: list[Message]) -> None:
        """Nobody hears the label: it keeps its readings for a later history batch."""
        assert label.history is not None
        for msg in messages:
            if isinstance(msg, Environment):
                if len(label.history) == label.history.maxlen:
                    label.overflowed = True
                label.history.append(
                    HistoryReading(msg.label_time, msg.temperature_c, msg.humidity_pct)
                )

    def _history_batches(self, label: _Label) -> list[Message]:
        assert label.history is not None
        readings = list(label.history)
        label.history.clear()
        batches: list[Message] = []
        for start in range(0, len(readings), HISTORY_MAX_READINGS):
            chunk = tuple(readings[start : start + HISTORY_MAX_READINGS])
            batches.append(
                HistoryBatch(label.label_id, label.next_seq(), self._label_time(self._t), chunk)
            )
            self.counters["history_batches"] += 1
        return batches

    def _push_gps(self, snap: Snapshot) -> None:
        for gw_id, dev in self.devices.items():
            if dev.gps is None:
                continue
            vehicle = self.world.gateways[gw_id].vehicle
            if vehicle is None:
                continue
            v = snap.vehicles[vehicle]
            reading = self.world.gps_reading(gw_id, snap.t_s)
            where = v.position if reading.position is None else reading.position
            dev.gps.set_position(
                where.lat,
                where.lon,
                speed_mps=v.speed_mps,
                heading_deg=v.heading_deg,
                when=snap.when,
            )
            if reading.position is None:
                # In a tunnel the receiver keeps its time and says "no fix" every epoch.
                dev.gps.lose_fix()

    # --- faults --------------------------------------------------------------------------------

    def _replug_due(self, t: float) -> None:
        due = [(at, port) for at, port in self._replug_at if at <= t]
        self._replug_at = [(at, port) for at, port in self._replug_at if at > t]
        for _, port in due:
            port.replug()
            _log.info("fault: %s plugged back in", port.link.name)

    async def _apply(self, fault: Fault) -> None:
        applied, detail = True, ""
        match fault:
            case Garbage(device="smartlabel") | DropBytes() | CorruptCrc() if (
                self.devices[fault.gateway].reader is None
            ):
                # The scenario model refuses these; a hand-built Scenario may still carry one.
                applied, detail = False, f"{fault.gateway} has no smartlabel device"
            case Garbage(device="smartlabel"):
                self._reader(fault.gateway).inject_garbage(fault.n_bytes)
            case Garbage():
                gps = self.devices[fault.gateway].gps
                assert gps is not None  # the scenario model checked the gateway has a GPS
                gps.inject_garbage(fault.n_bytes)
            case DropBytes():
                self._reader(fault.gateway).drop_next_bytes(fault.n_bytes)
            case CorruptCrc():
                self._reader(fault.gateway).corrupt_next_crc()
            case Unplug():
                dev = self.devices[fault.gateway]
                port = dev.reader_port if fault.device == "smartlabel" else dev.gps_port
                if port is None:
                    applied, detail = False, f"{fault.gateway} has no {fault.device} device"
                else:
                    port.unplug()
                    self._replug_at.append((fault.t_s + fault.down_s, port))
            case BluetoothdRestart():
                assert self.bluez is not None
                self._spawn_fault(self.bluez.restart(self._real(fault.down_s)))
            case AdapterRemoved():
                assert self.bluez is not None
                adapter = self.world.gateways[fault.gateway].spec.adapter
                self._removed_adapters.add(adapter)
                await self.bluez.remove_adapter(adapter)
            case DiscoveryRefused():
                assert self.bluez is not None
                for gw in self.scenario.gateways:
                    if gw.adapter not in self._removed_adapters:
                        self.bluez.refuse_start_discovery(fault.times, adapter=gw.adapter)
            case BrokerOutage():
                if self._on_broker_outage is None:
                    applied, detail = False, "no broker hook given"
                else:
                    self._spawn_fault(self._on_broker_outage(self._real(fault.down_s)))
            case PowerCut():
                applied, detail = self._power_cut()
            case GpsNoFix() | GpsJump():
                detail = "in the world's GPS readings"
        self.fault_log.append(AppliedFault(fault.t_s, fault.kind, applied, detail))
        self.counters["faults_applied" if applied else "faults_skipped"] += 1
        _log.info(
            "fault at t=%.0fs: %s%s",
            fault.t_s,
            fault.kind,
            "" if applied else f" skipped ({detail})",
        )

    def _power_cut(self) -> tuple[bool, str]:
        if self.power_cut_pid is None:
            return False, "no gateway pid given"
        try:
            os.kill(self.power_cut_pid, signal.SIGKILL)
        except ProcessLookupError:
            return False, f"pid {self.power_cut_pid} is not running"
        return True, f"SIGKILL to pid {self.power_cut_pid}"

    def _spawn_fault(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        self._owner.spawn(run(), name="fault", many=True)

    def _real(self, sim_s: float) -> float:
        return max(MIN_FAULT_REAL_S, sim_s / self.speed)

    def _reader(self, gateway: str) -> SmartLabelReaderSim:
        reader = self.devices[gateway].reader
        if reader is None:
            raise ValueError(f"gateway {gateway} has no SmartLabel reader")
        return reader

    # --- helpers ---------------------------------------------------------------------------------

    def _reading(self, item: str, sensor: str, t_s: float) -> float | None:
        if sensor not in self._items[item].sensors:
            return None
        return self.world.sensor_value(item, sensor, t_s)

    def _label_time(self, t_s: float) -> int:
        """Labels stamp messages with synced UTC seconds (they got a time sync at provisioning)."""
        return int(self.world.when(t_s).timestamp())


def _utc_now_whole_s() -> datetime:
    from datetime import UTC

    return datetime.now(UTC).replace(microsecond=0)
