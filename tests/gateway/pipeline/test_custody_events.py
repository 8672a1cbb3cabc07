"""Every custody result the engine draws from the simulator's worlds becomes a valid event of
its kind, with the id of its fact and the right outbox class."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.custody import CustodyEngine
from gateway.events import parse_event, to_outbox
from gateway.outbox import EventClass
from gateway.pipeline.custody import CustodyBridge
from gateway.pipeline.factory import EventFactory
from gateway.registry import TagRegistry
from gateway.timekeeping import TimeKeeper
from simulator.world import load_scenario
from tests.gateway.custody.simdrive import drive
from tests.gateway.outbox.helpers import FakeClock


def bridge_for() -> CustodyBridge:
    clock = FakeClock(monotonic=10_000.0)
    keeper = TimeKeeper(clock, boot_id="b", ntp_synchronized=lambda: True)
    keeper.refresh(clock.monotonic())
    factory = EventFactory("gw-door-03", TagRegistry(), keeper)
    return CustodyBridge(CustodyEngine(), factory, clock)


@pytest.mark.parametrize(
    ("scenario", "kinds"),
    [
        ("cross-dock", {"handoff.item", "handoff.report"}),
        ("delivery-route", {"delivery.evidence", "delivery.alert", "route.departure"}),
    ],
)
def test_results_become_valid_events(scenario: str, kinds: set[str]) -> None:
    outcome = drive(load_scenario(scenario))
    results = [r for per_gw in outcome.results.values() for _, r in per_gw]
    bridge = bridge_for()
    events = bridge.events(results)
    assert bridge.errors == 0
    assert len(events) == len(results)
    assert kinds <= {e.kind for e in events}
    ids = Counter(e.event_id for e in events)
    assert max(ids.values()) == 1  # one fact, one id
    for event in events:
        row = to_outbox(event)
        again = parse_event(row.payload)
        assert again.event_id == event.event_id
        expected = EventClass.ALARM if event.kind == "delivery.alert" else EventClass.HANDOFF
        assert row.event_class is expected
    # Re-deriving the same facts (after a restart) gives the same ids.
    assert [e.event_id for e in bridge_for().events(results)] == [e.event_id for e in events]
    reports = [e.model_dump() for e in events if e.kind == "handoff.report"]
    for report in reports:
        assert set(report["confirmed"]) <= set(report["expected"])
    # Each live confirmation says how many items its session expects (its report's manifest).
    manifest = {r["session_id"]: len(r["expected"]) for r in reports}
    items = [e.model_dump() for e in events if e.kind == "handoff.item"]
    for item in items:
        assert item["expected_count"] == manifest[item["session_id"]] > 0
        assert 1 <= item["confirmed_count"] <= item["expected_count"]
