"""First contact that says what went wrong, against a real mosquitto: two gateways cloned with
one gateway_id back off instead of trading the session every second; TLS against a plain
listener says so; a broker that is not there is "refused", not "disconnected"; a command on
the bare ``.../cmd`` topic is answered and logged."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.uplink import ConnectionState, Uplink, UplinkConfig
from tests.fixtures.mosquitto import Broker, BrokerFactory, Certificates
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    open_outbox,
    open_uplink,
    plain_config,
    subscribe,
)
from tests.gateway.uplink.test_tls import tls_config

#: How long the two clones are watched. With the takeover backoff (5 s, doubling) they
#: connect a handful of times in it; storming, they connected 45 times in 12 s.
CLONE_WINDOW_S: Final = 10.0
#: Connects of both clones together in the window, at most: two first connects, the 3.1.1
#: detection (three short sessions each), and the few takeovers the backoff allows.
CLONE_MAX_CONNECTS: Final = 12
TAKEOVER_LINE: Final = "took the MQTT session over"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_two_gateways_with_one_id_back_off_instead_of_storming(
    mosquitto: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    config = plain_config(mosquitto, protocol=protocol)
    details: list[list[str]] = [[], []]
    async with AsyncExitStack() as stack:
        uplinks: list[Uplink] = []
        for n in range(2):
            (tmp_path / str(n)).mkdir()
            outbox = await stack.enter_async_context(open_outbox(tmp_path / str(n)))

            def on_state(state: ConnectionState, detail: str, seen: list[str] = details[n]) -> None:
                seen.append(detail)

            uplinks.append(
                await stack.enter_async_context(open_uplink(config, outbox, on_state=on_state))
            )
        started = time.monotonic()
        await asyncio.sleep(CLONE_WINDOW_S)  # a measurement window, not a synchronisation
        connects = sum(u.stats().connects for u in uplinks)
        takeovers = sum(u.stats().session_takeovers for u in uplinks)
        elapsed_s = time.monotonic() - started
    assert 2 <= connects <= CLONE_MAX_CONNECTS, f"{connects} connects in {elapsed_s:.1f} s"
    assert takeovers >= 1
    assert any("session_taken_over" in seen for seen in details)
    lines = [r.getMessage() for r in caplog.records if TAKEOVER_LINE in r.getMessage()]
    # One line per gateway that was taken over, not one per takeover.
    assert 1 <= len(lines) <= 2
    assert "cloned image" in lines[0]
    assert f"'{GATEWAY_ID}'" in lines[0]
    assert "give each gateway its own gateway_id" in lines[0]


async def test_tls_against_a_plain_listener_says_to_set_transport(
    mosquitto_factory: BrokerFactory,
    certificates: Certificates,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory("plain")
    config = plain_config(
        broker, **tls_config(broker.port, "localhost", certificates.ca_cert, certificates)
    )
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.DISCONNECTED)
        assert uplink.state_detail == "tls_handshake"
    lines = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(lines) == 1
    assert f"TLS handshake with localhost:{broker.port} failed" in lines[0]
    assert 'is the broker plain MQTT? set transport = "tcp"' in lines[0]


async def test_a_broker_not_there_at_start_is_refused_not_disconnected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = UplinkConfig(
        host="127.0.0.1", port=port, transport="tcp", reconnect_min_s=0.05, reconnect_max_s=0.5
    )
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.DISCONNECTED)
        assert uplink.state_detail == "connect_failed"
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "uplink disconnected" in m]
    assert "uplink not connected: connect_failed" in messages
    refused = [m for m in messages if "cannot connect" in m]
    assert len(refused) == 1
    assert f"connection refused by 127.0.0.1:{port}" in refused[0]


async def test_a_command_on_the_bare_cmd_topic_is_answered_and_logged(
    mosquitto: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.uplink")
    bare = f"tagrelay/v1/{GATEWAY_ID}/cmd"
    async with (
        open_outbox(tmp_path) as outbox,
        open_uplink(plain_config(mosquitto), outbox) as uplink,
        subscribe(mosquitto, "platform/replies/#") as sub,
    ):
        await uplink.wait_state(ConnectionState.CONNECTED)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = "platform/replies/gw"
        props.CorrelationData = b"bare-1"
        await sub.client.publish(bare, b'{"id": "b-1"}', qos=1, properties=props)
        await sub.client.publish(bare, b'{"id": "b-2"}', qos=1)  # no response topic
        await sub.wait_until(lambda m: len(m) >= 1)
        # The second message was read after the first: one ping through the same loop
        # after it proves both were handled.
        await sub.client.publish(f"{bare}/ping", b'{"id": "p-1"}', qos=1, properties=props)
        await sub.wait_until(lambda m: len(m) >= 2)
        stats = uplink.stats()
    answer = json.loads(sub.messages[0].payload)
    assert sub.messages[0].properties.CorrelationData == b"bare-1"
    assert answer["ok"] is False
    assert answer["id"] == "b-1"
    assert answer["error"]["reason"] == "not_a_command_topic"
    assert "publish on" in answer["error"]["detail"]
    assert json.loads(sub.messages[1].payload)["result"]["pong"] is True
    assert stats.command_errors == {"not_a_command_topic": 2}
    lines = [r.getMessage() for r in caplog.records if "not_a_command_topic" in r.getMessage()]
    assert lines, "no log line for a command without a name"
    assert "no command name" in lines[0]
