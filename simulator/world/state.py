"""The world's state as a pure function of simulated time.

:class:`World` reads a :class:`~simulator.world.model.Scenario` once and then answers, for any
instant ``t_s``, where every vehicle and item is, what each sensor reads, and which tags each
gateway hears at which RSSI. There is no I/O and no hidden state: the runner asks for a
:class:`Snapshot` every tick and turns the differences into device traffic, and tests ask the
same questions without starting anything.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from simulator.world.geo import GeoPoint, Projection, bearing_deg, distance_m
from simulator.world.model import (
    Curve,
    Fault,
    GatewaySpec,
    GpsJump,
    GpsNoFix,
    Scenario,
    ShockSpec,
    Tag,
)
from simulator.world.radio import mean_rssi_dbm, seeded_gauss, seeded_uniform

__all__ = [
    "DEFAULT_START",
    "GatewayPlacement",
    "GpsReading",
    "ItemState",
    "Sighting",
    "Snapshot",
    "TagRef",
    "VehicleState",
    "World",
]

#: Simulated wall-clock time at t = 0 when neither the scenario nor the caller gives one, so the
#: pure state function stays reproducible.
DEFAULT_START: Final = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

#: Items on a vehicle start this far behind its gateway (the gateway sits at the load space's
#: front), and spread sideways over a trailer's inner width.
CARGO_FRONT_GAP_M: Final = 1.0
CARGO_HALF_WIDTH_M: Final = 1.2
#: Items on a dock floor lie at least this far behind the door frame (the levelling plate).
DOCK_MIN_DEPTH_M: Final = 2.0
#: A lane in front of a dock door is about as wide as the door.
DOCK_HALF_WIDTH_M: Final = 4.0
#: Parcels left at a stop end up on the doorstep, a few metres from where the van parks.
DOORSTEP_MIN_M: Final = 1.0
DOORSTEP_MAX_M: Final = 3.0
#: A waypoint closer than this to the previous one is the vehicle manoeuvring in place, not
#: a heading (GPS scatters by a metre or two anyway).
MIN_MOVE_M: Final = 1.0
#: Below this a vehicle counts as standing still (GPS speed noise is larger).
STANDSTILL_MPS: Final = 0.05
#: Vehicle states remembered (a few instants of a few vehicles); cleared when full.
_VEHICLE_CACHE_SIZE: Final = 256
#: Setting off more than this far from where the nose points is reversing, not a U-turn on the
#: spot (a lorry cannot turn in place; it pulls away from a dock in reverse or forwards).
REVERSE_ABOVE_DEG: Final = 90.0
#: ... when that first leg is at most this long: pulling off a dock or out of a bay. A longer
#: leg is the vehicle turning round and driving off forwards (a van leaving a stop).
REVERSE_MAX_M: Final = 50.0


@dataclass(frozen=True, slots=True)
class VehicleState:
    id: str
    position: GeoPoint
    speed_mps: float
    heading_deg: float
    """Direction of travel (what a GPS receiver reports); kept while parked."""
    at_stop: str | None
    """The route stop the vehicle is dwelling at, if any."""
    body_heading_deg: float = 0.0
    """Where the vehicle's nose points. It equals ``heading_deg`` except while reversing: a
    vehicle that sets off from standstill away from its nose (more than 90 degrees) reverses
    until it next stands still, so its load stays where it is instead of swapping ends."""


@dataclass(frozen=True, slots=True)
class GpsReading:
    """What a vehicle's GPS receiver reports at an instant: a position, or no fix."""

    gateway: str
    position: GeoPoint | None
    """None while the receiver has no fix (a tunnel)."""
    jumped: bool = False
    """The position is off by a scheduled ``gps_jump`` (multipath), not the truth."""


@dataclass(frozen=True, slots=True)
class ItemState:
    id: str
    holder: str | None
    """The vehicle, door or stop holding the item; None while it is being carried."""
    position: GeoPoint
    sensors: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class TagRef:
    """One tag of one item, with its resolved BLE address."""

    item: str
    index: int
    address: str
    tag: Tag


@dataclass(frozen=True, slots=True)
class GatewayPlacement:
    """Where a gateway is mounted: on a door (fixed) or on a vehicle (moving)."""

    spec: GatewaySpec
    door: str | None
    vehicle: str | None


@dataclass(frozen=True, slots=True)
class Sighting:
    """Gateway ``gateway`` hears the tag at ``address`` (of ``item``) at ``rssi_dbm``."""

    gateway: str
    adapter: str
    item: str
    address: str
    rssi_dbm: int
    distance_m: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    t_s: float
    when: datetime
    vehicles: Mapping[str, VehicleState]
    items: Mapping[str, ItemState]
    sightings: tuple[Sighting, ...]

    def heard_by(self, gateway: str) -> dict[str, Sighting]:
        """The tags ``gateway`` hears now, by BLE address."""
        return {s.address: s for s in self.sightings if s.gateway == gateway}

    def items_heard_by(self, gateway: str) -> frozenset[str]:
        return frozenset(s.item for s in self.sightings if s.gateway == gateway)


def _angle_deg(a: float, b: float) -> float:
    """The smaller angle between two bearings, in [0, 180]."""
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def derive_address(scenario: str, item: str, index: int) -> str:
    """A stable BLE random static address (two top bits set) for a tag without one."""
    raw = bytearray(hashlib.blake2b(f"{scenario}/{item}/{index}".encode(), digest_size=6).digest())
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


def curve_value(curve: Curve, t_s: float) -> float:
    """The noiseless curve at ``t_s``: linear between points, flat outside them."""
    pts = curve.points
    if t_s <= pts[0][0]:
        return pts[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(pts):
        if t_s <= t1:
            return v0 + (v1 - v0) * (t_s - t0) / (t1 - t0)
    return pts[-1][1]


class World:
    """A scenario turned into a function of simulated time."""

    def __init__(self, scenario: Scenario, *, start: datetime | None = None) -> None:
        self.scenario = scenario
        self.start = start or scenario.start or DEFAULT_START
        self._seed = scenario.seed
        self._vehicles = {v.id: v for v in scenario.vehicles}
        self._doors = {d.id: d for d in scenario.doors}
        self._stops = scenario.stops()
        self._stop_of_vehicle = {
            s.id: r.vehicle for r in scenario.routes for s in r.stops
        }  # stop id -> vehicle visiting it
        self._tracks = {v.id: self._track(v.id) for v in scenario.vehicles}
        self._bodies = {v: self._body_headings(track) for v, track in self._tracks.items()}
        self._rest = {
            v: tuple(self._rest_heading(track, k) for k in range(len(track)))
            for v, track in self._tracks.items()
        }
        self._vehicle_cache: dict[tuple[str, float], VehicleState] = {}
        #: Each item's spot in each holder, drawn once from the seed.
        self._spots: dict[tuple[str, str], tuple[float, float]] = {}
        self._proj = Projection(self._origin())
        self._items = {i.id: i for i in scenario.items}
        self._moves = {
            i.id: sorted((m for m in scenario.movements if m.item == i.id), key=lambda m: m.t_s)
            for i in scenario.items
        }
        self.gateways: dict[str, GatewayPlacement] = {}
        for d in scenario.doors:
            self.gateways[d.gateway.id] = GatewayPlacement(d.gateway, d.id, None)
        for v in scenario.vehicles:
            if v.gateway is not None:
                self.gateways[v.gateway.id] = GatewayPlacement(v.gateway, None, v.id)
        self.tags: tuple[TagRef, ...] = tuple(
            TagRef(i.id, n, tag.address or derive_address(scenario.name, i.id, n), tag)
            for i in scenario.items
            for n, tag in enumerate(i.tags)
        )

    # --- vehicles ---------------------------------------------------------------------------

    def _track(self, vehicle: str) -> tuple[tuple[float, GeoPoint], ...]:
        v = self._vehicles[vehicle]
        if v.track:
            return tuple((w.t_s, GeoPoint(w.lat, w.lon)) for w in v.track)
        route = next(r for r in self.scenario.routes if r.vehicle == vehicle)
        depot = GeoPoint(route.depot_lat, route.depot_lon)
        points = [(route.start_s, depot)]
        for s in route.stops:
            here = GeoPoint(s.lat, s.lon)
            points += [(s.arrive_s, here), (s.depart_s, here)]
        if route.return_s is not None:
            points.append((route.return_s, depot))
        # Zero-length dwells would repeat a time; keep the later point of equal times.
        dedup: dict[float, GeoPoint] = dict(points)
        return tuple(sorted(dedup.items(), key=lambda p: p[0]))

    def _origin(self) -> GeoPoint:
        if self.scenario.doors:
            return GeoPoint(self.scenario.doors[0].lat, self.scenario.doors[0].lon)
        for track in self._tracks.values():
            return track[0][1]
        return GeoPoint(0.0, 0.0)

    def vehicle_state(self, vehicle: str, t_s: float) -> VehicleState:
        # Every item aboard asks for its vehicle at the same instant: answer from a small cache
        # (the state is a pure function of the instant, so caching cannot change it).
        key = (vehicle, t_s)
        cached = self._vehicle_cache.get(key)
        if cached is None:
            if len(self._vehicle_cache) >= _VEHICLE_CACHE_SIZE:
                self._vehicle_cache.clear()
            cached = self._vehicle_cache[key] = self._vehicle_state(vehicle, t_s)
        return cached

    def _vehicle_state(self, vehicle: str, t_s: float) -> VehicleState:
        track, rest = self._tracks[vehicle], self._rest[vehicle]
        position, speed, heading = track[-1][1], 0.0, rest[len(track) - 1]
        if t_s <= track[0][0]:
            position, heading = track[0][1], rest[0]
        else:
            # At a waypoint's exact time the segment starting there applies, so a vehicle
            # that has just arrived is parked (speed 0), not still arriving.
            for k, ((t0, p0), (t1, p1)) in enumerate(itertools.pairwise(track)):
                if t_s < t1:
                    frac = (t_s - t0) / (t1 - t0)
                    x0, y0 = self._proj.to_xy(p0)
                    x1, y1 = self._proj.to_xy(p1)
                    position = self._proj.to_geo(x0 + (x1 - x0) * frac, y0 + (y1 - y0) * frac)
                    speed = distance_m(p0, p1) / (t1 - t0)
                    heading = bearing_deg(p0, p1) if speed > STANDSTILL_MPS else rest[k]
                    if speed <= STANDSTILL_MPS:
                        speed = 0.0
                    break
        at_stop = None
        for stop_id, s in self._stops.items():
            if self._stop_of_vehicle[stop_id] == vehicle and s.arrive_s <= t_s <= s.depart_s:
                at_stop = stop_id
        return VehicleState(vehicle, position, speed, heading, at_stop, self._body(vehicle, t_s))

    def _body(self, vehicle: str, t_s: float) -> float:
        track, bodies = self._tracks[vehicle], self._bodies[vehicle]
        for k in range(len(track) - 1):
            if t_s < track[k + 1][0]:
                return bodies[k]
        return bodies[-1]

    @classmethod
    def _body_headings(cls, track: tuple[tuple[float, GeoPoint], ...]) -> tuple[float, ...]:
        """The nose's direction on each segment (one value per segment; one for a lone point).

        The nose follows the direction of travel, except on a short leg (at most
        :data:`REVERSE_MAX_M`) that sets off from standstill more than :data:`REVERSE_ABOVE_DEG`
        away from the nose: the vehicle reverses along it, nose opposite to travel, and turns
        to drive forwards at its end (the turn itself takes no time in this model; it happens
        away from the dock, out of the door gateways' hearing)."""
        body = cls._rest_heading(track, 0)
        standing, out = True, []
        for (_, a), (_, b) in itertools.pairwise(track):
            leg = distance_m(a, b)
            if leg <= MIN_MOVE_M:
                standing = True
                out.append(body)
                continue
            travel = bearing_deg(a, b)
            reversing = (
                standing and leg <= REVERSE_MAX_M and _angle_deg(travel, body) > REVERSE_ABOVE_DEG
            )
            standing = False
            body = (travel + 180.0) % 360.0 if reversing else travel
            out.append(body)
        return tuple(out) if out else (body,)

    @staticmethod
    def _rest_heading(track: tuple[tuple[float, GeoPoint], ...], upto: int) -> float:
        """Heading of the last real movement up to waypoint ``upto`` (parked vehicles keep it);
        before the first movement, the heading it will set off in."""
        moves = [
            (k, bearing_deg(a, b))
            for k, ((_, a), (_, b)) in enumerate(itertools.pairwise(track), start=1)
            if distance_m(a, b) > MIN_MOVE_M
        ]
        before = [h for k, h in moves if k <= upto]
        if before:
            return before[-1]
        return moves[0][1] if moves else 0.0

    # --- items -----------------------------------------------------------------------------------

    def holder_at(self, item: str, t_s: float) -> str | None:
        """The holder of ``item`` at ``t_s``; None while it is being carried."""
        return self._where(item, t_s)[0]

    def _where(self, item: str, t_s: float) -> tuple[str | None, str, str, float]:
        """(holder or None, from, to, fraction of the carry done)."""
        current = self._items[item].at
        for m in self._moves[item]:
            if t_s < m.t_s:
                break
            if t_s < m.t_s + m.duration_s:
                return None, current, m.to, (t_s - m.t_s) / m.duration_s
            current = m.to
        return current, current, current, 1.0

    def _placed(self, item: str, holder: str, t_s: float) -> tuple[float, float]:
        """Metres east / north of the item placed in ``holder`` (stable per item and holder)."""
        uv = self._spots.get((item, holder))
        if uv is None:
            uv = self._spots[(item, holder)] = (
                seeded_uniform(self._seed, "place-u", item, holder),
                seeded_uniform(self._seed, "place-v", item, holder, low=-1.0, high=1.0),
            )
        u, v = uv
        if holder in self._vehicles:
            veh = self._vehicles[holder]
            state = self.vehicle_state(holder, t_s)
            back = math.radians(state.body_heading_deg + 180.0)
            depth = CARGO_FRONT_GAP_M + u * veh.cargo_length_m
            side = v * CARGO_HALF_WIDTH_M
            base = self._proj.to_xy(state.position)
        elif holder in self._doors:
            door = self._doors[holder]
            back = math.radians(door.facing_deg + 180.0)
            depth = DOCK_MIN_DEPTH_M + u * (door.dock_depth_m - DOCK_MIN_DEPTH_M)
            side = v * DOCK_HALF_WIDTH_M
            base = self._proj.to_xy(GeoPoint(door.lat, door.lon))
        else:
            stop = self._stops[holder]
            back = math.radians(360.0 * u)
            depth = DOORSTEP_MIN_M + abs(v) * (DOORSTEP_MAX_M - DOORSTEP_MIN_M)
            side = 0.0
            base = self._proj.to_xy(GeoPoint(stop.lat, stop.lon))
        # Bearings are clockwise from north: the unit vector is (sin, cos) in (east, north).
        dx, dy = math.sin(back), math.cos(back)
        return base[0] + depth * dx + side * dy, base[1] + depth * dy - side * dx

    def item_position(self, item: str, t_s: float) -> GeoPoint:
        holder, frm, to, frac = self._where(item, t_s)
        if holder is not None:
            return self._proj.to_geo(*self._placed(item, holder, t_s))
        x0, y0 = self._placed(item, frm, t_s)
        x1, y1 = self._placed(item, to, t_s)
        return self._proj.to_geo(x0 + (x1 - x0) * frac, y0 + (y1 - y0) * frac)

    def sensor_value(self, item: str, sensor: str, t_s: float) -> float:
        """What the item's sensor reports at ``t_s``: curve plus seeded noise, in 0.01 steps."""
        curve = self._items[item].sensors[sensor]
        period = math.floor(t_s / curve.period_s)
        noise = seeded_gauss(self._seed, "sensor", item, sensor, period, sigma=curve.noise)
        return round(curve_value(curve, t_s) + noise, 2)

    def item_state(self, item: str, t_s: float) -> ItemState:
        sensors = {name: self.sensor_value(item, name, t_s) for name in self._items[item].sensors}
        return ItemState(item, self.holder_at(item, t_s), self.item_position(item, t_s), sensors)

    # --- radio -----------------------------------------------------------------------------------

    def gateway_position(self, gateway: str, t_s: float) -> GeoPoint:
        g = self.gateways[gateway]
        if g.door is not None:
            door = self._doors[g.door]
            return GeoPoint(door.lat, door.lon)
        assert g.vehicle is not None
        return self.vehicle_state(g.vehicle, t_s).position

    def sightings(
        self, t_s: float, positions: Mapping[str, GeoPoint] | None = None
    ) -> list[Sighting]:
        """Which tags each gateway hears at ``t_s`` and how loud."""
        exponent = self.scenario.radio.path_loss_exponent
        sigma = self.scenario.radio.shadowing_sigma_db
        item_pos = positions or {i: self.item_position(i, t_s) for i in self._items}
        holders = {i: self.holder_at(i, t_s) for i in self._items}
        out: list[Sighting] = []
        for gw_id, g in self.gateways.items():
            here = self.gateway_position(gw_id, t_s)
            for ref in self.tags:
                d = distance_m(here, item_pos[ref.item])
                holder = holders[ref.item]
                loss = 0.0
                if holder in self._vehicles and holder != g.vehicle:
                    loss = self._vehicles[holder].body_loss_db
                mean = mean_rssi_dbm(ref.tag.tx_power_1m_dbm, d, exponent, loss)
                if mean < g.spec.sensitivity_dbm:
                    continue
                tick = math.floor(t_s / ref.tag.interval_s)
                noise = seeded_gauss(self._seed, "rssi", ref.address, gw_id, tick, sigma=sigma)
                out.append(
                    Sighting(gw_id, g.spec.adapter, ref.item, ref.address, round(mean + noise), d)
                )
        return out

    # --- everything at once ------------------------------------------------------------------

    def when(self, t_s: float) -> datetime:
        return self.start + timedelta(seconds=t_s)

    def snapshot(self, t_s: float) -> Snapshot:
        vehicles = {v: self.vehicle_state(v, t_s) for v in self._vehicles}
        items = {i: self.item_state(i, t_s) for i in self._items}
        positions = {i: s.position for i, s in items.items()}
        return Snapshot(t_s, self.when(t_s), vehicles, items, tuple(self.sightings(t_s, positions)))

    def shocks_between(self, t0_s: float, t1_s: float) -> list[ShockSpec]:
        """Shocks in the half-open interval (t0_s, t1_s]; t0_s < 0 includes time 0."""
        return [s for s in self.scenario.shocks if t0_s < s.t_s <= t1_s]

    def gps_reading(self, gateway: str, t_s: float) -> GpsReading:
        """What the GPS receiver of ``gateway`` (on a vehicle) reports at ``t_s``: the truth,
        no fix inside a ``gps_no_fix`` fault, an offset position inside a ``gps_jump``."""
        vehicle = self.gateways[gateway].vehicle
        if vehicle is None:
            raise ValueError(f"gateway {gateway} is not on a vehicle")
        truth = self.vehicle_state(vehicle, t_s).position
        jumped = False
        for f in self.scenario.faults:
            if getattr(f, "gateway", None) != gateway:
                continue
            if isinstance(f, GpsNoFix) and f.t_s <= t_s < f.t_s + f.down_s:
                return GpsReading(gateway, None)
            if isinstance(f, GpsJump) and f.t_s <= t_s < f.t_s + f.duration_s:
                truth, jumped = self._proj.offset(truth, f.east_m, f.north_m), True
        return GpsReading(gateway, truth, jumped)

    def faults_between(self, t0_s: float, t1_s: float) -> list[Fault]:
        """Scheduled faults in (t0_s, t1_s], in time order."""
        due = [f for f in self.scenario.faults if t0_s < f.t_s <= t1_s]
        return sorted(due, key=lambda f: f.t_s)
