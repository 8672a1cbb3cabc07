"""Commands arrive even when the gateway was offline: persistent MQTT sessions, tested with
the daemon as a real process (and the uplink in-process where that is enough) against a real
mosquitto.

The gateway is stopped (cleanly, or killed like a power cut), the platform publishes
commands at QoS 1 meanwhile, the gateway starts again: each command is answered exactly once.
Also: a changed session expiry applies at the next start, the session outlives a broker
restart when the broker persists it, the uplink re-subscribes safely whether or not the
broker kept its session, and retained commands still never run at a (re)connect."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Final

import pytest

from gateway.uplink import ConnectionState
from tests.fixtures.mosquitto import Broker, BrokerFactory
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    Received,
    open_outbox,
    open_uplink,
    plain_config,
    subscribe,
)
from tests.gateway.uplink.paho_platform import (
    CMD,
    REPLIES,
    START_TIMEOUT_S,
    STATUS,
    Platform,
    Seen,
    platform,
    properties,
    run_daemon,
    write_config,
)

#: Where the platform wants the answers to the commands it sends while the gateway is away.
OFFLINE_REPLIES: Final = f"{REPLIES}/offline"


def _send_while_offline(p: Platform, tag: str) -> None:
    """A ping and an outbox.stats at QoS 1 (the broker acknowledged them), answers wanted on
    OFFLINE_REPLIES."""
    for name, suffix in (("ping", "ping"), ("outbox.stats", "outbox/stats")):
        corr = f"{tag}:{name}".encode()
        code = p.publish(
            f"{CMD}/{suffix}",
            json.dumps({"id": f"{tag}-{name}"}).encode(),
            props=properties(ResponseTopic=OFFLINE_REPLIES, CorrelationData=corr),
        )
        assert code < 0x80, code


def _answers(p: Platform, mark: int, tag: str) -> list[Seen]:
    return [
        s
        for s in p.since(mark)
        if s.topic == OFFLINE_REPLIES and (s.correlation or b"").startswith(f"{tag}:".encode())
    ]


def _offline_since(p: Platform, mark: int, reason: str) -> bool:
    return any(
        s.topic == STATUS and json.loads(s.payload)["reason"] == reason for s in p.since(mark)
    )


def _assert_answered_once(p: Platform, mark: int, tag: str) -> None:
    answers = _answers(p, mark, tag)
    assert sorted(a.correlation or b"" for a in answers) == [
        f"{tag}:outbox.stats".encode(),
        f"{tag}:ping".encode(),
    ], answers
    for a in answers:
        body = json.loads(a.payload)
        assert body["ok"] is True, body
        assert body["id"].startswith(f"{tag}-"), body
    ping = next(json.loads(a.payload) for a in answers if a.correlation == f"{tag}:ping".encode())
    assert ping["result"]["pong"] is True


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_commands_sent_while_the_gateway_is_offline_run_once_after_it_returns(
    mosquitto: Broker, tmp_path: Path, stop: str
) -> None:
    config = write_config(tmp_path, mosquitto)
    with platform(mosquitto) as p:
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(mark)
            p.ping()  # connected and subscribed
            if stop == "sigkill":
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(START_TIMEOUT_S) == -signal.SIGKILL
            else:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(START_TIMEOUT_S) == 0
        reason = "connection lost" if stop == "sigkill" else "shutdown"
        p.wait(lambda: _offline_since(p, mark, reason))
        sent = p.mark()
        _send_while_offline(p, "away")
        assert _answers(p, sent, "away") == []
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(mark)
            p.wait(lambda: len(_answers(p, mark, "away")) >= 2)
            # Answered after everything queued: a second copy would have come before this.
            p.ping()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(START_TIMEOUT_S) == 0
        _assert_answered_once(p, mark, "away")


def _run_once(p: Platform, tmp_path: Path, config: Path, waiting_for: str | None) -> int:
    """Start the daemon, wait for the answers to what was sent while it was away (if any),
    check it is alive, stop it cleanly once the broker has it offline; the start's mark."""
    mark = p.mark()
    with run_daemon(tmp_path, config) as proc:
        p.wait_online(mark)
        if waiting_for is not None:
            p.wait(lambda: len(_answers(p, mark, waiting_for)) >= 2)
        p.ping()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(START_TIMEOUT_S) == 0
    p.wait(lambda: _offline_since(p, mark, "shutdown"))
    return mark


def test_a_changed_session_expiry_applies_at_the_next_start(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """Expiry 0: the session ends with the connection and what is sent meanwhile is lost.
    Restarted with the default (7 days): nothing of it comes back, and from then on commands
    wait for the gateway. Restarted with another expiry: the session is still resumed."""
    with platform(mosquitto) as p:
        _run_once(p, tmp_path, write_config(tmp_path, mosquitto, "session_expiry_s = 0\n"), None)
        _send_while_offline(p, "zero")
        mark = _run_once(p, tmp_path, write_config(tmp_path, mosquitto), None)
        assert _answers(p, mark, "zero") == []  # the liveness ping came after where they'd be
        _send_while_offline(p, "week")
        config = write_config(tmp_path, mosquitto, "session_expiry_s = 3600\n")
        mark = _run_once(p, tmp_path, config, "week")
        _assert_answered_once(p, mark, "week")
        assert _answers(p, mark, "zero") == []
        _send_while_offline(p, "hour")
        mark = _run_once(p, tmp_path, config, "hour")
        _assert_answered_once(p, mark, "hour")


def test_the_session_outlives_a_broker_restart_when_the_broker_persists_it(
    mosquitto_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory("persistent")
    config = write_config(tmp_path, broker)
    with platform(broker) as p:
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(mark)
            p.ping()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(START_TIMEOUT_S) == 0
        p.wait(lambda: _offline_since(p, mark, "shutdown"))
        _send_while_offline(p, "restart")
    broker.stop()  # SIGTERM: mosquitto writes its persistence file
    broker.start()
    with platform(broker, "platform-2") as p:
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(mark)
            p.wait(lambda: len(_answers(p, mark, "restart")) >= 2)
            p.ping()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(START_TIMEOUT_S) == 0
        _assert_answered_once(p, mark, "restart")


def _by_id(messages: list[Received]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in messages:
        cid = json.loads(m.payload)["id"]
        counts[cid] = counts.get(cid, 0) + 1
    return counts


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_offline_commands_and_a_retained_one_each_run_once(
    mosquitto: Broker, tmp_path: Path, protocol: str
) -> None:
    """In-process, both protocols (3.1.1: clean session off). A command published retained
    while the gateway is away is queued like any other and runs once; its retained copy,
    which 3.1.1 sends again at the re-subscribe, is not run (retain handling 2 under 5)."""
    config = plain_config(mosquitto, protocol=protocol)
    cmd = f"tagrelay/v1/{GATEWAY_ID}/cmd"
    async with (
        open_outbox(tmp_path) as outbox,
        subscribe(mosquitto, f"tagrelay/v1/{GATEWAY_ID}/result/#") as sub,
    ):
        async with open_uplink(config, outbox) as uplink:
            await uplink.wait_state(ConnectionState.CONNECTED)
            assert uplink.stats().sessions_resumed == 0
        await sub.client.publish(f"{cmd}/ping", b'{"id": "q-ping"}', qos=1)
        await sub.client.publish(f"{cmd}/outbox/stats", b'{"id": "q-stats"}', qos=1)
        await sub.client.publish(f"{cmd}/ping", b'{"id": "q-retained"}', qos=1, retain=True)
        async with open_uplink(config, outbox) as uplink:
            await sub.wait_until(lambda m: len(m) >= 3)
            await uplink.wait_state(ConnectionState.CONNECTED)
            await sub.client.publish(f"{cmd}/ping", b'{"id": "live"}', qos=1)
            await sub.wait_until(lambda m: "live" in _by_id(m))
            stats = uplink.stats()
        await sub.client.publish(f"{cmd}/ping", b"", qos=1, retain=True)  # clear the retained
    assert _by_id(sub.messages) == {"q-ping": 1, "q-stats": 1, "q-retained": 1, "live": 1}
    assert stats.sessions_resumed == 1
    assert stats.commands_handled == {"ping": 3, "outbox.stats": 1}
    retained_dropped = {"retained": 1} if protocol == "3.1.1" else {}
    assert stats.command_errors == retained_dropped


@pytest.mark.parametrize("kind", ["plain", "persistent"])
async def test_the_uplink_resubscribes_after_a_broker_restart(
    mosquitto_factory: BrokerFactory, tmp_path: Path, kind: str
) -> None:
    """A broker restarted under the running uplink: without persistence the session is gone
    and the re-subscribe makes a new one; with it the session is resumed and the re-subscribe
    replaces the subscription. Either way a command is answered exactly once."""
    broker = mosquitto_factory("plain" if kind == "plain" else "persistent")
    config = plain_config(broker)
    cmd = f"tagrelay/v1/{GATEWAY_ID}/cmd"
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.CONNECTED)
        broker.stop()
        await uplink.wait_state(ConnectionState.DISCONNECTED)
        broker.start()
        await uplink.wait_state(ConnectionState.CONNECTED)
        async with subscribe(broker, f"tagrelay/v1/{GATEWAY_ID}/result/#") as sub:
            await sub.client.publish(f"{cmd}/ping", b'{"id": "after"}', qos=1)
            await sub.client.publish(f"{cmd}/ping", b'{"id": "marker"}', qos=1)
            await sub.wait_until(lambda m: "marker" in _by_id(m))
        stats = uplink.stats()
    assert _by_id(sub.messages) == {"after": 1, "marker": 1}
    assert stats.connects == 2
    assert stats.sessions_resumed == (1 if kind == "persistent" else 0)
