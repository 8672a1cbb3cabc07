"""The custody commands through a real CommandProcessor: answers, field-named errors, limits,
and a fuzz run that never makes a handler fail or change state on a refused command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.custody import CustodyEngine, register_custody_commands
from gateway.uplink.commands import CommandErrorReason, CommandProcessor, CommandRegistry
from tests.fixtures.clock import FakeClock

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


class Rig:
    def __init__(self, *, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.clock = FakeClock(1000.0, NOW)
        self.engine = CustodyEngine(door_zones={"door-3"}, cargo_zones={"cargo"})
        self.saves = 0
        registry = CommandRegistry()

        async def saved() -> None:
            self.saves += 1

        register_custody_commands(registry, self.engine, self.clock, saved)
        self.processor = CommandProcessor(
            registry, self.clock, max_bytes=max_bytes, results_kept=64
        )

    async def send(self, name: str, body: dict[str, Any]) -> Any:
        return await self.processor.handle(name, json.dumps(body).encode())

    def state(self) -> str:
        return json.dumps(self.engine.snapshot(), sort_keys=True)


def open_body(cid: str = "c1", sid: str = "H1", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cid,
        "session_id": sid,
        "door": "door-3",
        "from_party": "4012345000009",  # a GLN with a valid check digit
        "to_party": "Hub Venlo",
        "expected": ["https://id.gs1.org/00/340123450000000017", "ibeacon:f7826da6:300:2"],
        "documents": [{"type": "ASN", "number": "ASN-77"}, {"type": "BOL", "number": "B-1"}],
        "window_end": (NOW + timedelta(hours=1)).isoformat(),
    }
    body.update(kw)
    return body


def route_body(cid: str = "r1", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cid,
        "route_id": "R-1",
        "depot": {"lat": 52.06, "lon": 5.1},
        "stops": [
            {"stop_id": "S1", "lat": 52.0857, "lon": 5.1136, "radius_m": 40, "parcels": ["P1"]},
            {"stop_id": "S2", "lat": 52.0860, "lon": 5.1136, "parcels": ["P2", "P3"]},
        ],
    }
    body.update(kw)
    return body


async def test_open_close_and_load_are_accepted_with_counts() -> None:
    rig = Rig()
    r = await rig.send("handoff.open", open_body())
    assert r.ok
    assert r.result == {"accepted": True, "outcome": "opened", "session_id": "H1", "items": 2}
    again = await rig.send("handoff.open", open_body(cid="c2"))  # resent with a new command id
    assert again.result["outcome"] == "already_open"
    closed = await rig.send("handoff.close", {"id": "c3", "session_id": "H1"})
    assert closed.ok
    assert closed.result["report_in_s"] == 60.0
    loaded = await rig.send("route.load", route_body())
    assert loaded.ok
    assert loaded.result["stops"] == 2
    assert loaded.result["parcels"] == 3
    # S1 and S2 are 33 m apart: each geofence shrinks to half of that.
    assert loaded.result["radius_m"] == {"S1": 16.7, "S2": 16.7}
    assert rig.saves == 3  # the resent open changed nothing


@pytest.mark.parametrize(
    ("name", "body", "needle"),
    [
        ("handoff.open", open_body(door="door-9"), "door: unknown door"),
        ("handoff.open", open_body(expected=[]), "expected"),
        ("handoff.open", open_body(expected=[f"i{n}" for n in range(100_000)]), "expected"),
        ("handoff.open", open_body(from_party="4012345000008"), "check digit"),
        ("handoff.open", open_body(window_end="2026-03-02T07:00:00"), "window_end"),
        ("handoff.open", open_body(window_start=(NOW + timedelta(hours=2)).isoformat()), "window"),
        ("handoff.open", open_body(documents=[{"type": "XX", "number": "1"}]), "documents"),
        ("handoff.open", open_body(extra=1), "extra"),
        ("handoff.open", open_body(vehicle="ibeacon:f7826da6:300:2"), "vehicle: the vehicle"),
        ("handoff.open", open_body(vehicle=""), "vehicle"),
        ("handoff.close", {"id": "x", "session_id": "nope"}, "no such session"),
        ("handoff.close", {"id": "x", "session_id": "H0", "extra": 1}, "extra"),
        ("route.load", route_body(stops=[]), "stops"),
        (
            "route.load",
            route_body(
                stops=[
                    {
                        "stop_id": "S",
                        "lat": 1,
                        "lon": 1,
                        "parcels": [f"p{n}" for n in range(100_000)],
                    }
                ]
            ),
            "parcels",
        ),
        ("route.load", route_body(depot={"lat": -90.0001, "lon": 5}), "depot.lat"),
        ("route.load", route_body(depot={"lat": 91, "lon": 5}), "depot.lat"),
        ("route.load", route_body(stops=[{"stop_id": "S", "lat": 1, "lon": 181}]), "lon"),
        (
            "route.load",
            route_body(stops=[{"stop_id": "S", "lat": 1, "lon": 1, "radius_m": 0}]),
            "radius_m",
        ),
    ],
)
async def test_hostile_commands_get_a_clear_error_and_change_nothing(
    name: str, body: dict[str, Any], needle: str
) -> None:
    rig = Rig()
    assert (await rig.send("handoff.open", open_body(cid="base", sid="H0"))).ok
    before = rig.state()
    r = await rig.send(name, body)
    assert not r.ok
    assert r.error is not None
    assert r.error.reason is CommandErrorReason.INVALID
    assert needle in r.error.detail
    assert rig.state() == before
    assert rig.processor.errors[CommandErrorReason.FAILED] == 0


async def test_conflicts_with_open_sessions_are_refused_by_the_engine() -> None:
    rig = Rig()
    assert (await rig.send("handoff.open", open_body())).ok
    before = rig.state()
    other = open_body(cid="c2", expected=["something else"])
    r = await rig.send("handoff.open", other)
    assert r.error is not None
    assert "session_id: already used for a different session" in r.error.detail
    two = open_body(cid="c3", sid="H2", expected=["ibeacon:f7826da6:300:2"])
    r = await rig.send("handoff.open", two)
    assert r.error is not None
    assert "already expected by open session H1" in r.error.detail
    assert rig.state() == before
    # A refusal is not remembered: once H1 is closed the same command id is accepted.
    assert (await rig.send("handoff.close", {"id": "c4", "session_id": "H1"})).ok
    assert (await rig.send("handoff.open", two)).ok


async def test_a_second_route_while_one_is_under_way_is_refused_unless_replaced() -> None:
    rig = Rig()
    assert (await rig.send("route.load", route_body())).ok
    before = rig.state()
    r = await rig.send("route.load", route_body(cid="r2", route_id="R-2"))
    assert r.error is not None
    assert "under way" in r.error.detail
    assert rig.state() == before
    assert (await rig.send("route.load", route_body(cid="r3", route_id="R-2", replace=True))).ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
field_values = {
    "session_id": st.sampled_from(["H1", "H2", ""]) | st.text(max_size=200),
    "door": st.sampled_from(["door-3", "door-9"]) | st.text(max_size=5),
    "from_party": st.sampled_from(["4012345000009", "4012345000008", "A"]) | json_values,
    "to_party": st.sampled_from(["B"]) | json_values,
    "expected": st.lists(st.sampled_from(["P1", "P2", "X", ""]), max_size=5) | json_values,
    "window_end": st.sampled_from(
        [(NOW + timedelta(hours=1)).isoformat(), NOW.isoformat(), "2026-03-02T07:00:00", "x"]
    )
    | json_values,
    "route_id": st.sampled_from(["R-1", "R-2"]) | json_values,
    "depot": st.fixed_dictionaries({"lat": st.floats(-100, 100), "lon": st.floats(-200, 200)})
    | json_values,
    "stops": st.lists(
        st.fixed_dictionaries(
            {
                "stop_id": st.sampled_from(["S1", "S2"]),
                "lat": st.floats(-100, 100),
                "lon": st.floats(-200, 200),
                "parcels": st.lists(st.sampled_from(["P1", "P2"]), max_size=3),
            }
        ),
        max_size=3,
    )
    | json_values,
    "replace": st.booleans() | json_values,
    "vehicle": st.sampled_from(["P1", "TRL-1", ""]) | json_values,
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    commands=st.lists(
        st.tuples(
            st.sampled_from(["handoff.open", "handoff.close", "route.load"]),
            st.text(min_size=1, max_size=4),
            st.fixed_dictionaries({}, optional=field_values),
        ),
        max_size=8,
    )
)
async def test_fuzzed_commands_never_fail_a_handler_nor_change_state_when_refused(
    commands: list[tuple[str, str, dict[str, Any]]],
) -> None:
    rig = Rig(max_bytes=64 * 1024)
    for name, cid, body in commands:
        before = rig.state()
        r = await rig.processor.handle(name, json.dumps({"id": cid, **body}).encode())
        if not r.ok:
            assert r.error is not None
            assert r.error.reason is not CommandErrorReason.FAILED, r.error.detail
            assert rig.state() == before
    assert rig.processor.errors[CommandErrorReason.FAILED] == 0
