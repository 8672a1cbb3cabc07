"""Single messages that used to end ``tagrelay run``, against the real daemon and mosquitto:
each is answered (or, retained, ignored), and the daemon keeps running and answers a ping."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.paho_platform import (
    CMD,
    REPLIES,
    RESULT,
    platform,
    properties,
    run_daemon,
    write_config,
)

HUGE_INT = b'{"id": "n-1", "n": ' + b"9" * 5000 + b"}"
LONE_SURROGATE = b'{"id": "\\ud800"}'
FEFF = "\ufeff"


def test_each_message_that_crashed_the_daemon_is_answered(
    mosquitto: Broker, tmp_path: Path
) -> None:
    # (topic suffix, payload, response topic, where the answer goes, expected reason)
    cases = [
        ("ping", HUGE_INT, f"{REPLIES}/a", f"{REPLIES}/a", "unsupported_json"),
        ("ping", LONE_SURROGATE, f"{REPLIES}/b", f"{REPLIES}/b", "unsupported_json"),
        ("nope", LONE_SURROGATE, f"{REPLIES}/c", f"{REPLIES}/c", "unsupported_json"),
        ("ping", b'{"id": "w-1"}', "x/#", f"{RESULT}/ping", "bad_response_topic"),
        ("ping", b'{"id": "w-2"}', "x/+", f"{RESULT}/ping", "bad_response_topic"),
        # paho itself refuses U+FEFF in a property (MQTT allows it): it used to drop the
        # daemon's connection for every such message.
        ("ping", b'{"id": "f-1"}', f"{REPLIES}/{FEFF}", f"{RESULT}/ping", "malformed_packet"),
        # A response topic into the gateway's own command tree would make it talk to itself.
        ("ping", b'{"id": "l-1"}', f"{CMD}/ping", f"{RESULT}/ping", "bad_response_topic"),
    ]
    config = write_config(tmp_path, mosquitto)
    with platform(mosquitto) as p, run_daemon(tmp_path, config) as proc:
        p.wait_online(0)
        for n, (name, payload, response_topic, answer_topic, reason) in enumerate(cases):
            mark = p.mark()
            corr = f"case-{n}".encode()
            p.publish(
                f"{CMD}/{name}",
                payload,
                props=properties(ResponseTopic=response_topic, CorrelationData=corr),
            )
            p.ping()
            assert proc.poll() is None, f"case {n}: the daemon exited"
            answers = p.answers(mark)
            assert [a.topic for a in answers] == [answer_topic], (n, answers)
            body = json.loads(answers[0].payload)
            assert body["ok"] is False
            assert body["command"] == name
            assert body["error"]["reason"] == reason, (n, body)
            if reason != "malformed_packet":  # paho could not read the properties at all
                assert answers[0].correlation == corr
        assert p.disconnects == []
    assert proc.returncode == 0  # stopped by SIGTERM, cleanly
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()


def test_retained_commands_are_not_executed_and_restarts_survive(
    mosquitto: Broker, tmp_path: Path
) -> None:
    retained = [
        ("ping", b'{"id": "retained-ping"}', f"{REPLIES}/r"),
        ("outbox/stats", HUGE_INT, f"{REPLIES}/r"),
        ("config/get", LONE_SURROGATE, f"{REPLIES}/r"),
        ("nope", LONE_SURROGATE, f"{REPLIES}/r"),
        ("bad/one", b'{"id": "r-1"}', "x/#"),
        ("bad/two", b'{"id": "r-2"}', "x/+"),
        ("bad/three", b'{"id": "r-3"}', f"{REPLIES}/{FEFF}"),
    ]
    config = write_config(tmp_path, mosquitto)
    with platform(mosquitto) as p:
        for name, payload, response_topic in retained:
            p.publish(
                f"{CMD}/{name}",
                payload,
                retain=True,
                props=properties(ResponseTopic=response_topic, CorrelationData=b"r"),
            )
        start = p.mark()
        for _ in range(2):  # the issue: every restart used to exit within half a second
            mark = p.mark()
            with run_daemon(tmp_path, config) as proc:
                p.wait_online(mark)
                p.ping()
                assert proc.poll() is None
                assert p.answers(start) == []  # nothing retained was executed or answered
            assert proc.returncode == 0
        assert p.disconnects == []
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()


def test_retained_commands_are_ignored_under_mqtt_311(mosquitto: Broker, tmp_path: Path) -> None:
    config = write_config(tmp_path, mosquitto, 'protocol = "3.1.1"\n')
    with platform(mosquitto) as p:
        p.publish(f"{CMD}/ping", b'{"id": "retained-311"}', retain=True)
        p.publish(f"{CMD}/outbox/stats", HUGE_INT, retain=True)
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(mark)
            # 3.1.1 has no response topic: answers go to .../result/<name>.
            p.publish(f"{CMD}/ping", b'{"id": "live-311"}')
            p.wait(lambda: any(s.topic == f"{RESULT}/ping" for s in p.since(mark)))
            answers = p.answers(mark)
            assert [json.loads(a.payload)["id"] for a in answers] == ["live-311"]
            assert proc.poll() is None
        assert proc.returncode == 0
