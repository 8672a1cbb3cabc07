"""Drive one custody engine per simulated gateway with the simulator's own world model.

Each gateway's engine gets exactly what that gateway's scanner would hear (the world's
sightings at each advertising instant, with their noisy RSSI) and what its GPS receiver reports
(no fix in a tunnel, a jumped position); the handoff sessions and routes are opened from the
scenario as the platform would send them. Results are collected per gateway, with the
simulated second they were produced at.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gateway.custody import (
    CustodyEngine,
    CustodyResult,
    DeliveryAlert,
    DeliveryEvidence,
    HandoffReport,
    ItemConfirmed,
    RouteDeparture,
    RouteSpec,
    SessionSpec,
    StopSpec,
)
from simulator.world import Scenario, World

CARGO = "cargo"


@dataclass
class Outcome:
    """Everything the engines concluded, by gateway."""

    world: World
    results: dict[str, list[tuple[float, CustodyResult]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    engines: dict[str, CustodyEngine] = field(default_factory=dict)

    def of(self, gateway: str, kind: type[CustodyResult]) -> list[CustodyResult]:
        return [r for _, r in self.results[gateway] if isinstance(r, kind)]

    def reports(self, gateway: str) -> list[HandoffReport]:
        return [r for _, r in self.results[gateway] if isinstance(r, HandoffReport)]

    def confirmations(self, gateway: str) -> list[ItemConfirmed]:
        return [r for _, r in self.results[gateway] if isinstance(r, ItemConfirmed)]

    def evidences(self, gateway: str) -> list[DeliveryEvidence]:
        return [r for _, r in self.results[gateway] if isinstance(r, DeliveryEvidence)]

    def alerts(self, gateway: str) -> list[DeliveryAlert]:
        return [r for _, r in self.results[gateway] if isinstance(r, DeliveryAlert)]

    def departures(self, gateway: str) -> list[RouteDeparture]:
        return [r for _, r in self.results[gateway] if isinstance(r, RouteDeparture)]


def route_spec(scenario: Scenario, route_id: str) -> RouteSpec:
    """The ``route.load`` the platform sends for ``route_id``: parcels by their route/stop."""
    route = next(r for r in scenario.routes if r.id == route_id)
    parcels: dict[str, list[str]] = defaultdict(list)
    for item in scenario.items:
        if item.route == route_id and item.stop is not None:
            parcels[item.stop].append(item.id)
    return RouteSpec(
        route_id=route.id,
        depot_lat=route.depot_lat,
        depot_lon=route.depot_lon,
        stops=tuple(
            StopSpec(s.id, s.lat, s.lon, tuple(parcels[s.id]), s.radius_m) for s in route.stops
        ),
    )


def drive(
    scenario: Scenario,
    *,
    neighbour_sessions: bool = True,
    until_s: float | None = None,
    snapshot_every_s: float | None = None,
) -> Outcome:
    """Run the scenario second by second through one engine per gateway.

    Every door gateway gets the scenario's handoff sessions for its door (opened at the window's
    start, closed by the window's end); with ``neighbour_sessions`` each neighbouring door of a
    handoff also runs a session of its own (one unrelated expected item), so that "unexpected"
    claims there are checked too. With ``snapshot_every_s`` every engine is replaced by a fresh
    one restored from its snapshot that often (a restart, or a kill -9 after the last save).
    """
    world = World(scenario)
    out = Outcome(world)
    doors = {d.gateway.id: d.id for d in scenario.doors}
    vehicles = {
        v.gateway.id: v.id for v in scenario.vehicles if v.gateway is not None and v.gateway.gps
    }
    for gw, door in doors.items():
        out.engines[gw] = CustodyEngine(door_zones={door})
    for gw in vehicles:
        out.engines[gw] = CustodyEngine(cargo_zones={CARGO})
    sessions: list[tuple[float, str, SessionSpec]] = []
    for n, h in enumerate(scenario.ground_truth.handoffs):
        gw = next(g for g, d in doors.items() if d == h.door)
        start, end = h.window_s
        sessions.append(
            (start, gw, SessionSpec(f"S{n}", h.door, "carrier", "hub", h.expected, start, end))
        )
        if neighbour_sessions:
            for nb in h.neighbours:
                ngw = next(g for g, d in doors.items() if d == nb)
                spec = SessionSpec(f"S{n}-{nb}", nb, "x", "y", (f"own-of-{nb}",), start, end)
                sessions.append((start, ngw, spec))
    routes = {
        next(g for g, v in vehicles.items() if v == r.vehicle): r.id
        for r in scenario.routes
        if r.vehicle in vehicles.values()
    }
    for gw, rid in routes.items():
        out.engines[gw].load_route(route_spec(scenario, rid), 0.0)
    end_s = until_s if until_s is not None else scenario.duration_s
    step = min((ref.tag.interval_s for ref in world.tags), default=1.0)
    t, k = 0.0, 0
    while t <= end_s:
        for start, gw, spec in sessions:
            if start <= t < start + step:
                # A session may be open at both ends of a layout: only once per engine.
                if out.engines[gw].handoffs.state_of(spec.session_id) == "unknown":
                    out.engines[gw].open_session(spec, t)
        for s in world.sightings(t):
            if s.gateway in doors:
                res = out.engines[s.gateway].observe(s.address, s.item, doors[s.gateway], s.rssi_dbm, t)
            elif s.gateway in out.engines:
                res = out.engines[s.gateway].observe(s.address, s.item, CARGO, s.rssi_dbm, t)
            else:
                continue
            out.results[s.gateway] += [(t, r) for r in res]
        for gw in vehicles:
            reading = world.gps_reading(gw, t)
            pos = reading.position
            if pos is None:
                out.engines[gw].position(0.0, 0.0, False, t)
            else:
                out.engines[gw].position(pos.lat, pos.lon, True, t, hdop=0.9)
        for gw, engine in out.engines.items():
            out.results[gw] += [(t, r) for r in engine.tick(t)]
        if snapshot_every_s is not None and k % max(1, round(snapshot_every_s / step)) == 0:
            for gw, engine in list(out.engines.items()):
                fresh = CustodyEngine(door_zones=engine.door_zones, cargo_zones=engine.cargo_zones)
                assert fresh.restore(engine.snapshot())
                out.engines[gw] = fresh
        k += 1
        t = k * step
    return out
