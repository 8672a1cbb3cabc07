"""The command processor on its own: every bad-input case, idempotence, and a fuzz run."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from gateway.uplink import (
    CommandErrorReason,
    CommandProcessor,
    CommandRegistry,
    PingCommand,
    default_registry,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def _stats() -> JsonValue:
    return {"depth": 7}


def processor(results_kept: int = 16) -> CommandProcessor:
    clock = FakeClock()
    registry = default_registry(clock, {"uplink": {"password": "**********"}}, _stats)
    return CommandProcessor(registry, clock, max_bytes=1024, results_kept=results_kept)


async def test_each_builtin_command_answers() -> None:
    p = processor()
    ping = await p.handle("ping", b'{"id": "a1"}')
    assert ping.ok
    assert ping.id == "a1"
    assert ping.result == {"pong": True, "time": "2026-01-02T03:04:05+00:00"}
    cfg = await p.handle("config.get", b'{"id": "a2"}')
    assert cfg.result == {"uplink": {"password": "**********"}}
    stats = await p.handle("outbox.stats", b'{"id": "a3"}')
    assert stats.result == {"depth": 7}
    assert p.handled == {"ping": 1, "config.get": 1, "outbox.stats": 1}


async def test_bad_commands_get_reasons_and_are_counted() -> None:
    p = processor()
    cases = [
        ("ping", b"x" * 2000, CommandErrorReason.OVERSIZE, None),
        ("ping", b"{not json", CommandErrorReason.MALFORMED_JSON, None),
        ("ping", b"\xff\xfe", CommandErrorReason.MALFORMED_JSON, None),
        ("ping", b"[1, 2]", CommandErrorReason.NOT_AN_OBJECT, None),
        ("reboot", b'{"id": "u1"}', CommandErrorReason.UNKNOWN_COMMAND, "u1"),
        ("ping", b'{"id": 5}', CommandErrorReason.INVALID, None),
        ("ping", b'{"id": "w1", "extra": true}', CommandErrorReason.INVALID, "w1"),
        ("ping", b"{}", CommandErrorReason.INVALID, None),
    ]
    for name, payload, reason, cid in cases:
        response = await p.handle(name, payload)
        assert not response.ok
        assert response.error is not None
        assert response.error.reason is reason, (payload, response)
        assert response.error.detail
        assert response.id == cid
        assert json.loads(response.to_bytes())["error"]["reason"] == reason.value
    assert p.errors[CommandErrorReason.MALFORMED_JSON] == 2
    assert p.errors[CommandErrorReason.INVALID] == 3
    assert sum(p.errors.values()) == len(cases)


async def test_unknown_command_lists_the_known_ones() -> None:
    response = await processor().handle("reboot", b'{"id": "x"}')
    assert response.error is not None
    assert "config.get, outbox.stats, ping" in response.error.detail


async def test_same_id_returns_the_earlier_result() -> None:
    calls: list[str] = []
    registry = CommandRegistry()

    async def count(cmd: PingCommand) -> JsonValue:
        calls.append(cmd.id)
        return len(calls)

    registry.register("count", PingCommand, count)
    p = CommandProcessor(registry, FakeClock(), max_bytes=1024, results_kept=2)
    first = await p.handle("count", b'{"id": "c1"}')
    again = await p.handle("count", b'{"id": "c1"}')
    assert again == first
    assert calls == ["c1"]
    assert p.replayed == 1
    # The memory is bounded: after two newer ids, c1 is forgotten and runs again.
    await p.handle("count", b'{"id": "c2"}')
    await p.handle("count", b'{"id": "c3"}')
    rerun = await p.handle("count", b'{"id": "c1"}')
    assert rerun.result == 4


async def test_failing_handler_is_an_error_response() -> None:
    registry = CommandRegistry()

    async def boom(cmd: PingCommand) -> JsonValue:
        raise RuntimeError("kaput")

    registry.register("boom", PingCommand, boom)
    p = CommandProcessor(registry, FakeClock(), max_bytes=1024, results_kept=2)
    response = await p.handle("boom", b'{"id": "b1"}')
    assert response.error is not None
    assert response.error.reason is CommandErrorReason.FAILED
    assert "kaput" in response.error.detail


def test_registry_refuses_bad_and_duplicate_names() -> None:
    registry = CommandRegistry()

    async def h(cmd: PingCommand) -> JsonValue:
        return None

    registry.register("a", PingCommand, h)
    for name in ("a", "a/b", "+", ""):
        try:
            registry.register(name, PingCommand, h)
        except ValueError:
            continue
        raise AssertionError(f"{name!r} accepted")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(["ping", "config.get", "outbox.stats", "nope", ""]),
    payload=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
)
async def test_fuzz_never_raises_and_always_answers(name: str, payload: bytes) -> None:
    p = processor()
    response = await p.handle(name, payload)
    assert response.command == name
    decoded = json.loads(response.to_bytes())
    assert decoded["ok"] is (response.error is None)
    if not response.ok:
        assert sum(p.errors.values()) == 1
