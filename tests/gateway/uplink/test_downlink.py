"""Commands through a real broker: MQTT 5 response topic + correlation data, the 3.1.1 result
topic, error responses that leave the uplink running; and the NATS MQTT front end."""

from __future__ import annotations

import json
from pathlib import Path

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.uplink import ConnectionState
from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    Deliveries,
    Received,
    event,
    open_outbox,
    open_uplink,
    plain_config,
    subscribe,
)

CMD = f"tagrelay/v1/{GATEWAY_ID}/cmd"
RESULT = f"tagrelay/v1/{GATEWAY_ID}/result"
SECRET = "pw-never-shown"


def _request_properties(response_topic: str, correlation: bytes) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    return props


async def test_mqtt5_commands_answer_on_the_response_topic(
    mosquitto: Broker, tmp_path: Path
) -> None:
    # The plain broker takes any credentials; config.get must not hand the password out.
    config = plain_config(mosquitto, username="gw", password=SECRET)
    async with (
        open_outbox(tmp_path) as outbox,
        open_uplink(config, outbox) as uplink,
        subscribe(mosquitto, "platform/replies/#") as sub,
    ):
        await uplink.wait_state(ConnectionState.CONNECTED)
        requests = [
            ("ping", b'{"id": "p-1"}', b"c1"),
            ("config.get", b'{"id": "g-1"}', b"c2"),
            ("outbox.stats", b'{"id": "s-1"}', b"c3"),
            ("ping", b"{oops", b"c4"),
            ("self-destruct", b'{"id": "x-1"}', b"c5"),
            ("ping", b'{"id": 7}', b"c6"),
            ("ping", b"[" * 40_000, b"c7"),
            ("ping", b'{"id": "p-1"}', b"c8"),  # repeated id: the earlier result
        ]
        for name, payload, corr in requests:
            await sub.client.publish(
                f"{CMD}/{name.replace('.', '/')}",
                payload,
                qos=1,
                properties=_request_properties("platform/replies/gw", corr),
            )
        await sub.wait_until(lambda m: len(m) >= len(requests))
        by_corr = {m.properties.CorrelationData: json.loads(m.payload) for m in sub.messages}
        assert by_corr[b"c1"]["ok"] is True
        assert by_corr[b"c1"]["result"]["pong"] is True
        assert by_corr[b"c2"]["result"]["host"] == mosquitto.host
        assert by_corr[b"c2"]["result"]["password"] == "**********"
        assert all(SECRET.encode() not in m.payload for m in sub.messages)
        assert by_corr[b"c3"]["result"]["store_epoch"] == outbox.store_epoch
        assert by_corr[b"c4"]["error"]["reason"] == "malformed_json"
        assert by_corr[b"c5"]["error"]["reason"] == "unknown_command"
        assert by_corr[b"c5"]["id"] == "x-1"
        assert by_corr[b"c6"]["error"]["reason"] == "invalid"
        assert by_corr[b"c7"]["error"]["reason"] == "oversize"
        assert by_corr[b"c8"] == by_corr[b"c1"]
        stats = uplink.stats()
        assert stats.command_errors == {
            "malformed_json": 1,
            "unknown_command": 1,
            "invalid": 1,
            "oversize": 1,
        }
        assert uplink.state is ConnectionState.CONNECTED  # still running after the bad ones


async def test_mqtt311_commands_answer_on_the_result_topic(
    mosquitto: Broker, tmp_path: Path
) -> None:
    config = plain_config(mosquitto, protocol="3.1.1")
    async with (
        open_outbox(tmp_path) as outbox,
        open_uplink(config, outbox) as uplink,
        subscribe(mosquitto, f"tagrelay/v1/{GATEWAY_ID}/result/#", protocol="3.1.1") as sub,
    ):
        await uplink.wait_state(ConnectionState.CONNECTED)
        await sub.client.publish(f"{CMD}/ping", b'{"id": "p-9"}', qos=1)
        await sub.client.publish(f"{CMD}/nope", b"{}", qos=1)
        await sub.wait_until(lambda m: len(m) >= 2)
        replies = {m.topic: json.loads(m.payload) for m in sub.messages}
        assert replies[f"{RESULT}/ping"]["id"] == "p-9"
        assert replies[f"{RESULT}/ping"]["ok"] is True
        assert replies[f"{RESULT}/nope"]["error"]["reason"] == "unknown_command"


async def test_refused_commands_are_counted_and_answered_on_the_result_topic(
    mosquitto: Broker, tmp_path: Path
) -> None:
    config = plain_config(mosquitto)
    async with (
        open_outbox(tmp_path) as outbox,
        subscribe(mosquitto, "#") as sub,
    ):
        # Retained before the gateway connects: MQTT 5 retain handling keeps it away.
        await sub.client.publish(
            f"{CMD}/ping",
            b'{"id": "old"}',
            qos=1,
            retain=True,
            properties=_request_properties("platform/replies/gw", b"old"),
        )
        async with open_uplink(config, outbox) as uplink:
            await uplink.wait_state(ConnectionState.CONNECTED)
            requests = [
                (b'{"id": "t-1"}', "x/#", b"c1"),
                (b'{"id": "t-2"}', f"tagrelay/v1/{GATEWAY_ID}/events/alarm/fake", b"c2"),
                (b'{"id": "t-3"}', "platform/replies/gw", b"c" * 2000),
                (b'{"id": "t-4"}', "platform/replies/gw", b"c4"),
            ]
            for payload, response_topic, corr in requests:
                await sub.client.publish(
                    f"{CMD}/ping",
                    payload,
                    qos=1,
                    properties=_request_properties(response_topic, corr),
                )

            def answers(m: list[Received]) -> list[Received]:
                return [x for x in m if x.topic.startswith(("platform/", RESULT))]

            await sub.wait_until(lambda m: len(answers(m)) >= len(requests))
            stats = uplink.stats()
        got = {json.loads(m.payload)["id"]: m for m in answers(sub.messages)}
        assert sorted(got) == ["t-1", "t-2", "t-3", "t-4"]  # "old" never ran
        for cid in ("t-1", "t-2", "t-3"):
            assert got[cid].topic == f"{RESULT}/ping"
            assert json.loads(got[cid].payload)["ok"] is False
        assert json.loads(got["t-1"].payload)["error"]["reason"] == "bad_response_topic"
        assert got["t-1"].properties.CorrelationData == b"c1"
        assert json.loads(got["t-3"].payload)["error"]["reason"] == "bad_correlation_data"
        assert not hasattr(got["t-3"].properties, "CorrelationData")
        assert got["t-4"].topic == "platform/replies/gw"
        assert json.loads(got["t-4"].payload)["ok"] is True
        assert not [m for m in sub.messages if m.topic.endswith("/events/alarm/fake")]
        assert stats.command_errors == {"bad_response_topic": 2, "bad_correlation_data": 1}
        assert stats.commands_handled == {"ping": 1}


async def test_retained_commands_are_dropped_and_counted_under_mqtt_311(
    mosquitto: Broker, tmp_path: Path
) -> None:
    config = plain_config(mosquitto, protocol="3.1.1")
    async with (
        open_outbox(tmp_path) as outbox,
        subscribe(mosquitto, f"{RESULT}/#", protocol="3.1.1") as sub,
    ):
        await sub.client.publish(f"{CMD}/ping", b'{"id": "old"}', qos=1, retain=True)
        await sub.client.publish(f"{CMD}/nope", b"{", qos=1, retain=True)
        async with open_uplink(config, outbox) as uplink:
            await uplink.wait_state(ConnectionState.CONNECTED)
            await sub.client.publish(f"{CMD}/ping", b'{"id": "new"}', qos=1)
            await sub.wait_until(lambda m: len(m) >= 1)
            stats = uplink.stats()
        assert [json.loads(m.payload)["id"] for m in sub.messages] == ["new"]
        assert stats.command_errors == {"retained": 2}
        assert stats.commands_handled == {"ping": 1}


async def test_delivery_through_the_nats_mqtt_front_end(nats_mqtt: Broker, tmp_path: Path) -> None:
    n = 300
    config = plain_config(nats_mqtt, protocol="3.1.1")
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i, source=f"label-{i % 2}") for i in range(n)])
        async with subscribe(
            nats_mqtt, f"tagrelay/v1/{GATEWAY_ID}/events/#", protocol="3.1.1"
        ) as sub:
            deliveries = Deliveries()
            async with open_uplink(config, outbox, on_delivery=deliveries):
                await deliveries.wait_acked(n)
                await sub.wait_until(lambda m: len(m) >= n)
        seqs = [e["seq"] for e in sub.events()]
        assert sorted(seqs) == list(range(n))
        for source in (0, 1):
            mine = [s for s in seqs if s % 2 == source]
            assert mine == sorted(mine)
        await outbox.flush()
        assert (await outbox.stats()).depth == 0
