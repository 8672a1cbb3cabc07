"""Vehicle mode: a loaded route, the parcels in the cargo zone, and the geofences they leave in.

Data path role: on a van's gateway the pipeline feeds every sighting of a tracked tag in the
cargo zone and every GPS fix. A parcel is *in the cargo zone* while adverts at least
:data:`~gateway.custody.rules.CARGO_RSSI_DBM` loud keep coming; it *left* at its last such advert
once :data:`CARGO_TIMEOUT_S` has passed without another. Where it left is the accepted fix
nearest that instant (no older or newer than :data:`FIX_MAX_AGE_S`); without one nothing is
decided. Leaving inside its stop's geofence is delivery evidence, elsewhere a misdelivery. When
the vehicle leaves the depot it reports what is missing and what is misloaded; when it leaves a
stop, a parcel for that stop still heard in the cargo zone after the exit is left on board.

Fixes are accepted only when good (a fix, HDOP at most :data:`FIX_MAX_HDOP`) and plausible (no
faster than :data:`FIX_MAX_SPEED_MPS` from the last accepted one, unless
:data:`FIX_REANCHOR_FIXES` fixes in a row agree), and a geofence is left only after
:data:`GEOFENCE_EXIT_FIXES` accepted fixes outside it. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import JsonValue

from gateway.custody.errors import CustodyError
from gateway.custody.results import (
    DeliveryAlert,
    DeliveryEvidence,
    Fix,
    ItemEvidence,
    RouteDeparture,
)
from gateway.custody.rules import (
    CARGO_RSSI_DBM,
    CARGO_TIMEOUT_S,
    DEFAULT_DEPOT_RADIUS_M,
    DEFAULT_STOP_RADIUS_M,
    FIX_MAX_AGE_S,
    FIX_MAX_HDOP,
    FIX_MAX_SPEED_MPS,
    FIX_REANCHOR_FIXES,
    GEOFENCE_EXIT_FIXES,
    MAX_ID_CHARS,
    MAX_PARCELS_PER_ROUTE,
    MAX_STOPS_PER_ROUTE,
    MAX_UNKNOWN_PARCELS,
    MIN_STOP_RADIUS_M,
    NEIGHBOUR_RADIUS_FRACTION,
)

__all__ = ["RouteBook", "RouteSpec", "StopSpec", "distance_m", "effective_radii"]

#: Mean Earth radius (IUGG); haversine over a city is accurate far below GPS noise.
_EARTH_RADIUS_M = 6_371_008.8
#: Accepted fixes kept to place a parcel's leaving: the leave is decided CARGO_TIMEOUT_S after
#: the instant, which needs the fixes around it, with room for a slow tick.
_FIXES_KEPT = 256

#: "Never heard in the cargo zone": a monotonic time no real sighting can precede (a finite
#: number, so the snapshot stays plain JSON).
_NEVER_S = -1.0e12

DeliveryResult = RouteDeparture | DeliveryEvidence | DeliveryAlert


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class StopSpec:
    stop_id: str
    lat: float
    lon: float
    parcels: tuple[str, ...]
    """Asset ids or tag ids of the parcels for this stop."""
    radius_m: float | None = None
    """The geofence radius asked for; None: :data:`DEFAULT_STOP_RADIUS_M`."""


@dataclass(frozen=True, slots=True)
class RouteSpec:
    route_id: str
    depot_lat: float
    depot_lon: float
    stops: tuple[StopSpec, ...]
    depot_radius_m: float | None = None

    def fingerprint(self) -> str:
        text = json.dumps(
            [
                self.route_id,
                self.depot_lat,
                self.depot_lon,
                self.depot_radius_m,
                [[s.stop_id, s.lat, s.lon, s.radius_m, list(s.parcels)] for s in self.stops],
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def effective_radii(spec: RouteSpec) -> tuple[float, dict[str, float]]:
    """(depot radius, stop id -> radius): each asked-for (or default) radius, at most
    :data:`NEIGHBOUR_RADIUS_FRACTION` of the distance to the nearest other stop (or the depot),
    and at least :data:`MIN_STOP_RADIUS_M`."""
    points = [("", spec.depot_lat, spec.depot_lon)] + [
        (s.stop_id, s.lat, s.lon) for s in spec.stops
    ]
    asked = {"": spec.depot_radius_m or DEFAULT_DEPOT_RADIUS_M}
    asked |= {s.stop_id: s.radius_m or DEFAULT_STOP_RADIUS_M for s in spec.stops}
    out: dict[str, float] = {}
    for pid, lat, lon in points:
        nearest = min(
            (distance_m(lat, lon, la, lo) for qid, la, lo in points if qid != pid),
            default=math.inf,
        )
        out[pid] = max(MIN_STOP_RADIUS_M, min(asked[pid], NEIGHBOUR_RADIUS_FRACTION * nearest))
    depot = out.pop("")
    return depot, out


@dataclass(slots=True)
class _Parcel:
    key: str
    tag: str
    stop: str | None
    first_s: float
    last_s: float
    last_strong_s: float
    n: int = 0
    total: float = 0.0
    max_rssi: int = -200
    on_board: bool = True
    decided: bool = False
    misloaded: bool = False
    left_on_board: bool = False
    undetermined: bool = False

    def evidence(self, zone: str) -> ItemEvidence:
        return ItemEvidence(
            item=self.key,
            tag=self.tag,
            zone=zone,
            first_seen_s=self.first_s,
            last_seen_s=self.last_s,
            sightings=self.n,
            max_rssi_dbm=self.max_rssi,
            mean_rssi_dbm=round(self.total / self.n, 2) if self.n else -200.0,
        )


@dataclass(slots=True)
class _Fence:
    """A geofence's state from accepted fixes: inside, or how many fixes outside in a row."""

    inside: bool = False
    outside_fixes: int = 0
    first_outside_s: float = 0.0


@dataclass(slots=True)
class _Route:
    spec: RouteSpec
    loaded_at: float
    depot_radius: float
    radii: dict[str, float]
    stop_of: dict[str, str]
    parcels: dict[str, _Parcel] = field(default_factory=dict)
    depot: _Fence = field(default_factory=_Fence)
    fences: dict[str, _Fence] = field(default_factory=dict)
    #: "loaded" (not yet left the depot), "en_route", "returned".
    phase: Literal["loaded", "en_route", "returned"] = "loaded"
    departed_at: float | None = None
    departure_due: float | None = None
    #: Stop exits whose left-on-board check is due: (due time, stop, exit time).
    exits_due: list[tuple[float, str, float]] = field(default_factory=list)
    unknown: int = 0


class RouteBook:
    """The route loaded on one vehicle gateway, fed by its cargo zone and its GPS."""

    def __init__(self, cargo_zones: frozenset[str]) -> None:
        self.cargo_zones = cargo_zones
        self._route: _Route | None = None
        self._fixes: deque[Fix] = deque(maxlen=_FIXES_KEPT)
        self._rejected: list[Fix] = []
        self.counters: dict[str, int] = {
            "fix_poor": 0,
            "fix_jump": 0,
            "fix_reanchor": 0,
            "leave_undetermined": 0,
            "unknown_dropped": 0,
        }

    @property
    def route_id(self) -> str | None:
        return None if self._route is None else self._route.spec.route_id

    @property
    def last_fix(self) -> Fix | None:
        return self._fixes[-1] if self._fixes else None

    # --- commands ------------------------------------------------------------------------------

    def load(
        self, spec: RouteSpec, now: float, *, replace: bool = False
    ) -> Literal["loaded", "already_loaded"]:
        if not self.cargo_zones:
            raise CustodyError("route_id", "this gateway has no cargo zone (not a vehicle)")
        _check_route(spec)
        current = self._route
        if current is not None and current.spec.route_id == spec.route_id:
            if current.spec.fingerprint() == spec.fingerprint():
                return "already_loaded"
            raise CustodyError("route_id", "already loaded with different content")
        if current is not None and current.phase != "returned" and not replace:
            raise CustodyError(
                "route_id",
                f"route {current.spec.route_id} is still under way (set replace to load anyway)",
            )
        depot, radii = effective_radii(spec)
        stop_of = {p: s.stop_id for s in spec.stops for p in s.parcels}
        self._route = _Route(spec, now, depot, radii, stop_of)
        self._route.fences = {s.stop_id: _Fence() for s in spec.stops}
        return "loaded"

    # --- evidence ------------------------------------------------------------------------------

    def observe(self, tag: str, asset: str | None, zone: str, rssi: int, t: float) -> None:
        r = self._route
        if r is None or zone not in self.cargo_zones:
            return
        key = asset if asset is not None and asset in r.stop_of else tag
        if key not in r.stop_of and asset is not None:
            key = asset
        p = r.parcels.get(key)
        if p is None:
            stop = r.stop_of.get(key)
            if stop is None:
                if rssi < CARGO_RSSI_DBM:
                    return  # a stranger's tag nearby: no state for it
                if r.unknown >= MAX_UNKNOWN_PARCELS:
                    self.counters["unknown_dropped"] += 1
                    return
                r.unknown += 1
            strong = rssi >= CARGO_RSSI_DBM
            p = _Parcel(key, tag, stop, t, t, t if strong else _NEVER_S, on_board=strong)
            r.parcels[key] = p
        p.n += 1
        p.total += rssi
        p.max_rssi = max(p.max_rssi, rssi)
        p.last_s = t
        if rssi >= CARGO_RSSI_DBM:
            p.last_strong_s = t
            p.on_board = True

    def position(
        self, lat: float, lon: float, fix_ok: bool, t: float, hdop: float | None = None
    ) -> None:
        good = (
            fix_ok
            and math.isfinite(lat)
            and math.isfinite(lon)
            and -90.0 <= lat <= 90.0
            and -180.0 <= lon <= 180.0
            and (hdop is None or hdop <= FIX_MAX_HDOP)
        )
        if not good:
            self.counters["fix_poor"] += 1
            return
        fix = Fix(lat, lon, t)
        last = self.last_fix
        if last is not None and not _plausible(last, fix):
            self.counters["fix_jump"] += 1
            self._rejected = [f for f in self._rejected if _plausible(f, fix)] + [fix]
            if len(self._rejected) < FIX_REANCHOR_FIXES:
                return
            self.counters["fix_reanchor"] += 1
        self._rejected = []
        self._fixes.append(fix)
        if self._route is not None:
            self._geofences(self._route, fix)

    def _geofences(self, r: _Route, fix: Fix) -> None:
        spec = r.spec
        in_depot = distance_m(fix.lat, fix.lon, spec.depot_lat, spec.depot_lon) <= r.depot_radius
        if r.phase == "loaded":
            if in_depot:
                r.depot.inside, r.depot.outside_fixes = True, 0
            elif not r.depot.inside:
                r.phase = "en_route"  # loaded on the road: there is no departure to report
            elif _left(r.depot, fix):
                r.phase, r.departed_at = "en_route", r.depot.first_outside_s
                r.departure_due = r.departed_at + CARGO_TIMEOUT_S
            return
        if r.phase == "en_route" and in_depot and r.departure_due is None:
            r.phase = "returned"
        for s in spec.stops:
            fence = r.fences[s.stop_id]
            if distance_m(fix.lat, fix.lon, s.lat, s.lon) <= r.radii[s.stop_id]:
                fence.inside, fence.outside_fixes = True, 0
            elif fence.inside and _left(fence, fix):
                fence.inside = False
                exit_t = fence.first_outside_s
                r.exits_due.append((exit_t + CARGO_TIMEOUT_S, s.stop_id, exit_t))

    def tick(self, now: float) -> list[DeliveryResult]:
        r = self._route
        if r is None:
            return []
        out: list[DeliveryResult] = []
        for p in r.parcels.values():
            if p.on_board and now >= p.last_strong_s + CARGO_TIMEOUT_S:
                p.on_board = False
                if r.phase != "loaded" and not p.decided and (p.stop or p.misloaded):
                    out += self._left(r, p)
        if r.departure_due is not None and now >= r.departure_due:
            out += self._departure(r)
        due = [e for e in r.exits_due if now >= e[0]]
        r.exits_due = [e for e in r.exits_due if now < e[0]]
        for _, stop, exit_t in due:
            out += self._left_on_board(r, stop, exit_t)
        return out

    def _fix_near(self, t: float) -> Fix | None:
        best = min(self._fixes, key=lambda f: abs(f.at_s - t), default=None)
        return best if best is not None and abs(best.at_s - t) <= FIX_MAX_AGE_S else None

    def _left(self, r: _Route, p: _Parcel) -> list[DeliveryResult]:
        fix = self._fix_near(p.last_strong_s)
        if fix is None:
            p.undetermined = True
            self.counters["leave_undetermined"] += 1
            return []  # no decision on a stale or poor fix
        spec = r.spec
        if distance_m(fix.lat, fix.lon, spec.depot_lat, spec.depot_lon) <= r.depot_radius:
            return []  # unloaded at the depot
        p.decided = True
        zone = next(iter(sorted(self.cargo_zones)))
        inside = sorted(
            (distance_m(fix.lat, fix.lon, s.lat, s.lon), s.stop_id)
            for s in spec.stops
            if distance_m(fix.lat, fix.lon, s.lat, s.lon) <= r.radii[s.stop_id]
        )
        where = inside[0][1] if inside else None
        if where is not None and where == p.stop:
            return [
                DeliveryEvidence(
                    spec.route_id,
                    where,
                    p.key,
                    p.last_strong_s,
                    fix,
                    round(inside[0][0], 1),
                    p.evidence(zone),
                )
            ]
        return [
            DeliveryAlert(
                "misdelivery",
                spec.route_id,
                p.key,
                where,
                p.stop,
                p.last_strong_s,
                fix,
                p.evidence(zone),
            )
        ]

    def _departure(self, r: _Route) -> list[DeliveryResult]:
        assert r.departed_at is not None
        r.departure_due = None
        dep = r.departed_at
        on_board = sorted(k for k, p in r.parcels.items() if p.last_strong_s >= dep)
        aboard = set(on_board)
        route_parcels = [p for s in r.spec.stops for p in s.parcels]
        missing = tuple(sorted(p for p in route_parcels if p not in aboard))
        misloaded = tuple(k for k in on_board if r.parcels[k].stop is None)
        fix = self._fix_near(dep) or self.last_fix
        assert fix is not None  # the departure was decided from an accepted fix
        zone = next(iter(sorted(self.cargo_zones)))
        out: list[DeliveryResult] = [
            RouteDeparture(r.spec.route_id, dep, fix, tuple(on_board), missing, misloaded)
        ]
        for k in misloaded:
            p = r.parcels[k]
            p.misloaded = True
            out.append(
                DeliveryAlert("misload", r.spec.route_id, k, None, None, dep, fix, p.evidence(zone))
            )
        return out

    def _left_on_board(self, r: _Route, stop: str, exit_t: float) -> list[DeliveryResult]:
        out: list[DeliveryResult] = []
        fix = self._fix_near(exit_t) or self.last_fix
        zone = next(iter(sorted(self.cargo_zones)))
        for p in r.parcels.values():
            if p.stop == stop and p.on_board and p.last_strong_s >= exit_t and not p.left_on_board:
                p.left_on_board = True
                out.append(
                    DeliveryAlert(
                        "left_on_board",
                        r.spec.route_id,
                        p.key,
                        stop,
                        stop,
                        exit_t,
                        fix,
                        p.evidence(zone),
                    )
                )
        return out

    # --- persistence ----------------------------------------------------------------------------

    def to_json(self) -> JsonValue:
        r = self._route
        route: JsonValue = None
        if r is not None:
            route = {
                "spec": {
                    "route_id": r.spec.route_id,
                    "depot_lat": r.spec.depot_lat,
                    "depot_lon": r.spec.depot_lon,
                    "depot_radius_m": r.spec.depot_radius_m,
                    "stops": [
                        {
                            "stop_id": s.stop_id,
                            "lat": s.lat,
                            "lon": s.lon,
                            "radius_m": s.radius_m,
                            "parcels": list(s.parcels),
                        }
                        for s in r.spec.stops
                    ],
                },
                "loaded_at": r.loaded_at,
                "parcels": [
                    [
                        p.key,
                        p.tag,
                        p.stop,
                        p.first_s,
                        p.last_s,
                        p.last_strong_s,
                        p.n,
                        p.total,
                        p.max_rssi,
                        p.on_board,
                        p.decided,
                        p.misloaded,
                        p.left_on_board,
                        p.undetermined,
                    ]
                    for p in r.parcels.values()
                ],
                "depot": [r.depot.inside, r.depot.outside_fixes, r.depot.first_outside_s],
                "fences": {
                    k: [f.inside, f.outside_fixes, f.first_outside_s] for k, f in r.fences.items()
                },
                "phase": r.phase,
                "departed_at": r.departed_at,
                "departure_due": r.departure_due,
                "exits_due": [list(e) for e in r.exits_due],
                "unknown": r.unknown,
            }
        return {
            "route": route,
            "fixes": [[f.lat, f.lon, f.at_s] for f in self._fixes],
            "counters": dict(self.counters),
        }

    def restore(self, data: Any) -> None:
        fixes = deque((Fix(float(a), float(b), float(c)) for a, b, c in data["fixes"]), _FIXES_KEPT)
        d = data["route"]
        route: _Route | None = None
        if d is not None:
            sp = d["spec"]
            spec = RouteSpec(
                route_id=str(sp["route_id"]),
                depot_lat=float(sp["depot_lat"]),
                depot_lon=float(sp["depot_lon"]),
                depot_radius_m=sp["depot_radius_m"],
                stops=tuple(
                    StopSpec(
                        str(s["stop_id"]),
                        float(s["lat"]),
                        float(s["lon"]),
                        tuple(str(p) for p in s["parcels"]),
                        s["radius_m"],
                    )
                    for s in sp["stops"]
                ),
            )
            depot, radii = effective_radii(spec)
            stop_of = {p: s.stop_id for s in spec.stops for p in s.parcels}
            route = _Route(spec, float(d["loaded_at"]), depot, radii, stop_of)
            for row in d["parcels"]:
                key, tag, stop, first, last, strong, n, total, mx = row[:9]
                p = _Parcel(
                    str(key), str(tag), stop, first, last, strong, int(n), float(total), int(mx)
                )
                p.on_board, p.decided, p.misloaded, p.left_on_board, p.undetermined = (
                    bool(x) for x in row[9:14]
                )
                route.parcels[p.key] = p
            route.depot = _Fence(*d["depot"])
            route.fences = {str(k): _Fence(*v) for k, v in d["fences"].items()}
            route.phase = d["phase"]
            route.departed_at, route.departure_due = d["departed_at"], d["departure_due"]
            route.exits_due = [(float(a), str(b), float(c)) for a, b, c in d["exits_due"]]
            route.unknown = int(d["unknown"])
        self._route, self._fixes, self._rejected = route, fixes, []
        self.counters.update({str(k): int(v) for k, v in data["counters"].items()})


def _plausible(a: Fix, b: Fix) -> bool:
    dt = abs(b.at_s - a.at_s)
    return distance_m(a.lat, a.lon, b.lat, b.lon) <= FIX_MAX_SPEED_MPS * max(dt, 1.0)


def _left(fence: _Fence, fix: Fix) -> bool:
    """Count one more fix outside; True once enough in a row say the geofence was left."""
    if fence.outside_fixes == 0:
        fence.first_outside_s = fix.at_s
    fence.outside_fixes += 1
    if fence.outside_fixes >= GEOFENCE_EXIT_FIXES:
        fence.outside_fixes = 0
        return True
    return False


def _check_route(spec: RouteSpec) -> None:
    if not 0 < len(spec.route_id) <= MAX_ID_CHARS:
        raise CustodyError("route_id", f"1 to {MAX_ID_CHARS} characters")
    if not spec.stops:
        raise CustodyError("stops", "a route needs at least one stop")
    if len(spec.stops) > MAX_STOPS_PER_ROUTE:
        raise CustodyError("stops", f"{len(spec.stops)} stops, at most {MAX_STOPS_PER_ROUTE}")
    for lat, lon, where in [(spec.depot_lat, spec.depot_lon, "depot")] + [
        (s.lat, s.lon, f"stops.{s.stop_id}") for s in spec.stops
    ]:
        if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
            raise CustodyError(where, f"latitude {lat} out of range [-90, 90]")
        if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
            raise CustodyError(where, f"longitude {lon} out of range [-180, 180]")
    ids = [s.stop_id for s in spec.stops]
    if len(set(ids)) != len(ids):
        raise CustodyError("stops", "a stop id is listed twice")
    parcels = [p for s in spec.stops for p in s.parcels]
    if len(parcels) > MAX_PARCELS_PER_ROUTE:
        raise CustodyError("stops", f"{len(parcels)} parcels, at most {MAX_PARCELS_PER_ROUTE}")
    if len(set(parcels)) != len(parcels):
        raise CustodyError("stops", "a parcel is listed for two stops (or twice)")
    for r in [spec.depot_radius_m] + [s.radius_m for s in spec.stops]:
        if r is not None and not (math.isfinite(r) and 0.0 < r <= 100_000.0):
            raise CustodyError("radius_m", f"{r} is not a radius in (0, 100000] m")
