"""profiles.set / profiles.assign through a real CommandProcessor, fuzzed with hypothesis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from gateway.conditions import (
    PRESETS,
    CloseReason,
    ConditionMonitor,
    ConditionResult,
    ExcursionResult,
    register_condition_commands,
)
from gateway.uplink.commands import CommandErrorReason, CommandProcessor, CommandRegistry
from tests.fixtures.clock import FakeClock
from tests.gateway.conditions.helpers import TEMP, at

CUSTOM: JsonValue = {
    "name": "vaccine-2-8",
    "description": "customer SOP 12",
    "source": "customer SOP",
    "temperature_c": [
        {"direction": "above", "threshold": 8.0, "rules": [{"kind": "instant"}]},
        {
            "name": "freeze",
            "direction": "below",
            "threshold": 0.0,
            "beyond_at_threshold": True,
            "rules": [{"kind": "consecutive", "duration_s": 600}],
        },
    ],
}


class Persisted:
    """The pipeline's side: saves the snapshot and collects the results, as it would."""

    def __init__(self, monitor: ConditionMonitor) -> None:
        self.monitor = monitor
        self.snapshots: list[JsonValue] = []
        self.results: list[ConditionResult] = []

    async def __call__(self, results: Sequence[ConditionResult]) -> None:
        self.snapshots.append(self.monitor.snapshot())
        self.results += results


def _setup() -> tuple[CommandProcessor, ConditionMonitor, Persisted]:
    monitor = ConditionMonitor()
    persisted = Persisted(monitor)
    registry = CommandRegistry()
    register_condition_commands(registry, monitor, persisted)
    return (
        CommandProcessor(
            registry,
            FakeClock(100.0, datetime(2026, 3, 2, 6, 0, tzinfo=UTC)),
            max_bytes=64 * 1024,
            results_kept=64,
        ),
        monitor,
        persisted,
    )


def _cmd(**fields: JsonValue) -> bytes:
    return json.dumps(fields).encode()


async def test_set_then_assign_then_persisted_and_idempotent() -> None:
    processor, monitor, persisted = _setup()
    r = await processor.handle("profiles.set", _cmd(id="c1", profile=CUSTOM))
    assert r.ok, r
    assert r.result == {"profile": "vaccine-2-8", "replaced": False, "closed": 0}
    assert monitor.profiles["vaccine-2-8"].temperature_c[1].name == "freeze"
    r = await processor.handle(
        "profiles.assign", _cmd(id="c2", profile="vaccine-2-8", subjects=["pal-1", "pal-2"])
    )
    assert r.ok, r
    assert monitor.assignments == {"pal-1": "vaccine-2-8", "pal-2": "vaccine-2-8"}
    assert len(persisted.snapshots) == 2
    # The same command id again: the earlier answer, nothing applied twice.
    again = await processor.handle(
        "profiles.assign", _cmd(id="c2", profile="vaccine-2-8", subjects=["pal-1", "pal-2"])
    )
    assert again == r
    assert processor.replayed == 1
    assert len(persisted.snapshots) == 2
    # A restarted monitor from the persisted snapshot has the profile and the assignments.
    restored = ConditionMonitor()
    restored.restore(persisted.snapshots[-1])
    assert restored.assignments == monitor.assignments
    assert restored.profiles["vaccine-2-8"] == monitor.profiles["vaccine-2-8"]


async def test_changing_a_profile_closes_open_excursions_through_persist() -> None:
    processor, monitor, persisted = _setup()
    await processor.handle("profiles.set", _cmd(id="c1", profile=CUSTOM))
    await processor.handle("profiles.assign", _cmd(id="c2", profile="vaccine-2-8", subjects=["p"]))
    monitor.observe("p", TEMP, 5.0, at(0))
    assert monitor.observe("p", TEMP, 9.0, at(60))
    assert isinstance(CUSTOM, dict)
    stricter: JsonValue = {**CUSTOM, "description": "stricter"}
    r = await processor.handle("profiles.set", _cmd(id="c3", profile=stricter))
    assert r.ok
    assert r.result == {"profile": "vaccine-2-8", "replaced": True, "closed": 1}
    (closed,) = persisted.results
    assert isinstance(closed, ExcursionResult)
    assert closed.close_reason is CloseReason.REASSIGNED
    r = await processor.handle("profiles.assign", _cmd(id="c4", profile=None, subjects=["p"]))
    assert r.ok
    assert monitor.profile_of("p") is None


async def test_bad_commands_are_invalid_with_the_reason() -> None:
    processor, monitor, _ = _setup()
    cases: list[tuple[str, bytes, str]] = [
        ("profiles.assign", _cmd(id="a", profile="no-such", subjects=["x"]), "unknown profile"),
        ("profiles.assign", _cmd(id="b", profile="frozen", subjects=[]), "subjects"),
        ("profiles.assign", _cmd(id="c", profile="Frozen!", subjects=["x"]), "profile"),
        ("profiles.set", _cmd(id="d", profile={"name": "x"}, extra=1), "extra"),
        (
            "profiles.set",
            _cmd(
                id="e",
                profile={
                    "name": "x",
                    "temperature_c": [
                        {
                            "direction": "above",
                            "threshold": 8,
                            "rules": [{"kind": "instant", "duration_s": 60}],
                        }
                    ],
                },
            ),
            "instant rule has no duration",
        ),
        (
            "profiles.set",
            _cmd(
                id="f",
                profile={"name": "x", "warning": {"min_points": 20, "window_points": 10}},
            ),
            "min_points",
        ),
    ]
    for name, payload, needle in cases:
        response = await processor.handle(name, payload)
        assert not response.ok
        assert response.error is not None
        assert response.error.reason is CommandErrorReason.INVALID, (payload, response)
        assert needle in response.error.detail, (needle, response.error.detail)
    assert monitor.assignments == {}
    assert set(monitor.profiles) == set(PRESETS)


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_profile_like = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "frozen", "x-1", "Bad Name"])},
    optional={
        "temperature_c": st.lists(
            st.fixed_dictionaries(
                {
                    "direction": st.sampled_from(["above", "below", "sideways"]),
                    "threshold": st.floats(allow_nan=False, allow_infinity=False, width=32),
                    "rules": st.lists(
                        st.fixed_dictionaries(
                            {"kind": st.sampled_from(["instant", "consecutive", "cumulative"])},
                            optional={"duration_s": st.floats(-10, 1e6)},
                        ),
                        max_size=3,
                    ),
                },
                optional={"hysteresis": st.floats(-1, 5), "name": st.text(max_size=6)},
            ),
            max_size=3,
        ),
        "shock": st.fixed_dictionaries({"alarm_g": st.floats(-5, 100)}),
        "max_gap_s": _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["profiles.set", "profiles.assign"]),
    body=st.one_of(
        st.fixed_dictionaries({"id": st.text(min_size=1, max_size=4), "profile": _profile_like}),
        st.fixed_dictionaries(
            {
                "id": st.text(min_size=1, max_size=4),
                "profile": st.one_of(st.none(), st.sampled_from(["frozen", "a", "nope"])),
                "subjects": st.lists(st.text(max_size=6), max_size=4),
            }
        ),
        st.dictionaries(st.text(max_size=6), _json, max_size=4),
    ),
)
async def test_fuzzed_commands_always_get_an_answer_and_never_a_handler_failure(
    name: str, body: dict[str, JsonValue]
) -> None:
    processor, monitor, persisted = _setup()
    response = await processor.handle(name, json.dumps(body).encode())
    assert response.ok or response.error is not None
    assert processor.errors[CommandErrorReason.FAILED] == 0
    if response.ok:
        assert persisted.snapshots  # every applied change was persisted
        restored = ConditionMonitor()
        restored.restore(persisted.snapshots[-1])
        assert restored.assignments == monitor.assignments
    else:
        assert persisted.snapshots == []


async def test_a_custody_manifest_item_naming_its_profile_assigns_it_and_it_persists() -> None:
    """handoff.open and route.load through a real CommandProcessor: an item that names its
    profile is assigned it (persisted, so it survives a restart); an unknown profile refuses
    the whole manifest before the custody engine or the monitor change."""
    from gateway.conditions import ManifestProfileSink
    from gateway.custody import CustodyEngine, register_custody_commands

    monitor = ConditionMonitor()
    persisted = Persisted(monitor)
    engine = CustodyEngine(door_zones={"door-3"}, cargo_zones={"cargo"})
    registry = CommandRegistry()

    async def saved() -> None:
        return None

    clock = FakeClock()
    register_custody_commands(
        registry, engine, clock, saved, profiles=ManifestProfileSink(monitor, persisted)
    )
    processor = CommandProcessor(registry, clock, max_bytes=1 << 20, results_kept=16)
    pallet = "https://id.gs1.org/00/340123450000000017"
    handoff = {
        "id": "h1",
        "session_id": "H1",
        "door": "door-3",
        "from_party": "Northline",
        "to_party": "Hub",
        "expected": [pallet, "ibeacon:f7826da6:300:2"],
        "window_end": "2026-03-02T07:00:00+00:00",
    }
    bad = await processor.handle(
        "handoff.open", json.dumps({**handoff, "profiles": {pallet: "no-such"}}).encode()
    )
    assert not bad.ok
    assert "no-such" in json.dumps(bad.model_dump(mode="json"))
    assert (
        engine.snapshot() == CustodyEngine(door_zones={"door-3"}, cargo_zones={"cargo"}).snapshot()
    )
    assert monitor.profile_of(pallet) is None
    stray = await processor.handle(
        "handoff.open",
        json.dumps({**handoff, "id": "h0", "profiles": {"other": "frozen"}}).encode(),
    )
    assert not stray.ok
    assert "not expected" in json.dumps(stray.model_dump(mode="json"))
    ok = await processor.handle(
        "handoff.open",
        json.dumps({**handoff, "id": "h2", "profiles": {pallet: "pharma-2-8"}}).encode(),
    )
    assert ok.ok, ok
    assert monitor.assignments[pallet] == "pharma-2-8"
    route = {
        "id": "r1",
        "route_id": "R-1",
        "depot": {"lat": 52.06, "lon": 5.1},
        "stops": [{"stop_id": "S1", "lat": 52.0857, "lon": 5.1136, "parcels": ["P1", "P2"]}],
        "profiles": {"P2": "frozen"},
    }
    loaded = await processor.handle("route.load", json.dumps(route).encode())
    assert loaded.ok, loaded
    assert monitor.assignments["P2"] == "frozen"
    assert "P1" not in monitor.assignments
    # Persisted like profiles.assign: a new monitor restored from the snapshot keeps both.
    restored = ConditionMonitor()
    restored.restore(persisted.snapshots[-1])
    assert restored.assignments == {pallet: "pharma-2-8", "P2": "frozen"}
