"""The scenario file format: a TOML document validated into frozen pydantic models.

A scenario is the single description of a simulated site or route that every later stage reads:
the world's state function (:mod:`simulator.world.state`) derives positions, radio sightings and
sensor values from it; the runner turns those into device traffic; the fault schedule says when
to break things; and ``ground_truth`` says what a correct gateway must conclude, so tests can
check its events against the scenario that produced them.

Identifiers of vehicles, doors and stops share one namespace ("holders": where an item can be),
so a movement just names where the item goes. Times are seconds of simulated time from the start.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AdapterRemoved",
    "BluetoothdRestart",
    "BrokerOutage",
    "CorruptCrc",
    "Curve",
    "DeliveryTruth",
    "DepartureTruth",
    "DiscoveryRefused",
    "Door",
    "DropBytes",
    "EddystoneUidTag",
    "ExcursionTruth",
    "Fault",
    "Garbage",
    "GatewaySpec",
    "GpsJump",
    "GpsNoFix",
    "GroundTruth",
    "HandoffTruth",
    "IBeaconTag",
    "Item",
    "LeftOnBoardTruth",
    "Movement",
    "PowerCut",
    "Radio",
    "Route",
    "RuuviTag",
    "Scenario",
    "ShockSpec",
    "ShockTruth",
    "SmartLabelTag",
    "SpikeTruth",
    "Stop",
    "Tag",
    "Unplug",
    "Vehicle",
    "WarningTruth",
    "Waypoint",
]

_MAC = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_ADAPTER = re.compile(r"^hci[0-9]+$")

Seconds = Annotated[float, Field(ge=0.0)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]


class _Frozen(BaseModel):
    # NaN and infinity would poison every distance and reading derived from them.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# --- places and things that move -------------------------------------------------------------


class GatewaySpec(_Frozen):
    """A gateway mounted on a door or a vehicle, and which simulated devices it gets."""

    id: str
    adapter: str = "hci0"
    """The BlueZ adapter the fake BlueZ exposes for this gateway; unique in the scenario."""
    smartlabel_reader: bool = True
    """A SmartLabel reader on a pty relays the labels this gateway can hear."""
    gps: bool = False
    """A GPS receiver on a pty reports the gateway's (vehicle's) position."""
    gps_ubx: bool = False
    """The receiver speaks u-blox UBX NAV-PVT as well as NMEA."""
    sensitivity_dbm: float = -95.0
    """Adverts whose mean RSSI is below this are not heard (a typical BLE receiver floor)."""

    @field_validator("adapter")
    @classmethod
    def _adapter_name(cls, v: str) -> str:
        if not _ADAPTER.match(v):
            raise ValueError("adapter must look like hci0, hci1, ...")
        return v


class Waypoint(_Frozen):
    """A point of a vehicle's GPS track; the vehicle moves in a straight line between points."""

    t_s: Seconds
    lat: Latitude
    lon: Longitude


class Vehicle(_Frozen):
    id: str
    name: str = ""
    carrier: str = ""
    gateway: GatewaySpec | None = None
    track: tuple[Waypoint, ...] = ()
    """Where the vehicle is over time; empty when a route describes its movement instead."""
    cargo_length_m: float = Field(default=13.6, gt=0.0)
    """Items on board are spread over this length (13.6 m is a standard semi-trailer)."""
    body_loss_db: float = Field(default=6.0, ge=0.0)
    """Attenuation of the body for gateways outside the vehicle."""

    @field_validator("track")
    @classmethod
    def _ordered(cls, v: tuple[Waypoint, ...]) -> tuple[Waypoint, ...]:
        if any(b.t_s <= a.t_s for a, b in itertools.pairwise(v)):
            raise ValueError("track waypoints must have strictly increasing t_s")
        return v


class Door(_Frozen):
    """A dock door: its gateway hangs in the door frame; the dock floor lies behind it."""

    id: str
    name: str = ""
    lat: Latitude
    lon: Longitude
    facing_deg: float = Field(default=0.0, ge=0.0, lt=360.0)
    """Direction from the dock floor out to the yard; items on the floor lie the other way."""
    dock_depth_m: float = Field(default=20.0, gt=0.0)
    """Items on the dock floor are spread up to this far behind the door."""
    gateway: GatewaySpec


class Stop(_Frozen):
    """A delivery stop with its geofence and the time the vehicle spends there."""

    id: str
    name: str = ""
    lat: Latitude
    lon: Longitude
    radius_m: float = Field(default=50.0, gt=0.0)
    arrive_s: Seconds
    depart_s: Seconds

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.depart_s < self.arrive_s:
            raise ValueError(f"stop {self.id}: depart_s before arrive_s")
        return self


class Route(_Frozen):
    """A vehicle's tour: leave the depot, visit the stops in order, optionally return."""

    id: str
    vehicle: str
    depot_lat: Latitude
    depot_lon: Longitude
    start_s: Seconds = 0.0
    return_s: Seconds | None = None
    stops: tuple[Stop, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self) -> Self:
        times = [self.start_s]
        for s in self.stops:
            times += [s.arrive_s, s.depart_s]
        if self.return_s is not None:
            times.append(self.return_s)
        if any(b < a for a, b in itertools.pairwise(times)):
            raise ValueError(f"route {self.id}: stop times must not go backwards")
        return self


# --- tags --------------------------------------------------------------------------------------


class _TagBase(_Frozen):
    address: str | None = None
    """BLE address; when omitted, a stable random static address is derived from the item id."""
    tx_power_1m_dbm: float = -59.0
    """RSSI measured at 1 m (the iBeacon "measured power"); the path loss starts from here."""
    interval_s: float = Field(default=1.0, gt=0.0)
    """Advertising interval: RSSI noise is redrawn once per interval."""

    @field_validator("address")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        if v is not None and not _MAC.match(v.upper()):
            raise ValueError("address must be six colon-separated hex bytes")
        return None if v is None else v.upper()


class SmartLabelTag(_TagBase):
    """Our label: advertises over BLE and reports readings through a SmartLabel reader."""

    format: Literal["smartlabel"] = "smartlabel"
    label_id: int = Field(ge=0, lt=2**64)
    battery_mv: int = Field(default=3000, ge=0, lt=2**16)
    firmware_version: str = "1.4.2"


class IBeaconTag(_TagBase):
    format: Literal["ibeacon"] = "ibeacon"
    uuid: UUID
    major: int = Field(ge=0, lt=2**16)
    minor: int = Field(ge=0, lt=2**16)


class EddystoneUidTag(_TagBase):
    format: Literal["eddystone_uid"] = "eddystone_uid"
    namespace: str = Field(pattern=r"^[0-9a-fA-F]{20}$")
    instance: str = Field(pattern=r"^[0-9a-fA-F]{12}$")


class RuuviTag(_TagBase):
    """A RuuviTag broadcasting data format 5 (RAWv2) with the item's sensor values."""

    format: Literal["ruuvi_df5"] = "ruuvi_df5"


Tag = Annotated[
    SmartLabelTag | IBeaconTag | EddystoneUidTag | RuuviTag, Field(discriminator="format")
]


# --- items, sensors, movements -----------------------------------------------------------------


class Curve(_Frozen):
    """A sensor's value over time: piecewise linear through ``points``, plus seeded noise."""

    points: tuple[tuple[Seconds, float], ...] = Field(min_length=1)
    noise: float = Field(default=0.0, ge=0.0)
    """Standard deviation of the Gaussian noise added to each sample."""
    period_s: float = Field(default=60.0, gt=0.0)
    """How often the label samples and reports; the noise is redrawn once per period."""

    @field_validator("points")
    @classmethod
    def _ordered(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if any(b[0] <= a[0] for a, b in itertools.pairwise(v)):
            raise ValueError("curve points must have strictly increasing times")
        return v


class Item(_Frozen):
    """A parcel or pallet with its tags and sensors, and where it is at time 0."""

    id: str
    kind: Literal["parcel", "pallet"] = "parcel"
    description: str = ""
    at: str
    """The vehicle, door or stop holding the item at time 0."""
    tags: tuple[Tag, ...] = Field(min_length=1)
    sensors: dict[str, Curve] = Field(default_factory=dict)
    """Sensor curves by quantity: ``temperature_c``, ``humidity_pct``."""
    route: str | None = None
    """The delivery route the parcel is manifested on (it may be a route this scenario does not
    drive: a parcel on the wrong van is a misload)."""
    stop: str | None = None
    """The stop of ``route`` the parcel is for; required when ``route`` is driven here."""
    profile: str | None = None
    """The condition profile the platform assigns to the item (a preset such as
    ``pharma-2-8``, docs/conditions.md): master data a platform holds, not an outcome."""

    @field_validator("sensors")
    @classmethod
    def _known(cls, v: dict[str, Curve]) -> dict[str, Curve]:
        unknown = set(v) - {"temperature_c", "humidity_pct"}
        if unknown:
            raise ValueError(f"unknown sensors {sorted(unknown)}")
        return v


class Movement(_Frozen):
    """``item`` is carried to holder ``to``: it leaves at ``t_s``, arrives ``duration_s`` later."""

    item: str
    t_s: Seconds
    to: str
    duration_s: float = Field(default=5.0, ge=0.0)


class ShockSpec(_Frozen):
    """A drop or impact: signed peak acceleration per axis in g, and how long it lasted."""

    item: str
    t_s: Seconds
    peak_g: tuple[float, float, float]
    duration_ms: int = Field(default=10, gt=0)


class Radio(_Frozen):
    """Log-distance path loss: RSSI = P(1 m) - 10 n log10(d) - losses + N(0, sigma)."""

    path_loss_exponent: float = Field(default=2.2, gt=0.0)
    """About 2 in free space; 2 to 3 in a warehouse full of racking and parcels."""
    shadowing_sigma_db: float = Field(default=4.0, ge=0.0)
    """Log-normal shadowing: indoor BLE measurements scatter by 3 to 6 dB."""


# --- the fault schedule --------------------------------------------------------------------------

SerialDevice = Literal["smartlabel", "gps"]


class Garbage(_Frozen):
    kind: Literal["garbage"] = "garbage"
    t_s: Seconds
    gateway: str
    device: SerialDevice = "smartlabel"
    n_bytes: int = Field(default=64, gt=0)


class DropBytes(_Frozen):
    kind: Literal["drop_bytes"] = "drop_bytes"
    t_s: Seconds
    gateway: str
    n_bytes: int = Field(default=3, gt=0)


class CorruptCrc(_Frozen):
    kind: Literal["corrupt_crc"] = "corrupt_crc"
    t_s: Seconds
    gateway: str


class Unplug(_Frozen):
    """The serial device disappears for ``down_s`` and comes back on a new pty."""

    kind: Literal["unplug"] = "unplug"
    t_s: Seconds
    gateway: str
    device: SerialDevice = "smartlabel"
    down_s: float = Field(default=5.0, ge=0.0)


class GpsNoFix(_Frozen):
    """The GPS receiver keeps talking but reports no fix for ``down_s`` (a tunnel, a depot roof)."""

    kind: Literal["gps_no_fix"] = "gps_no_fix"
    t_s: Seconds
    gateway: str
    down_s: float = Field(gt=0.0)


class GpsJump(_Frozen):
    """For ``duration_s`` the receiver reports a position offset by (``north_m``, ``east_m``)
    from the truth (multipath between tall buildings), with a valid-looking fix."""

    kind: Literal["gps_jump"] = "gps_jump"
    t_s: Seconds
    gateway: str
    duration_s: float = Field(gt=0.0)
    north_m: float = 0.0
    east_m: float = 0.0


class BluetoothdRestart(_Frozen):
    kind: Literal["bluetoothd_restart"] = "bluetoothd_restart"
    t_s: Seconds
    down_s: float = Field(default=1.0, ge=0.0)


class AdapterRemoved(_Frozen):
    kind: Literal["adapter_removed"] = "adapter_removed"
    t_s: Seconds
    gateway: str


class DiscoveryRefused(_Frozen):
    kind: Literal["discovery_refused"] = "discovery_refused"
    t_s: Seconds
    times: int = Field(default=1, gt=0)


class BrokerOutage(_Frozen):
    """The MQTT broker is unreachable for ``down_s`` (the caller owns the broker)."""

    kind: Literal["broker_outage"] = "broker_outage"
    t_s: Seconds
    down_s: float = Field(gt=0.0)


class PowerCut(_Frozen):
    """Power cut: SIGKILL to the gateway process whose pid the caller gives the runner.

    ``gateway``: whose power goes (None: the one process the caller names, or every gateway of
    the scenario for a caller that owns them all); ``down_s``: how long it stays off before the
    caller that owns the process starts it again (the runner itself never restarts it)."""

    kind: Literal["power_cut"] = "power_cut"
    t_s: Seconds
    gateway: str | None = None
    down_s: float = Field(default=5.0, ge=0.0)


Fault = Annotated[
    Garbage
    | DropBytes
    | CorruptCrc
    | Unplug
    | GpsNoFix
    | GpsJump
    | BluetoothdRestart
    | AdapterRemoved
    | DiscoveryRefused
    | BrokerOutage
    | PowerCut,
    Field(discriminator="kind"),
]


# --- ground truth -------------------------------------------------------------------------------


class HandoffTruth(_Frozen):
    """What a correct handoff session at ``door`` concludes about ``vehicle``'s load."""

    door: str
    vehicle: str
    window_s: tuple[Seconds, Seconds]
    expected: tuple[str, ...]
    confirmed: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...] = ()
    neighbours: tuple[str, ...] = ()
    """Doors that overhear this handoff: their gateways must confirm none of its items (nor
    count them unexpected) and report no presence of them in their dock zones."""

    @model_validator(mode="after")
    def _partition(self) -> Self:
        exp, conf, miss = set(self.expected), set(self.confirmed), set(self.missing)
        unexp = set(self.unexpected)
        if conf & miss or conf | miss != exp:
            raise ValueError("confirmed and missing must partition expected")
        if unexp & exp:
            raise ValueError("unexpected items must not be expected")
        if self.window_s[1] <= self.window_s[0]:
            raise ValueError("window_s must be (start, end) with end > start")
        return self


class ExcursionTruth(_Frozen):
    """The sensor is beyond its limit strictly inside (start_s, end_s) and within it outside."""

    item: str
    sensor: str
    above: float | None = None
    below: float | None = None
    start_s: Seconds
    end_s: Seconds

    @model_validator(mode="after")
    def _limit(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above / below")
        if self.end_s <= self.start_s:
            raise ValueError("end_s must be after start_s")
        return self


class DeliveryTruth(_Frozen):
    """An item leaves the vehicle at ``actual_stop``; ``expected_stop`` is its destination."""

    item: str
    expected_stop: str
    actual_stop: str

    @property
    def wrong_stop(self) -> bool:
        return self.expected_stop != self.actual_stop


class DepartureTruth(_Frozen):
    """What a correct gateway reports when the route's vehicle leaves the depot."""

    route: str
    missing: tuple[str, ...] = ()
    """On the route (``Item.route``) but not on board when the vehicle leaves."""
    misloaded: tuple[str, ...] = ()
    """On board when the vehicle leaves, but manifested on another route (or none)."""


class LeftOnBoardTruth(_Frozen):
    """``item`` (for ``stop``) is still on board when the vehicle leaves that stop."""

    item: str
    stop: str


class SpikeTruth(_Frozen):
    """A reading beyond a limit strictly inside (start_s, end_s) that is too short to be an
    excursion under a consecutive rule: a correct gateway raises nothing for it."""

    item: str
    sensor: str
    above: float | None = None
    below: float | None = None
    start_s: Seconds
    end_s: Seconds

    @model_validator(mode="after")
    def _limit(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above / below")
        if self.end_s <= self.start_s:
            raise ValueError("end_s must be after start_s")
        return self


class ShockTruth(_Frozen):
    """A shock of ``Scenario.shocks`` (the item's, at ``t_s``) that a correct gateway alarms on
    under the item's profile. A shock not listed here may be recorded but must not alarm."""

    item: str
    t_s: Seconds


class WarningTruth(_Frozen):
    """An approach to a limit that a correct gateway warns of: raised once, at ``by_s`` at the
    latest (before the crossing the matching excursion starts at). A warning not listed here
    must not be raised (for a spike, for noise, for a load cooling back after an excursion)."""

    item: str
    sensor: str
    above: float | None = None
    below: float | None = None
    by_s: Seconds

    @model_validator(mode="after")
    def _limit(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above / below")
        return self


class GroundTruth(_Frozen):
    """What a correct gateway concludes, and by omission what it must not.

    Every list is exhaustive: a handoff, excursion, delivery, departure, left-on-board alert,
    shock alarm or early warning that is not listed here must not be reported, and each listed
    one is reported once. A delivery whose ``actual_stop`` differs from its ``expected_stop`` is
    a misdelivery alert. ``spikes`` name what must not be raised although a sensor crosses a
    limit (too briefly for the item's rule).
    """

    handoffs: tuple[HandoffTruth, ...] = ()
    excursions: tuple[ExcursionTruth, ...] = ()
    deliveries: tuple[DeliveryTruth, ...] = ()
    departures: tuple[DepartureTruth, ...] = ()
    left_on_board: tuple[LeftOnBoardTruth, ...] = ()
    spikes: tuple[SpikeTruth, ...] = ()
    shocks: tuple[ShockTruth, ...] = ()
    warnings: tuple[WarningTruth, ...] = ()


# --- the scenario -------------------------------------------------------------------------------


class Scenario(_Frozen):
    name: str
    description: str = ""
    seed: int = 0
    """Seeds every random draw (RSSI noise, sensor noise, placement); same seed, same world."""
    start: datetime | None = None
    """Simulated UTC time at t = 0; when omitted the runner starts at the real current time."""
    duration_s: float = Field(gt=0.0)
    radio: Radio = Radio()
    vehicles: tuple[Vehicle, ...] = ()
    doors: tuple[Door, ...] = ()
    routes: tuple[Route, ...] = ()
    items: tuple[Item, ...] = ()
    movements: tuple[Movement, ...] = ()
    shocks: tuple[ShockSpec, ...] = ()
    faults: tuple[Fault, ...] = ()
    ground_truth: GroundTruth = GroundTruth()

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.utcoffset() is None:
            raise ValueError("start must carry a UTC offset (e.g. 2026-03-02T06:00:00Z)")
        return v

    @property
    def gateways(self) -> tuple[GatewaySpec, ...]:
        """Every gateway, doors first, in file order."""
        return tuple(d.gateway for d in self.doors) + tuple(
            v.gateway for v in self.vehicles if v.gateway is not None
        )

    def stops(self) -> dict[str, Stop]:
        return {s.id: s for r in self.routes for s in r.stops}

    @model_validator(mode="after")
    def _references(self) -> Self:
        holders = [v.id for v in self.vehicles] + [d.id for d in self.doors]
        holders += [s.id for r in self.routes for s in r.stops]
        _unique("holder (vehicle / door / stop)", holders)
        _unique("item", [i.id for i in self.items])
        _unique("gateway", [g.id for g in self.gateways])
        _unique("adapter", [g.adapter for g in self.gateways])
        _unique("route vehicle", [r.vehicle for r in self.routes])
        holder_set, items = set(holders), {i.id for i in self.items}
        vehicles = {v.id: v for v in self.vehicles}
        gateways = {g.id: g for g in self.gateways}
        for r in self.routes:
            if r.vehicle not in vehicles:
                raise ValueError(f"route {r.id}: unknown vehicle {r.vehicle}")
        routed = {r.vehicle for r in self.routes}
        for v in self.vehicles:
            if bool(v.track) == (v.id in routed):
                raise ValueError(f"vehicle {v.id}: give either a track or a route, not both")
        for i in self.items:
            if i.at not in holder_set:
                raise ValueError(f"item {i.id}: unknown holder {i.at}")
        last_arrival: dict[str, float] = {}
        for m in self.movements:
            if m.item not in items or m.to not in holder_set:
                raise ValueError(f"movement of {m.item} to {m.to}: unknown item or holder")
            if m.t_s < last_arrival.get(m.item, 0.0):
                raise ValueError(f"movement of {m.item} at {m.t_s}: overlaps its previous move")
            last_arrival[m.item] = m.t_s + m.duration_s
        for s in self.shocks:
            if s.item not in items:
                raise ValueError(f"shock: unknown item {s.item}")
        for f in self.faults:
            gw = getattr(f, "gateway", None)
            if gw is not None and gw not in gateways:
                raise ValueError(f"fault {f.kind} at {f.t_s}: unknown gateway {gw}")
            if gw is None:
                continue
            device = "gps" if isinstance(f, GpsNoFix | GpsJump) else getattr(f, "device", None)
            if device is None and isinstance(f, DropBytes | CorruptCrc):
                device = "smartlabel"
            if device == "gps" and not gateways[gw].gps:
                raise ValueError(f"fault {f.kind} at {f.t_s}: gateway {gw} has no GPS")
            if device == "smartlabel" and not gateways[gw].smartlabel_reader:
                raise ValueError(
                    f"fault {f.kind} at {f.t_s}: gateway {gw} has no SmartLabel reader"
                )
        routes = {r.id: r for r in self.routes}
        for i in self.items:
            if i.stop is not None and i.route is None:
                raise ValueError(f"item {i.id}: a stop without a route")
            if i.route in routes and i.stop not in {s.id for s in routes[i.route].stops}:
                raise ValueError(f"item {i.id}: stop {i.stop} is not a stop of route {i.route}")
        truth = self.ground_truth
        for h in truth.handoffs:
            refs = {*h.expected, *h.unexpected}
            if h.door not in holder_set or h.vehicle not in vehicles or not refs <= items:
                raise ValueError(f"handoff at {h.door}: unknown door, vehicle or item")
        stops = self.stops()
        for e in truth.excursions:
            if e.item not in items:
                raise ValueError(f"excursion: unknown item {e.item}")
        for d in truth.deliveries:
            if d.item not in items or d.expected_stop not in stops or d.actual_stop not in stops:
                raise ValueError(f"delivery of {d.item}: unknown item or stop")
        for h in truth.handoffs:
            if not set(h.neighbours) <= {d.id for d in self.doors} or h.door in h.neighbours:
                raise ValueError(f"handoff at {h.door}: neighbours must be other doors")
        by_id = {i.id: i for i in self.items}
        for dep in truth.departures:
            if dep.route not in routes:
                raise ValueError(f"departure: unknown route {dep.route}")
            for it in (*dep.missing, *dep.misloaded):
                if it not in items:
                    raise ValueError(f"departure of {dep.route}: unknown item {it}")
            if any(by_id[i].route != dep.route for i in dep.missing):
                raise ValueError(f"departure of {dep.route}: a missing item is not on the route")
            if any(by_id[i].route == dep.route for i in dep.misloaded):
                raise ValueError(f"departure of {dep.route}: a misloaded item is on the route")
        for lob in truth.left_on_board:
            if lob.item not in items or lob.stop not in stops:
                raise ValueError(f"left on board: unknown item {lob.item} or stop {lob.stop}")
        for sp in truth.spikes:
            if sp.item not in items:
                raise ValueError(f"spike: unknown item {sp.item}")
        shocks = {(sh.item, sh.t_s) for sh in self.shocks}
        for st in truth.shocks:
            if (st.item, st.t_s) not in shocks:
                raise ValueError(f"shock truth: no shock of {st.item} at {st.t_s} s")
        for w in truth.warnings:
            if w.item not in items or w.sensor not in by_id[w.item].sensors:
                raise ValueError(f"warning: unknown item {w.item} or its sensor {w.sensor}")
        return self


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} id {i!r}")
        seen.add(i)
