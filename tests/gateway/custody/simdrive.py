"""Drive one custody engine per simulated gateway with the simulator's own world model.

Each gateway's engine gets exactly what that gateway's scanner would hear (the world's
sightings at each advertising instant, with their noisy RSSI) and what its GPS receiver reports
(no fix in a tunnel, a jumped position); the handoff sessions and routes are opened from the
scenario as the platform would send them. Results are collected per gateway, with the
simulated second they were produced at.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class HandoffMatch:
    """One handoff's report compared with its ground truth, item by item."""

    door: str
    confirmed_ok: int
    missing_ok: int
    unexpected_ok: int
    wrong_confirmed: frozenset[str]
    wrong_missing: frozenset[str]
    wrong_unexpected: frozenset[str]
    lacking_unexpected: frozenset[str]
    claimed_by_neighbours: frozenset[str]
    live: int

    @property
    def exact(self) -> bool:
        return not (
            self.wrong_confirmed
            or self.wrong_missing
            or self.wrong_unexpected
            or self.lacking_unexpected
            or self.claimed_by_neighbours
        )


def match_handoffs(scenario: Scenario, out: Outcome) -> list[HandoffMatch]:
    """Each ground-truth handoff against the report of its door's session ``S<n>``, and every
    report at its neighbouring doors against its items."""
    gw_of = {d.id: d.gateway.id for d in scenario.doors}
    matches = []
    for n, h in enumerate(scenario.ground_truth.handoffs):
        reports = [r for r in out.reports(gw_of[h.door]) if r.session_id == f"S{n}"]
        assert len(reports) == 1, f"{h.door}: {len(reports)} reports"
        r = reports[0]
        items = {*h.expected, *h.unexpected}
        claimed = {
            i
            for nb in h.neighbours
            for rep in out.reports(gw_of[nb])
            for i in (*rep.confirmed, *rep.unexpected)
            if i in items
        }
        claimed |= {
            c.item for nb in h.neighbours for c in out.confirmations(gw_of[nb]) if c.item in items
        }
        live = [c for c in out.confirmations(gw_of[h.door]) if c.session_id == f"S{n}"]
        matches.append(
            HandoffMatch(
                door=h.door,
                confirmed_ok=len(set(r.confirmed) & set(h.confirmed)),
                missing_ok=len(set(r.missing) & set(h.missing)),
                unexpected_ok=len(set(r.unexpected) & set(h.unexpected)),
                wrong_confirmed=frozenset(set(r.confirmed) - set(h.confirmed)),
                wrong_missing=frozenset(set(r.missing) - set(h.missing)),
                wrong_unexpected=frozenset(set(r.unexpected) - set(h.unexpected)),
                lacking_unexpected=frozenset(set(h.unexpected) - set(r.unexpected)),
                claimed_by_neighbours=frozenset(claimed),
                live=sum(1 for c in live if c.basis == "level"),
            )
        )
    return matches


@dataclass(frozen=True)
class DeliveryMatch:
    """A vehicle gateway's results compared with the scenario's ground truth."""

    evidence_ok: int
    evidence_wrong: frozenset[tuple[str, str]]
    evidence_lacking: frozenset[tuple[str, str]]
    misdelivery: frozenset[tuple[str, str | None, str | None]]
    misdelivery_truth: frozenset[tuple[str, str | None, str | None]]
    left_on_board: frozenset[tuple[str, str | None]]
    left_on_board_truth: frozenset[tuple[str, str | None]]
    departures: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    departures_truth: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    misloads: tuple[str, ...]
    alerts: int

    @property
    def exact(self) -> bool:
        return (
            not self.evidence_wrong
            and not self.evidence_lacking
            and self.misdelivery == self.misdelivery_truth
            and self.left_on_board == self.left_on_board_truth
            and self.departures == self.departures_truth
            and tuple(sorted(self.misloads))
            == tuple(m for _, ms in self.departures_truth for m in ms)
            and self.alerts
            == len(self.misdelivery_truth) + len(self.left_on_board_truth) + len(self.misloads)
        )


def match_deliveries(scenario: Scenario, out: Outcome) -> DeliveryMatch:
    """Evidence, alerts and departures of the route's vehicle gateway against the truth."""
    truth = scenario.ground_truth
    (gw,) = (
        v.gateway.id
        for v in scenario.vehicles
        if v.gateway is not None and v.id in {r.vehicle for r in scenario.routes}
    )
    ev = {(e.parcel, e.stop_id) for e in out.evidences(gw)}
    ev_truth = {(d.item, d.actual_stop) for d in truth.deliveries if not d.wrong_stop}
    alerts = out.alerts(gw)
    return DeliveryMatch(
        evidence_ok=len(ev & ev_truth),
        evidence_wrong=frozenset(ev - ev_truth),
        evidence_lacking=frozenset(ev_truth - ev),
        misdelivery=frozenset(
            (a.parcel, a.stop_id, a.expected_stop) for a in alerts if a.alert == "misdelivery"
        ),
        misdelivery_truth=frozenset(
            (d.item, d.actual_stop, d.expected_stop) for d in truth.deliveries if d.wrong_stop
        ),
        left_on_board=frozenset(
            (a.parcel, a.stop_id) for a in alerts if a.alert == "left_on_board"
        ),
        left_on_board_truth=frozenset((x.item, x.stop) for x in truth.left_on_board),
        departures=tuple((d.missing, d.misloaded) for d in out.departures(gw)),
        departures_truth=tuple(
            (tuple(sorted(d.missing)), tuple(sorted(d.misloaded))) for d in truth.departures
        ),
        misloads=tuple(a.parcel for a in alerts if a.alert == "misload"),
        alerts=len(alerts),
    )


def carries(scenario: Scenario) -> dict[tuple[str, str], tuple[float, float]]:
    """(item, door) -> when its first carry to that door starts and ends (simulated seconds)."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for m in sorted(scenario.movements, key=lambda m: m.t_s):
        out.setdefault((m.item, m.to), (m.t_s, m.t_s + m.duration_s))
    return out


def premature(scenario: Scenario, out: Outcome) -> list[tuple[str, str, float]]:
    """Live confirmations (``handoff.item``) before their item was carried to the door: an
    item confirmed while it was still in the vehicle. (door, item, at) of each."""
    gw_of = {d.id: d.gateway.id for d in scenario.doors}
    carry = carries(scenario)
    bad = []
    for h in scenario.ground_truth.handoffs:
        for c in out.confirmations(gw_of[h.door]):
            started = carry.get((c.item, h.door), (float("inf"), 0.0))[0]
            if c.at_s < started:
                bad.append((h.door, c.item, c.at_s))
    return bad


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
    share_claims_every_s: float | None = 10.0,
    wrong_manifest: bool = False,
    open_early_s: float = 0.0,
) -> Outcome:
    """Run the scenario second by second through one engine per gateway.

    Every door gateway gets the scenario's handoff sessions for its door (opened at the window's
    start, closed by the window's end); with ``neighbour_sessions`` each neighbouring door of a
    handoff also runs a session of its own (one unrelated expected item), so that "unexpected"
    claims there are checked too. With ``snapshot_every_s`` every engine is replaced by a fresh
    one restored from its snapshot that often (a restart, or a kill -9 after the last save).
    Door gateways exchange their claims every ``share_claims_every_s`` (None: the site link is
    down and each door decides alone). With ``wrong_manifest`` the neighbours' sessions expect
    the handoff's own items (the manifest was sent to the wrong door as well). With
    ``open_early_s`` every session opens that long before its window's start (not before t = 0):
    the platform opened it while the vehicle was still on its way to the door.
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
        start = max(0.0, start - open_early_s)
        sessions.append(
            (start, gw, SessionSpec(f"S{n}", h.door, "carrier", "hub", h.expected, start, end))
        )
        if neighbour_sessions:
            busy = {o.door for o in scenario.ground_truth.handoffs}
            for nb in (d for d in h.neighbours if d not in busy):
                ngw = next(g for g, d in doors.items() if d == nb)
                items = h.expected if wrong_manifest else (f"own-of-{nb}-{n}",)
                spec = SessionSpec(f"S{n}-{nb}", nb, "x", "y", items, start, end)
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
            unopened = out.engines[gw].handoffs.state_of(spec.session_id) == "unknown"
            if unopened and start <= t < start + step:
                out.engines[gw].open_session(spec, t)
        for s in world.sightings(t):
            if s.gateway in doors:
                res = out.engines[s.gateway].observe(
                    s.address, s.item, doors[s.gateway], s.rssi_dbm, t
                )
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
        if share_claims_every_s is not None and k % max(1, round(share_claims_every_s / step)) == 0:
            claims = {gw: out.engines[gw].claims() for gw in doors}
            for gw in doors:
                for other, theirs in claims.items():
                    if other != gw:
                        out.engines[gw].neighbour_claims(theirs, t)
        for gw, engine in out.engines.items():
            out.results[gw] += [(t, r) for r in engine.tick(t)]
        if snapshot_every_s is not None and k % max(1, round(snapshot_every_s / step)) == 0:
            for gw, engine in list(out.engines.items()):
                restarted = CustodyEngine(
                    door_zones=engine.door_zones, cargo_zones=engine.cargo_zones
                )
                assert restarted.restore(json.loads(json.dumps(engine.snapshot())))
                out.engines[gw] = restarted
        k += 1
        t = k * step
    return out
