"""The command processor on its own: every bad-input case, idempotence, and a fuzz run."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from gateway.uplink.commands import (
    CommandErrorReason,
    CommandProcessor,
    CommandRegistry,
    PingCommand,
    default_registry,
)
from tests.fixtures.clock import FakeClock


def _clock() -> FakeClock:
    """Monotonic 100 s, the wall clock fixed unless a test moves it."""
    return FakeClock(100.0, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


async def _stats() -> JsonValue:
    return {"depth": 7}


def processor(results_kept: int = 16, max_bytes: int = 1024) -> CommandProcessor:
    clock = _clock()
    registry = default_registry(clock, {"uplink": {"password": "**********"}}, _stats)
    return CommandProcessor(registry, clock, max_bytes=max_bytes, results_kept=results_kept)


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


async def test_json_python_cannot_take_is_refused_not_raised() -> None:
    """Each of these used to raise out of ``handle`` (issue: they ended ``tagrelay run``)."""
    p = processor(max_bytes=16_384)
    cases = [
        ("ping", b'{"id": "n", "n": ' + b"9" * 5000 + b"}", CommandErrorReason.UNSUPPORTED_JSON),
        ("ping", b'{"id": "n", "n": -' + b"9" * 5000 + b"}", CommandErrorReason.UNSUPPORTED_JSON),
        ("ping", b'{"id": "\\ud800"}', CommandErrorReason.UNSUPPORTED_JSON),
        ("nope", b'{"id": "\\udfff"}', CommandErrorReason.UNSUPPORTED_JSON),
        ("ping", b'{"id": "k", "\\ud800": 1}', CommandErrorReason.UNSUPPORTED_JSON),
        ("ping", b'{"id": "k", "x": [[{"y": "\\ud83d"}]]}', CommandErrorReason.UNSUPPORTED_JSON),
        ("ping", b'{"id": "k", "x": NaN}', CommandErrorReason.MALFORMED_JSON),
        ("ping", b'{"id": "k", "x": -Infinity}', CommandErrorReason.MALFORMED_JSON),
        ("ping", b'{"id": "k", "x": 1e999999}', CommandErrorReason.INVALID),  # inf: extra field
    ]
    for name, payload, reason in cases:
        response = await p.handle(name, payload)
        assert response.error is not None, payload[:40]
        assert response.error.reason is reason, (payload[:40], response.error)
        assert response.id is None or response.id == "k"
        json.loads(response.to_bytes())  # always serialisable
    assert p.errors[CommandErrorReason.UNSUPPORTED_JSON] == 6
    # A surrogate pair is one character, not a lone half: fine.
    ok = await p.handle("ping", b'{"id": "\\ud83d\\ude00"}')
    assert ok.ok
    assert ok.id == "\U0001f600"


async def test_unserialisable_result_is_a_failed_response() -> None:
    registry = CommandRegistry()

    async def bad(cmd: PingCommand) -> JsonValue:
        return {"text": "\ud800"}

    registry.register("bad", PingCommand, bad)
    p = CommandProcessor(registry, _clock(), max_bytes=1024, results_kept=2)
    response = await p.handle("bad", b'{"id": "b1"}')
    assert response.error is not None
    assert response.error.reason is CommandErrorReason.FAILED
    json.loads(response.to_bytes())


async def test_refuse_and_drop_are_counted_and_logged_once_per_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _clock()
    p = CommandProcessor(default_registry(clock, {}, _stats), clock, max_bytes=1024, results_kept=2)
    caplog.set_level(logging.WARNING, logger="gateway.uplink.commands")
    refused = p.refuse("ping", b'{"id": "r1"}', CommandErrorReason.BAD_RESPONSE_TOPIC, "x/#")
    assert refused.id == "r1"
    assert refused.error is not None
    assert refused.error.reason is CommandErrorReason.BAD_RESPONSE_TOPIC
    unreadable = p.refuse("ping", b"\xff", CommandErrorReason.MALFORMED_PACKET, "U+FEFF")
    assert unreadable.id is None
    for _ in range(50):
        p.drop("ping", CommandErrorReason.RETAINED, "retained")
    assert p.errors[CommandErrorReason.RETAINED] == 50
    assert p.errors[CommandErrorReason.BAD_RESPONSE_TOPIC] == 1
    assert sum(p.errors.values()) == 52  # refuse() did not count the payload's own problems
    lines = [r.getMessage() for r in caplog.records if "retained" in r.getMessage()]
    assert len(lines) == 1
    clock.advance_monotonic(61)
    p.drop("ping", CommandErrorReason.RETAINED, "retained")
    lines = [r.getMessage() for r in caplog.records if "retained" in r.getMessage()]
    assert len(lines) == 2
    assert "49 more of this kind" in lines[1]
    # A name that is not text still gives a response that serialises.
    odd = p.refuse("\udc80", b"{}", CommandErrorReason.MALFORMED_PACKET, "\ud800")
    assert json.loads(odd.to_bytes())["command"] == "\\udc80"


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
    p = CommandProcessor(registry, _clock(), max_bytes=1024, results_kept=2)
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
    p = CommandProcessor(registry, _clock(), max_bytes=1024, results_kept=2)
    response = await p.handle("boom", b'{"id": "b1"}')
    assert response.error is not None
    assert response.error.reason is CommandErrorReason.FAILED
    assert "kaput" in response.error.detail


def test_registry_refuses_bad_and_duplicate_names() -> None:
    registry = CommandRegistry()

    async def h(cmd: PingCommand) -> JsonValue:
        return None

    registry.register("a", PingCommand, h)
    for name in ("a", "a/b", "+", "", "\ud800"):
        try:
            registry.register(name, PingCommand, h)
        except ValueError:
            continue
        raise AssertionError(f"{name!r} accepted")


#: Every code point, surrogates (category Cs) included: they reach the gateway as \\ud800
#: escapes in JSON text.
any_text = st.text(st.characters(exclude_categories=()), max_size=20) | st.text(
    st.characters(exclude_categories=())
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    max_size=20,
)
plain_ids = st.text("abcxyz-0123456789", min_size=1, max_size=12)


@st.composite
def number_literals(draw: st.DrawFn) -> str:
    """JSON number text: small, huge (past Python's 4300-digit limit), negative, exponents."""
    digits = draw(st.sampled_from([1, 19, 20, 4300, 4301, 6000]) | st.integers(1, 6000))
    sign = draw(st.sampled_from(["", "-"]))
    exponent = draw(st.sampled_from(["", "", "e999999", "E-400", ".5e3"]))
    return sign + "9" * digits + exponent


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=10,
)


def _encode(value: object, escaped: bool) -> bytes:
    """JSON text; not escaped, a lone surrogate is written as CESU-8 (not UTF-8)."""
    return json.dumps(value, ensure_ascii=escaped).encode("utf-8", "surrogatepass")


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Bytes a platform could send: mostly command-shaped objects, with any Unicode (escaped,
    or raw), NaN/Infinity, huge and negative numbers; also any JSON, any bytes, oversize."""
    kind = draw(st.sampled_from(["command"] * 4 + ["number"] * 2 + ["json", "binary", "oversize"]))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    if kind == "oversize":
        return b'{"id": "big", "pad": "' + b"x" * 20_000 + b'"}'
    if kind == "number":
        number = draw(number_literals())
        where = draw(st.sampled_from(['{{"id": {}}}', '{{"id": "n-1", "n": [{}]}}']))
        return where.format(number).encode()
    escaped = draw(st.booleans())
    if kind == "json":
        return _encode(draw(json_values), escaped)
    cid = draw(plain_ids | any_text | st.integers() | st.none())
    extra = draw(st.just({}) | st.dictionaries(any_text, json_values, max_size=2))
    return _encode({"id": cid, **extra}, escaped)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["ping", "config.get", "outbox.stats", "nope", ""]) | any_text,
    payload=payloads(),
)
async def test_fuzz_never_raises_and_always_answers(name: str, payload: bytes) -> None:
    p = processor(max_bytes=16_384)
    response = await p.handle(name, payload)
    decoded = json.loads(response.to_bytes())  # every response serialises
    assert decoded["ok"] is (response.error is None)
    assert isinstance(response.command.encode("utf-8"), bytes)  # text, whatever the name
    if not response.ok:
        assert sum(p.errors.values()) == 1
