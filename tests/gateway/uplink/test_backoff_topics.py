"""Reconnect pacing (full jitter, capped, reset) and the topic tree."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.uplink.backoff import Backoff
from gateway.uplink.topics import Topics


def test_full_jitter_grows_then_caps_and_resets() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(7))
    bounds = []
    for _ in range(8):
        bounds.append(backoff.bound_s())
        delay = backoff.next_delay_s()
        assert 0.0 <= delay <= bounds[-1]
    assert bounds == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.bound_s() == 0.5


def test_jitter_spreads_delays() -> None:
    backoff = Backoff(1.0, 1.0, random.Random(1))
    delays = [backoff.next_delay_s() for _ in range(200)]
    # Full jitter: uniform over [0, cap], not clustered at the cap.
    assert min(delays) < 0.1
    assert max(delays) > 0.9
    assert 0.35 < sum(delays) / len(delays) < 0.65


def test_days_of_outage_do_not_overflow() -> None:
    backoff = Backoff(0.5, 60.0, random.Random(3))
    for _ in range(10_000):
        assert backoff.next_delay_s() <= 60.0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="min_s"):
        Backoff(2.0, 1.0)


def test_topics() -> None:
    t = Topics("tagrelay/v1", "truck-0042")
    assert t.event("condition.shock") == "tagrelay/v1/truck-0042/events/condition/shock"
    assert t.status == "tagrelay/v1/truck-0042/status"
    assert t.commands == "tagrelay/v1/truck-0042/cmd/#"
    assert t.command_name("tagrelay/v1/truck-0042/cmd/config/get") == "config.get"
    assert t.command_result("config.get") == "tagrelay/v1/truck-0042/result/config/get"
    assert t.command_name("tagrelay/v1/truck-0042/cmd/") is None
    assert t.command_name("tagrelay/v1/truck-0042/cmd/a//b") is None
    assert t.command_name("tagrelay/v1/other/cmd/ping") is None


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,3}", fullmatch=True))
def test_command_names_round_trip(name: str) -> None:
    t = Topics("p", "gw")
    assert t.command_name(t.command(name)) == name


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("platform/replies/gw-1", None),
        ("a\ufeffb/é/\U0001f600", None),  # U+FEFF is allowed by MQTT, just refused by paho
        ("tagrelay/v1/gw/result/ping", None),
        ("tagrelay/v1/gw-2/cmd/ping", None),  # another gateway's tree is not ours
        ("", "empty"),
        ("x/#", "'#'"),
        ("x/+/y", "'+'"),
        ("a\x00b", "'\\x00'"),
        ("a\x1fb", "'\\x1f'"),
        ("a\x85b", "'\\x85'"),
        ("a\ufdd0", "'\\ufdd0'"),
        ("a\U0010ffff", "'\\U0010ffff'"),
        ("a\ud800", "'\\ud800'"),
        ("é" * 32_768, "longer than 65535 bytes"),
        ("$SYS/broker", "belong to the broker"),
        ("tagrelay/v1/gw", "own topics"),
        ("tagrelay/v1/gw/cmd/ping", "own topics"),
        ("tagrelay/v1/gw/events/alarm/x", "own topics"),
        ("tagrelay/v1/gw/status", "own topics"),
    ],
)
def test_response_topics_the_gateway_will_not_publish_to(topic: str, problem: str | None) -> None:
    found = Topics("tagrelay/v1", "gw").response_topic_problem(topic)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
