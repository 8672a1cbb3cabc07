"""Vehicle mode as a pure state machine, with a fake clock and a fake GPS track."""

from __future__ import annotations

import json
import math

import pytest

from gateway.custody import (
    CustodyEngine,
    CustodyError,
    DeliveryAlert,
    DeliveryEvidence,
    RouteDeparture,
    RouteSpec,
    StopSpec,
    effective_radii,
)
from gateway.custody.rules import (
    CARGO_TIMEOUT_S,
    DEFAULT_DEPOT_RADIUS_M,
    DEFAULT_STOP_RADIUS_M,
    MIN_STOP_RADIUS_M,
)

DEPOT = (52.0, 5.0)
M_PER_DEG = 111_195.0
ON_BOARD_DBM = -65
DOORSTEP_FAR_DBM = -90  # a parcel left on a doorstep, heard from a van driving off


def at(north_m: float, east_m: float) -> tuple[float, float]:
    lat = DEPOT[0] + north_m / M_PER_DEG
    return lat, DEPOT[1] + east_m / (M_PER_DEG * math.cos(math.radians(DEPOT[0])))


def route(*, s2_east: float = 2000.0, radius: float | None = 40.0) -> RouteSpec:
    s1, s2 = at(1000, 0), at(1000, s2_east)
    return RouteSpec(
        "R1",
        *DEPOT,
        (
            StopSpec("S1", *s1, ("P1", "P2"), radius),
            StopSpec("S2", *s2, ("P3",), radius),
        ),
    )


class Van:
    """A van driven by a fake clock: its position each second, and the parcels aboard."""

    def __init__(self, spec: RouteSpec | None = None) -> None:
        self.engine = CustodyEngine(cargo_zones={"cargo"})
        self.engine.load_route(spec or route(), 0.0)
        self.t = 0.0
        self.pos = at(0, 0)
        self.aboard: dict[str, int] = {}
        self.results: list[object] = []
        self.fix_ok = True

    def step(self, seconds: float = 1.0, *, fix: tuple[float, float] | None = None) -> None:
        end = self.t + seconds
        while self.t < end:
            for tag, rssi in self.aboard.items():
                self.results += self.engine.observe(f"tag-{tag}", tag, "cargo", rssi, self.t)
            lat, lon = fix or self.pos
            self.results += self.engine.position(lat, lon, self.fix_ok, self.t, hdop=1.0)
            self.results += self.engine.tick(self.t)
            self.t += 1.0

    def drive_to(self, north_m: float, east_m: float, seconds: float) -> None:
        lat0, lon0 = self.pos
        lat1, lon1 = at(north_m, east_m)
        n = int(seconds)
        for k in range(1, n + 1):
            self.pos = (lat0 + (lat1 - lat0) * k / n, lon0 + (lon1 - lon0) * k / n)
            self.step()

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [r for r in self.results if isinstance(r, kind)]


def tour(van: Van, *, deliver: dict[str, list[str]], drop_outside: str | None = None) -> None:
    """Depot -> S1 -> S2; at each stop the listed parcels leave the cargo zone."""
    van.step(30)
    van.drive_to(1000, 0, 120)
    van.step(20)
    for p in deliver.get("S1", []):
        van.aboard[p] = DOORSTEP_FAR_DBM
    van.step(40)
    van.drive_to(1000, 1000, 60)
    if drop_outside:
        van.aboard[drop_outside] = DOORSTEP_FAR_DBM
    van.drive_to(1000, 2000, 60)
    van.step(20)
    for p in deliver.get("S2", []):
        van.aboard[p] = DOORSTEP_FAR_DBM
    van.step(40)
    van.drive_to(0, 0, 200)
    van.step(60)


def test_a_clean_tour_gives_departure_and_one_evidence_per_parcel() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "P3": ON_BOARD_DBM}
    tour(van, deliver={"S1": ["P1", "P2"], "S2": ["P3"]})
    (dep,) = van.of(RouteDeparture)
    assert dep.missing == ()
    assert dep.misloaded == ()
    assert dep.on_board == ("P1", "P2", "P3")
    ev = van.of(DeliveryEvidence)
    assert sorted((e.parcel, e.stop_id) for e in ev) == [("P1", "S1"), ("P2", "S1"), ("P3", "S2")]
    assert all(e.distance_m < 40.0 for e in ev)
    assert ev[0].identity == ("R1", "S1", ev[0].parcel)
    assert van.of(DeliveryAlert) == []


def test_departure_names_missing_and_misloaded_parcels_and_alerts_the_misload_once() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "STRANGER": ON_BOARD_DBM}
    tour(van, deliver={"S1": ["P1", "P2"]})
    (dep,) = van.of(RouteDeparture)
    assert dep.missing == ("P3",)
    assert dep.misloaded == ("STRANGER",)
    alerts = van.of(DeliveryAlert)
    assert [(a.alert, a.parcel) for a in alerts] == [("misload", "STRANGER")]


def test_a_parcel_left_at_the_wrong_stop_is_a_misdelivery_naming_both_stops() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "P3": ON_BOARD_DBM}
    tour(van, deliver={"S1": ["P1", "P2", "P3"]})
    (a,) = van.of(DeliveryAlert)
    assert (a.alert, a.parcel, a.stop_id, a.expected_stop) == ("misdelivery", "P3", "S1", "S2")


def test_a_parcel_leaving_between_stops_is_a_misdelivery_at_no_stop() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "P3": ON_BOARD_DBM}
    tour(van, deliver={"S1": ["P1", "P2"]}, drop_outside="P3")
    (a,) = van.of(DeliveryAlert)
    assert (a.alert, a.parcel, a.stop_id, a.expected_stop) == ("misdelivery", "P3", None, "S2")


def test_a_parcel_still_aboard_when_the_van_leaves_its_stop_raises_one_alert() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "P3": ON_BOARD_DBM}
    tour(van, deliver={"S1": ["P1"], "S2": ["P3"]})
    alerts = van.of(DeliveryAlert)
    assert [(a.alert, a.parcel, a.stop_id) for a in alerts] == [("left_on_board", "P2", "S1")]
    assert {e.parcel for e in van.of(DeliveryEvidence)} == {"P1", "P3"}


def test_a_gps_jump_while_parked_decides_nothing() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "P3": ON_BOARD_DBM}
    van.step(30)
    van.drive_to(1000, 0, 120)
    van.step(20)
    van.step(4, fix=at(1400, 0))  # multipath: 400 m north for 4 s
    van.step(20)
    assert van.engine.route.counters["fix_jump"] == 4
    assert van.of(DeliveryAlert) == []  # S1's parcels were not "left on board"
    van.aboard["P1"] = DOORSTEP_FAR_DBM
    van.step(CARGO_TIMEOUT_S + 2)
    assert [e.parcel for e in van.of(DeliveryEvidence)] == ["P1"]


def test_consistent_fixes_far_away_re_anchor_the_position() -> None:
    van = Van()
    van.step(5)
    van.step(10, fix=at(5000, 0))  # the first fixes were wrong, not these
    assert van.engine.route.counters["fix_reanchor"] == 1
    last = van.engine.route.last_fix
    assert last is not None
    assert last.lat == pytest.approx(at(5000, 0)[0])


def test_no_decision_on_a_stale_fix() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "P3": ON_BOARD_DBM}
    van.step(30)
    van.drive_to(1000, 0, 120)
    van.step(20)
    van.fix_ok = False  # under a roof: no fix
    van.step(10)
    van.aboard["P1"] = DOORSTEP_FAR_DBM  # last heard aboard 10 s after the last fix
    van.step(60)
    assert van.of(DeliveryEvidence) == []
    assert van.of(DeliveryAlert) == []
    assert van.engine.route.counters["leave_undetermined"] == 1
    assert van.engine.route.counters["fix_poor"] == 70


def test_a_poor_fix_is_ignored() -> None:
    van = Van()
    van.step(5)
    van.engine.position(*at(900, 0), True, van.t, hdop=12.0)
    assert van.engine.route.counters["fix_poor"] == 1
    last = van.engine.route.last_fix
    assert last is not None
    assert last.lat == pytest.approx(at(0, 0)[0])


def test_a_route_loaded_on_the_road_reports_no_departure() -> None:
    van = Van()
    van.pos = at(500, 0)
    van.aboard = {"P1": ON_BOARD_DBM}
    van.step(30)
    assert van.of(RouteDeparture) == []


def test_geofence_radius_comes_from_the_neighbours() -> None:
    depot, radii = effective_radii(route(s2_east=60.0, radius=None))
    assert radii == {"S1": pytest.approx(30.0, rel=1e-3), "S2": pytest.approx(30.0, rel=1e-3)}
    assert depot == DEFAULT_DEPOT_RADIUS_M
    _, radii = effective_radii(route(s2_east=10.0))
    assert radii["S1"] == MIN_STOP_RADIUS_M
    _, radii = effective_radii(route(s2_east=5000.0, radius=None))
    assert radii["S1"] == DEFAULT_STOP_RADIUS_M


def test_the_route_survives_a_restart() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM, "P3": ON_BOARD_DBM}
    van.step(30)
    van.drive_to(1000, 0, 120)
    saved = json.loads(json.dumps(van.engine.snapshot()))
    fresh = CustodyEngine(cargo_zones={"cargo"})
    assert fresh.restore(saved)
    van.engine = fresh
    van.step(20)
    van.aboard["P1"] = DOORSTEP_FAR_DBM
    van.step(CARGO_TIMEOUT_S + 2)
    assert len(van.of(RouteDeparture)) == 1
    assert [e.parcel for e in van.of(DeliveryEvidence)] == ["P1"]


def state(e: CustodyEngine) -> str:
    return json.dumps(e.snapshot(), sort_keys=True)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (RouteSpec("R2", *DEPOT, ()), "at least one stop"),
        (RouteSpec("R2", 95.0, 5.0, (StopSpec("S", 1, 1, ()),)), "latitude"),
        (RouteSpec("R2", *DEPOT, (StopSpec("S", 1, 200.0, ()),)), "longitude"),
        (RouteSpec("R2", *DEPOT, (StopSpec("S", math.nan, 1, ()),)), "latitude"),
        (RouteSpec("R2", *DEPOT, (StopSpec("S", 1, 1, ("p", "p")),)), "twice"),
        (RouteSpec("R2", *DEPOT, (StopSpec("S", 1, 1, ()), StopSpec("S", 2, 2, ()))), "twice"),
        (RouteSpec("R2", *DEPOT, (StopSpec("S", 1, 1, (), -5.0),)), "radius"),
        (
            RouteSpec("R2", *DEPOT, (StopSpec("S", 1, 1, tuple(map(str, range(100_000)))),)),
            "at most",
        ),
        (
            RouteSpec("R2", *DEPOT, tuple(StopSpec(f"S{n}", 1, 1, ()) for n in range(501))),
            "at most",
        ),
        (RouteSpec("R2", *DEPOT, route().stops), "under way"),
        (RouteSpec("R1", *DEPOT, route().stops[:1]), "different content"),
    ],
)
def test_hostile_routes_are_refused_and_leave_the_route_untouched(
    bad: RouteSpec, match: str
) -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM}
    van.step(5)
    before = state(van.engine)
    with pytest.raises(CustodyError, match=match):
        van.engine.load_route(bad, van.t)
    assert state(van.engine) == before


def test_a_resent_route_is_recognised_and_replace_loads_another() -> None:
    van = Van()
    assert van.engine.load_route(route(), 1.0) == "already_loaded"
    other = RouteSpec("R2", *DEPOT, route().stops)
    assert van.engine.load_route(other, 1.0, replace=True) == "loaded"
    assert van.engine.route.route_id == "R2"


def test_a_door_gateway_refuses_a_route() -> None:
    door = CustodyEngine(door_zones={"door-3"})
    with pytest.raises(CustodyError, match="no cargo zone"):
        door.load_route(route(), 0.0)


def test_a_route_parcel_only_ever_heard_faintly_is_not_on_board() -> None:
    van = Van()
    van.aboard = {"P1": ON_BOARD_DBM, "P2": ON_BOARD_DBM}
    van.step(30)
    van.drive_to(300, 0, 60)  # out of the depot's 150 m geofence
    van.aboard["P3"] = DOORSTEP_FAR_DBM  # first heard after departure, and only faintly
    van.step(CARGO_TIMEOUT_S + 5)
    (dep,) = van.of(RouteDeparture)
    assert dep.on_board == ("P1", "P2")
    assert dep.missing == ("P3",)
