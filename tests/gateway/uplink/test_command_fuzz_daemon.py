"""Fuzzing the running daemon through mosquitto: any topic under ``cmd/``, any payload (the
whole of Unicode with surrogates, huge and negative numbers, NaN), the retain flag, and every
MQTT 5 property a client can set on a PUBLISH. After each message the daemon must still run,
answer a ping, and have answered the message exactly where docs/mqtt.md says (or, when the
broker refused it, not at all); after a restart nothing retained is executed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.uplink.dispatch import CORRELATION_MAX_BYTES
from gateway.uplink.topics import Topics, topic_name_problem
from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.paho_platform import (
    BASE,
    CMD,
    GATEWAY,
    REPLIES,
    RESULT,
    platform,
    properties,
    run_daemon,
    write_config,
)
from tests.gateway.uplink.test_commands import payloads
from tests.gateway.uplink.test_hostile_commands import FEFF, HUGE_INT, LONE_SURROGATE

TOPICS = Topics("tagrelay/v1", GATEWAY)
#: mosquitto's default topic alias maximum (CONNACK): a larger alias gets a client dropped.
TOPIC_ALIAS_MAX = 10


def _broker_accepts(c: str) -> bool:
    """What a broker lets a client put into an MQTT string (mosquitto drops the client that
    sends the rest, so they never reach the gateway; ``topic_name_problem`` refuses them)."""
    return c in "+#" or topic_name_problem(c) is None


#: MQTT strings: any code point a broker passes on; U+FEFF (which paho refuses) and the
#: wildcards often enough to matter.
mqtt_chars = st.characters(exclude_categories=("Cs", "Cc")).filter(_broker_accepts)
mqtt_text = st.text(mqtt_chars, max_size=12) | st.sampled_from(
    ["", "\ufeff", "a\ufeffb", "+", "#", "/", "$", "\U0001f600"]
)
plain_text = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=12)
level = st.text(mqtt_chars.filter(lambda c: c not in "/+#."), min_size=1, max_size=10)

response_topics = st.one_of(
    st.builds(f"{REPLIES}/{{}}".format, plain_text),  # where a platform wants its answers
    st.builds(f"{REPLIES}/{{}}".format, plain_text),
    st.sampled_from(
        ["x/#", "x/+", "+", "#", "$SYS/x", f"{CMD}/ping", f"{BASE}/status", "/", f"{RESULT}/z"]
    ),
    st.builds(lambda a, b: f"{REPLIES}/{a}/{b}", mqtt_text, mqtt_text),
    mqtt_text,
)


@st.composite
def publish_properties(draw: st.DrawFn) -> dict[str, Any]:
    """A subset of every property a client may set on PUBLISH (MQTT 5 section 3.3.2.3)."""
    candidates: dict[str, Any] = {
        "PayloadFormatIndicator": draw(st.sampled_from([0, 1])),
        "MessageExpiryInterval": draw(st.sampled_from([1, 60, 2**32 - 1]) | st.integers(1, 9999)),
        "TopicAlias": draw(st.integers(1, TOPIC_ALIAS_MAX)),
        "ResponseTopic": draw(response_topics),
        "CorrelationData": draw(
            st.binary(max_size=64) | st.binary(min_size=1000, max_size=CORRELATION_MAX_BYTES + 50)
        ),
        "UserProperty": draw(
            st.lists(
                st.tuples(plain_text | mqtt_text, plain_text | mqtt_text), min_size=1, max_size=4
            )
        ),
        "ContentType": draw(plain_text | mqtt_text),
    }
    chosen = draw(st.sets(st.sampled_from(sorted(candidates))))
    return {k: candidates[k] for k in chosen}


EVERY_PROPERTY = {
    "PayloadFormatIndicator": 1,
    "MessageExpiryInterval": 60,
    "TopicAlias": 1,
    "ResponseTopic": f"{REPLIES}/every",
    "CorrelationData": b"every",
    "UserProperty": [("k", "v"), ("k", "w")],
    "ContentType": "application/json",
}

names = st.sampled_from(["ping", "config.get", "outbox.stats", "nope"]) | st.lists(
    level, min_size=1, max_size=3
).map(".".join)


def _expected_topic(name: str, props: dict[str, Any]) -> tuple[str, str | None]:
    """(where the answer must go, the reason it must carry or None for any)."""
    strings = [props.get("ResponseTopic", ""), props.get("ContentType", "")]
    strings += [s for pair in props.get("UserProperty", []) for s in pair]
    if any("\ufeff" in s for s in strings):
        return TOPICS.command_result(name), "malformed_packet"
    if len(props.get("CorrelationData", b"")) > CORRELATION_MAX_BYTES:
        return TOPICS.command_result(name), "bad_correlation_data"
    if "ResponseTopic" in props:
        if TOPICS.response_topic_problem(props["ResponseTopic"]) is not None:
            return TOPICS.command_result(name), "bad_response_topic"
        return props["ResponseTopic"], None
    return TOPICS.command_result(name), None


def test_fuzz_the_running_daemon(mosquitto: Broker, tmp_path: Path) -> None:
    config = write_config(tmp_path, mosquitto)
    stats = {"answered": 0, "refused_by_broker": 0, "retained": 0}
    reasons: Counter[str] = Counter()
    with platform(mosquitto, "fuzzer") as p:
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(0)

            @settings(
                max_examples=120,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(name=names, payload=payloads(), retain=st.booleans(), props=publish_properties())
            # The reproductions run on every run, whatever hypothesis draws.
            @example(
                name="ping", payload=HUGE_INT, retain=False, props={"ResponseTopic": f"{REPLIES}/a"}
            )
            @example(
                name="ping", payload=LONE_SURROGATE, retain=True, props={"CorrelationData": b"c"}
            )
            @example(name="nope", payload=LONE_SURROGATE, retain=False, props={})
            @example(
                name="ping", payload=b'{"id": "w"}', retain=False, props={"ResponseTopic": "x/#"}
            )
            @example(
                name="ping", payload=b'{"id": "w"}', retain=True, props={"ResponseTopic": "x/+"}
            )
            @example(
                name="ping",
                payload=b'{"id": "f"}',
                retain=False,
                props={"UserProperty": [("k", FEFF)]},
            )
            @example(name="config.get", payload=b'{"id": "all"}', retain=True, props=EVERY_PROPERTY)
            def one_message(name: str, payload: bytes, retain: bool, props: dict[str, Any]) -> None:
                mark = p.mark()
                rc = p.publish(
                    f"{CMD}/{name.replace('.', '/')}",
                    payload,
                    retain=retain,
                    props=properties(**props) if props else None,
                )
                p.ping()
                assert proc.poll() is None, "the daemon exited"
                assert p.disconnects == [], "the broker dropped the fuzzing client"
                answers = p.answers(mark)
                if rc >= 0x80:
                    stats["refused_by_broker"] += 1
                    assert answers == []
                    return
                stats["answered"] += 1
                stats["retained"] += retain
                topic, reason = _expected_topic(name, props)
                assert [a.topic for a in answers] == [topic], (answers, topic)
                body = json.loads(answers[0].payload)
                reasons[body["error"]["reason"] if body["error"] else "ok"] += 1
                assert body["command"] == name
                assert body["ok"] is (body["error"] is None)
                if reason is not None:
                    assert body["error"]["reason"] == reason, body
                if reason not in ("malformed_packet", "bad_correlation_data"):
                    assert answers[0].correlation == props.get("CorrelationData"), answers[0]

            one_message()
        assert proc.returncode == 0
        # Restart: whatever the fuzzer left retained on cmd/ is not executed.
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(mark)
            p.ping()
            assert p.answers(mark) == []
        assert proc.returncode == 0
    print("fuzz figures:", stats, reasons)
    assert stats["answered"] > 60, stats
    assert stats["retained"] > 0, stats
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()
