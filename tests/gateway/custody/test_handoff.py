"""Handoff sessions as a pure state machine, with a fake clock: every rule and its edges."""

from __future__ import annotations

import json

import pytest

from gateway.custody import (
    Claim,
    CustodyEngine,
    CustodyError,
    HandoffReport,
    ItemConfirmed,
    SessionSpec,
)
from gateway.custody.rules import (
    CLOSE_SETTLE_S,
    DWELL_S,
    MAX_ITEMS_PER_SESSION,
    PORTAL_RSSI_DBM,
    PORTAL_WINDOW_S,
    VEHICLE_GONE_S,
    VEHICLE_MIN_SIGHTINGS,
)

DOOR = "door-3"
TRAILER_DBM = -88  # a parcel in the trailer parked at the door (>= 9 m, behind 6 dB of body)
DOCK_NEAR_DBM = -70  # on the dock, a few metres behind the door
DOCK_DEEP_DBM = -87  # on the dock, 20 m deep: sounds like the trailer
CROSS_DBM = -60  # the carry through the door frame


def spec(
    sid: str = "S1", items: tuple[str, ...] = ("A", "B"), start: float = 0.0, end: float = 2000.0
) -> SessionSpec:
    return SessionSpec(sid, DOOR, "0614141000005", "hub", items, start, end, (("ASN", "A-1"),))


class Feed:
    """An engine plus a fake clock that sends each listed item's advert once a second."""

    def __init__(self, engine: CustodyEngine | None = None) -> None:
        self.engine = engine or CustodyEngine(door_zones={DOOR, "door-2"})
        self.t = 0.0
        self.results: list[object] = []

    def run(self, seconds: float, levels: dict[str, int | None], zone: str = DOOR) -> None:
        end = self.t + seconds
        while self.t < end:
            for item, rssi in levels.items():
                if rssi is not None:
                    self.results += self.engine.observe(f"tag-{item}", item, zone, rssi, self.t)
            self.results += self.engine.tick(self.t)
            self.t += 1.0

    def confirmations(self) -> list[ItemConfirmed]:
        return [r for r in self.results if isinstance(r, ItemConfirmed)]

    def reports(self) -> list[HandoffReport]:
        return [r for r in self.results if isinstance(r, HandoffReport)]


def unload(f: Feed, item: str, rest: int, others: dict[str, int | None]) -> None:
    """Carry ``item`` through the door frame: three loud adverts, then it rests at ``rest``."""
    f.run(3, {item: CROSS_DBM, **others})
    f.run(1, {item: rest, **others})


def test_a_parcel_carried_onto_the_dock_is_confirmed_live_once() -> None:
    f = Feed()
    f.engine.open_session(spec(), 0.0)
    f.run(60, {"A": TRAILER_DBM, "B": TRAILER_DBM})
    unload(f, "A", DOCK_NEAR_DBM, {"B": TRAILER_DBM})
    f.run(PORTAL_WINDOW_S + DWELL_S + 5, {"A": DOCK_NEAR_DBM, "B": TRAILER_DBM})
    (c,) = f.confirmations()
    assert (c.session_id, c.item, c.basis) == ("S1", "A", "level")
    assert c.evidence.crossed_at_s == pytest.approx(60.0)
    assert c.evidence.max_rssi_dbm == CROSS_DBM
    assert c.identity == ("S1", "A")
    # The trailer (with B) leaves; the session is closed by command and reports after the settle.
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"A": DOCK_NEAR_DBM})
    (r,) = f.reports()
    assert (r.confirmed, r.missing, r.unexpected) == (("A",), ("B",), ())
    assert r.close_reason == "command"
    assert r.documents == (("ASN", "A-1"),)
    assert len(f.confirmations()) == 1  # no second handoff.item for A
    ev = {e.item: e for e in r.evidence}
    assert ev["A"].sightings > 0
    assert ev["A"].first_seen_s == 0.0
    assert ev["B"].mean_rssi_dbm == pytest.approx(TRAILER_DBM)


def test_a_trailer_parcel_with_a_loud_advert_is_not_confirmed_and_missing_when_it_leaves() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(60, {"A": TRAILER_DBM})
    f.run(1, {"A": PORTAL_RSSI_DBM + 2})  # shadowing: one advert as loud as a portal read
    f.run(200, {"A": TRAILER_DBM})
    assert f.confirmations() == []
    f.engine.close_session("S1", f.t)
    f.run(10, {"A": TRAILER_DBM})
    f.run(CLOSE_SETTLE_S, {"A": None})  # the trailer pulled away with it
    (r,) = f.reports()
    assert r.missing == ("A",)
    assert r.confirmed == ()


def test_a_deep_dock_parcel_is_confirmed_when_it_stays_after_the_trailer_left() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A", "B")), 0.0)
    f.run(60, {"A": TRAILER_DBM, "B": TRAILER_DBM})
    unload(f, "A", DOCK_DEEP_DBM, {"B": TRAILER_DBM})
    f.run(200, {"A": DOCK_DEEP_DBM, "B": TRAILER_DBM})
    assert f.confirmations() == []  # its level cannot tell dock from trailer: pending
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"A": DOCK_DEEP_DBM, "B": None})  # B leaves with the trailer
    (c,) = f.confirmations()
    assert (c.item, c.basis) == ("A", "stayed")
    (r,) = f.reports()
    assert r.confirmed == ("A",)
    assert r.missing == ("B",)


def test_a_flickering_parcel_at_the_door_is_confirmed_once() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(60, {"A": TRAILER_DBM})
    for _ in range(40):  # heard loud, lost, loud, lost ... at the door
        f.run(1, {"A": CROSS_DBM})
        f.run(1, {"A": None})
        f.run(1, {"A": DOCK_NEAR_DBM})
    f.run(60, {"A": DOCK_NEAR_DBM})
    assert [c.item for c in f.confirmations()] == ["A"]


def test_a_parcel_carried_past_the_door_is_not_confirmed() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(60, {"A": TRAILER_DBM})
    f.run(3, {"A": CROSS_DBM})
    f.run(DWELL_S + 20, {"A": None})  # gone on past: no dwell
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"A": None})
    assert f.confirmations() == []
    assert f.reports()[0].missing == ("A",)


def test_a_trailer_that_leaves_and_comes_back_confirms_nothing_by_itself() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(100, {"A": TRAILER_DBM})
    f.run(120, {"A": None})  # pulled into the yard
    f.run(100, {"A": TRAILER_DBM - 2})  # back, parked a little further out
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"A": None})
    assert f.confirmations() == []
    assert f.reports()[0].missing == ("A",)


def test_closing_twice_is_refused_and_reports_once() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(10, {"A": TRAILER_DBM})
    f.engine.close_session("S1", f.t)
    with pytest.raises(CustodyError, match="already closed"):
        f.engine.close_session("S1", f.t + 1)
    f.run(CLOSE_SETTLE_S + 2, {})
    with pytest.raises(CustodyError, match="already closed and reported"):
        f.engine.close_session("S1", f.t)
    with pytest.raises(CustodyError, match="no such session"):
        f.engine.close_session("S9", f.t)
    f.run(100, {})
    assert len(f.reports()) == 1


def test_the_window_end_closes_the_session_and_sightings_outside_it_do_not_count() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",), start=50.0, end=100.0), 0.0)
    f.run(40, {"A": CROSS_DBM})  # before the window: not evidence
    f.run(CLOSE_SETTLE_S + 80, {"A": None})
    (r,) = f.reports()
    assert r.close_reason == "window_end"
    assert r.closed_at_s == 100.0
    assert r.evidence == ()
    assert r.missing == ("A",)


def test_other_zones_do_not_feed_the_session() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(60, {"A": TRAILER_DBM}, zone="door-2")
    f.run(3, {"A": CROSS_DBM}, zone="door-2")
    f.run(60, {"A": DOCK_NEAR_DBM}, zone="door-2")
    assert f.confirmations() == []


def dock_unexpected(f: Feed, level: int, carry: int = CROSS_DBM) -> None:
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(60, {"A": TRAILER_DBM, "X": TRAILER_DBM})
    f.run(3, {"X": carry, "A": TRAILER_DBM})
    f.run(100, {"A": TRAILER_DBM, "X": level})


def test_an_unexpected_parcel_near_the_door_is_reported() -> None:
    f = Feed()
    dock_unexpected(f, DOCK_NEAR_DBM)
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"X": DOCK_NEAR_DBM})
    assert f.reports()[0].unexpected == ("X",)
    assert f.confirmations() == []  # handoff.item is for expected items only


def test_an_unexpected_parcel_is_not_claimed_when_a_neighbour_hears_it_louder() -> None:
    f = Feed()
    dock_unexpected(f, DOCK_NEAR_DBM)
    ours = {c.item: c for c in f.engine.claims()}
    assert ours["X"].door == DOOR
    assert ours["X"].level_dbm == pytest.approx(DOCK_NEAR_DBM, abs=4.0)  # still settling
    assert not ours["X"].expected
    louder = Claim("door-4", "X", DOCK_NEAR_DBM + 3.0, -55, 100)
    assert f.engine.neighbour_claims([louder, Claim(DOOR, "X", 0.0, 0, 1)], f.t) == 1
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"X": DOCK_NEAR_DBM})
    assert f.reports()[0].unexpected == ()


def test_a_quieter_neighbour_does_not_stop_the_claim_and_a_stale_claim_is_ignored() -> None:
    f = Feed()
    # Too quiet for the single-door rule: a carry heard at -72 dBm, resting at -82 dBm.
    dock_unexpected(f, DOCK_DEEP_DBM + 5, carry=-72)
    f.engine.neighbour_claims([Claim("door-4", "X", DOCK_DEEP_DBM, -75, 100)], f.t)
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"X": DOCK_DEEP_DBM + 5})
    assert f.reports()[0].unexpected == ("X",)
    g = Feed()
    dock_unexpected(g, DOCK_DEEP_DBM + 5, carry=-72)
    g.engine.neighbour_claims([Claim("door-4", "X", DOCK_DEEP_DBM, -75, 100)], 0.0)  # long ago
    g.engine.close_session("S1", g.t)
    g.run(CLOSE_SETTLE_S + 2, {"X": DOCK_DEEP_DBM + 5})
    assert g.reports()[0].unexpected == ()  # alone, its evidence does not beat a neighbour's


def test_a_session_survives_a_restart_with_its_evidence() -> None:
    f = Feed()
    f.engine.open_session(spec(), 0.0)
    f.run(60, {"A": TRAILER_DBM, "B": TRAILER_DBM})
    unload(f, "A", DOCK_NEAR_DBM, {"B": TRAILER_DBM})
    f.run(10, {"A": DOCK_NEAR_DBM, "B": TRAILER_DBM})  # mid-dwell: kill -9 here
    saved = json.loads(json.dumps(f.engine.snapshot()))
    g = Feed(CustodyEngine(door_zones={DOOR, "door-2"}))
    assert g.engine.restore(saved)
    g.t = f.t
    g.run(DWELL_S + 5, {"A": DOCK_NEAR_DBM, "B": TRAILER_DBM})
    assert [c.item for c in g.confirmations()] == ["A"]
    with pytest.raises(CustodyError, match="already expected"):
        g.engine.open_session(spec("S2", ("B",)), g.t)  # the index of open items came back too
    g.engine.close_session("S1", g.t)
    g.run(CLOSE_SETTLE_S + 2, {"A": DOCK_NEAR_DBM})
    (r,) = g.reports()
    assert r.confirmed == ("A",)
    assert {e.item: e.first_seen_s for e in r.evidence} == {"A": 0.0, "B": 0.0}


def test_a_snapshot_that_is_not_one_is_refused_and_counted() -> None:
    e = CustodyEngine(door_zones={DOOR})
    e.open_session(spec(), 0.0)
    assert not e.restore({"version": 99})
    assert not e.restore({"version": 1, "handoffs": {"sessions": [{}]}, "route": {}})
    assert not e.restore("nonsense")
    assert e.restore_failures == 3
    assert e.handoffs.state_of("S1") == "open"  # a failed restore leaves the state alone


# --- hostile commands -------------------------------------------------------------------------


def state(e: CustodyEngine) -> str:
    return json.dumps(e.snapshot(), sort_keys=True)


def hostile_specs() -> list[tuple[SessionSpec, str, str]]:
    return [
        (SessionSpec("S2", "door-9", "a", "b", ("C",), 0, 10), "door", "unknown door"),
        (spec("S1", ("A", "C")), "session_id", "different session"),
        (spec("S2", ("C", "A")), "expected", "already expected by open session S1"),
        (spec("S2", ()), "expected", "at least one"),
        (spec("S2", tuple(f"i{n}" for n in range(100_000))), "expected", "at most"),
        (spec("S2", ("C", "C")), "expected", "twice"),
        (spec("S2", ("C",), start=10, end=5), "window", "end after"),
        (spec("S2", ("C",), start=0, end=10**6), "window", "at most"),
        (spec("", ("C",)), "session_id", "characters"),
    ]


@pytest.mark.parametrize(("bad", "field", "match"), hostile_specs())
def test_hostile_opens_are_refused_and_leave_the_sessions_untouched(
    bad: SessionSpec, field: str, match: str
) -> None:
    e = CustodyEngine(door_zones={DOOR})
    e.open_session(spec(), 0.0)
    e.observe("tag-A", "A", DOOR, -70, 1.0)
    before = state(e)
    with pytest.raises(CustodyError, match=match) as info:
        e.open_session(bad, 2.0)
    assert info.value.field == field
    assert state(e) == before


def test_a_resent_open_is_recognised_and_limits_hold() -> None:
    e = CustodyEngine(door_zones={DOOR})
    assert e.open_session(spec(), 0.0) == "opened"
    assert e.open_session(spec(start=5.0, end=2005.0), 5.0) == "already_open"
    big = spec("S-big", tuple(f"p{n}" for n in range(MAX_ITEMS_PER_SESSION)))
    assert e.open_session(big, 0.0) == "opened"  # the limit itself is accepted
    for n in range(3, 17):
        e.open_session(spec(f"S{n}", (f"item-{n}",)), 0.0)
    with pytest.raises(CustodyError, match="sessions already open"):
        e.open_session(spec("S99", ("z",)), 0.0)


def test_an_expected_parcel_a_neighbour_hears_clearly_louder_is_not_confirmed() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(60, {"A": TRAILER_DBM})
    unload(f, "A", DOCK_NEAR_DBM, {})
    # The next door hears it 3 dB louder (it lies in their lane) and does not expect it.
    f.engine.neighbour_claims([Claim("door-4", "A", DOCK_NEAR_DBM + 3.0, -55, 50)], f.t)
    f.run(PORTAL_WINDOW_S + DWELL_S + 2, {"A": DOCK_NEAR_DBM})
    assert f.confirmations() == []
    f.engine.neighbour_claims([Claim("door-4", "A", DOCK_NEAR_DBM + 3.0, -55, 80)], f.t)
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"A": DOCK_NEAR_DBM})
    assert f.reports()[0].missing == ("A",)


def test_a_neighbour_only_slightly_louder_does_not_overrule_our_manifest() -> None:
    f = Feed()
    f.engine.open_session(spec(items=("A",)), 0.0)
    f.run(60, {"A": TRAILER_DBM})
    unload(f, "A", DOCK_NEAR_DBM, {})
    f.engine.neighbour_claims([Claim("door-4", "A", DOCK_NEAR_DBM + 1.0, -55, 50)], f.t)
    f.run(PORTAL_WINDOW_S + DWELL_S + 2, {"A": DOCK_NEAR_DBM})
    assert [c.item for c in f.confirmations()] == ["A"]


def approach(f: Feed, items: tuple[str, ...], loud: str) -> None:
    """A trailer reversing onto the door: its whole load comes from beyond the receivers' floor
    (only a rare advert heard, at -94 dBm) to its parked level (-92 -> -88 dBm over the last
    8 s) together; ``loud`` makes a portal read on the way (shadowing), as a front parcel does
    now and then. By its own history that parcel rose by 6 dB."""
    for k in range(30):
        if k < 22:
            level: int | None = -94 if k % 5 == 0 else None
        else:
            level = -92 + (k - 22) // 2
        f.run(1, {i: PORTAL_RSSI_DBM + 2 if i == loud and k == 28 else level for i in items})


@pytest.mark.parametrize("listened_s", [25, 120, 600])
def test_a_trailer_reversing_onto_the_door_confirms_nothing_of_its_load(listened_s: int) -> None:
    """The session opened before the trailer arrived: its load 'rises' as it reverses in, and a
    front parcel's loud advert looks like a carry. The load rose together: no confirmation."""
    items = tuple(f"P{k}" for k in range(12))
    f = Feed()
    f.engine.open_session(spec(items=items, end=5000.0), 0.0)
    f.run(listened_s, {})  # the session listens to an empty door
    approach(f, items, loud="P0")
    f.run(PORTAL_WINDOW_S + DWELL_S + 30, dict.fromkeys(items, TRAILER_DBM))
    assert f.confirmations() == []
    # The trailer leaves with its whole load: all missing, none confirmed.
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {})
    (report,) = f.reports()
    assert report.confirmed == ()
    assert sorted(report.missing) == sorted(items)


def test_a_carry_soon_after_the_trailer_docked_is_still_confirmed_at_the_latest_by_the_report() -> (
    None
):
    items = tuple(f"P{k}" for k in range(12))
    f = Feed()
    f.engine.open_session(spec(items=items, end=5000.0), 0.0)
    f.run(120, {})
    approach(f, items, loud="P5")
    rest: dict[str, int | None] = {i: TRAILER_DBM for i in items if i != "P0"}
    unload(f, "P0", DOCK_NEAR_DBM, rest)
    f.run(PORTAL_WINDOW_S + DWELL_S + 60, {"P0": DOCK_NEAR_DBM, **rest})
    f.engine.close_session("S1", f.t)
    f.run(CLOSE_SETTLE_S + 2, {"P0": DOCK_NEAR_DBM})
    (report,) = f.reports()
    assert report.confirmed == ("P0",)
    assert [c.item for c in f.confirmations()] == ["P0"]


def test_a_carry_after_the_load_has_rested_is_confirmed_live() -> None:
    items = tuple(f"P{k}" for k in range(12))
    f = Feed()
    f.engine.open_session(spec(items=items, end=5000.0), 0.0)
    f.run(100, {})
    approach(f, items, loud="P5")
    rest: dict[str, int | None] = {i: TRAILER_DBM for i in items if i != "P0"}
    f.run(90, {"P0": TRAILER_DBM, **rest})  # parked for a minute and a half
    unload(f, "P0", DOCK_NEAR_DBM, rest)
    f.run(PORTAL_WINDOW_S + DWELL_S + 2, {"P0": DOCK_NEAR_DBM, **rest})
    (c,) = f.confirmations()
    assert (c.item, c.basis) == ("P0", "level")


def vehicle_spec(vehicle: str | None = "tag-TRL") -> SessionSpec:
    return SessionSpec("S1", DOOR, "carrier", "hub", ("A", "B"), 0.0, 5000.0, (), vehicle=vehicle)


def test_the_session_closes_when_its_vehicle_departs() -> None:
    f = Feed()
    f.engine.open_session(vehicle_spec(), 0.0)
    f.run(60, {"TRL": -80, "A": TRAILER_DBM, "B": TRAILER_DBM})
    unload(f, "A", DOCK_NEAR_DBM, {"TRL": -80, "B": TRAILER_DBM})
    f.run(PORTAL_WINDOW_S + DWELL_S + 5, {"TRL": -80, "A": DOCK_NEAR_DBM, "B": TRAILER_DBM})
    left = f.t - 1.0  # the vehicle's last advert: it pulls away with B
    f.run(VEHICLE_GONE_S - 1, {"A": DOCK_NEAR_DBM})
    assert f.engine.handoffs.state_of("S1") == "open"
    f.run(2, {"A": DOCK_NEAR_DBM})
    assert f.engine.handoffs.state_of("S1") == "closing"
    f.run(CLOSE_SETTLE_S, {"A": DOCK_NEAR_DBM})
    (report,) = f.reports()
    assert report.close_reason == "vehicle_departed"
    assert report.closed_at_s == left
    assert (report.confirmed, report.missing, report.unexpected) == (("A",), ("B",), ())
    # The vehicle's own tag is not an item of the load.
    assert all(e.item != "TRL" for e in report.evidence)


def test_a_vehicle_heard_only_in_passing_or_not_at_all_does_not_close_the_session() -> None:
    f = Feed()
    f.engine.open_session(vehicle_spec(), 0.0)
    f.run(VEHICLE_MIN_SIGHTINGS - 1, {"TRL": -90})  # a few adverts of a vehicle passing by
    f.run(VEHICLE_GONE_S * 3, {"A": TRAILER_DBM})
    assert f.engine.handoffs.state_of("S1") == "open"
    g = Feed()
    g.engine.open_session(vehicle_spec(None), 0.0)
    g.run(100, {"TRL": -80})
    g.run(100, {})
    assert g.engine.handoffs.state_of("S1") == "open"


def test_vehicle_departure_survives_a_restart_and_a_resend_with_another_vehicle_conflicts() -> None:
    f = Feed()
    f.engine.open_session(vehicle_spec(), 0.0)
    f.run(30, {"TRL": -80, "A": TRAILER_DBM})
    restarted = CustodyEngine(door_zones={DOOR, "door-2"})
    assert restarted.restore(json.loads(json.dumps(f.engine.snapshot())))
    f.engine = restarted
    f.run(VEHICLE_GONE_S + 1, {"A": TRAILER_DBM})
    assert f.engine.handoffs.state_of("S1") == "closing"
    with pytest.raises(CustodyError) as err:
        f.engine.open_session(vehicle_spec("tag-OTHER"), f.t)
    assert err.value.field == "session_id"
    with pytest.raises(CustodyError) as err:
        CustodyEngine(door_zones={DOOR}).open_session(vehicle_spec("A"), 0.0)
    assert err.value.field == "vehicle"
