"""Outages and refusals against real mosquitto: restart mid-drain, ACL denial, status."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt

from gateway.outbox import EventClass
from gateway.uplink import ConnectionState
from tests.fixtures.mosquitto import (
    PASSWORD,
    SUBSCRIBER,
    SUBSCRIBER_PASSWORD,
    USERNAME,
    BrokerFactory,
)
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    event,
    open_outbox,
    open_uplink,
    plain_config,
    subscribe,
)

EVENTS = f"tagrelay/v1/{GATEWAY_ID}/events/#"
STATUS = f"tagrelay/v1/{GATEWAY_ID}/status"


def _platform_client(host: str, port: int) -> aiomqtt.Client:
    """A platform consumer with a persistent session: the broker queues for it while away."""
    return aiomqtt.Client(
        host,
        port,
        identifier="platform-persistent",
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=False,
    )


#: Retry pause of the test consumer while the broker is down (an external process: polling).
CONSUMER_RETRY_S = 0.05


async def _consume(host: str, port: int, seqs: list[int], n: int, third: asyncio.Event) -> None:
    """Read until every seq arrived, reconnecting through outages (the session survives)."""
    while True:
        try:
            async with _platform_client(host, port) as client:
                async for msg in client.messages:
                    assert isinstance(msg.payload, bytes)
                    seqs.append(json.loads(msg.payload)["seq"])
                    if len(seqs) >= n // 3:
                        third.set()
                    if len(set(seqs)) >= n:
                        return
        except aiomqtt.MqttError:
            await asyncio.sleep(CONSUMER_RETRY_S)


async def test_broker_restart_mid_drain_loses_nothing(
    mosquitto_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory("persistent")
    n, window = 3000, 20
    config = plain_config(broker, in_flight_window=window, protocol="3.1.1")
    seqs: list[int] = []
    third = asyncio.Event()
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i, source=f"label-{i % 4}") for i in range(n)])
        async with _platform_client(broker.host, broker.port) as client:
            await client.subscribe(EVENTS, qos=1)
        async with open_uplink(config, outbox) as uplink, asyncio.timeout(90):
            consumer = asyncio.create_task(_consume(broker.host, broker.port, seqs, n, third))
            await third.wait()
            # Clean broker stop: it saves the consumer's session and queue to disk.
            broker.stop()
            await uplink.wait_state(ConnectionState.DISCONNECTED)
            broker.start()
            await consumer
            stats = uplink.stats()
    assert stats.connects == 2
    assert set(seqs) == set(range(n)), "lost events"
    # What the uplink sent twice is bounded by what was in flight at the outage.
    resent = stats.events_published - n
    assert 0 <= resent <= window, resent
    for source in range(4):
        first_seen = list(dict.fromkeys(s for s in seqs if s % 4 == source))
        assert first_seen == sorted(first_seen)


async def test_acl_denial_is_a_negative_puback_and_a_dead_letter(
    mosquitto_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory("auth")
    config = plain_config(broker, username=USERNAME, password=PASSWORD)
    allowed = [event(i) for i in range(20)]
    denied = [event(100 + i, EventClass.PRESENCE, "denied.thing") for i in range(3)]
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([*allowed, *denied])
        async with subscribe(
            broker, EVENTS, username=SUBSCRIBER, password=SUBSCRIBER_PASSWORD
        ) as sub:
            async with open_uplink(config, outbox) as uplink:
                await sub.wait_until(lambda m: len(m) >= len(allowed))
                await uplink.wait_state(ConnectionState.CONNECTED)
            stats = uplink.stats()
        assert stats.events_rejected == 3
        assert stats.events_acked == 20
        assert any("0x87" in reason for reason in stats.reject_reasons)
        await outbox.flush()
        store = await outbox.stats()
        assert store.dead_letters == 3
        assert store.depth == 0
        assert all("denied" not in m.topic for m in sub.messages)


async def test_wrong_password_is_a_refused_connect(
    mosquitto_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory("auth")
    config = plain_config(broker, username=USERNAME, password="wrong")
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.DISCONNECTED)
        assert uplink.state_detail == "connect_refused"


async def test_retained_birth_after_reconnect_and_offline_on_clean_stop(
    mosquitto_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory("plain")  # no persistence: the restart forgets retained messages
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i) for i in range(5)])
        async with open_uplink(plain_config(broker), outbox) as uplink:
            await uplink.wait_state(ConnectionState.CONNECTED)
            broker.stop()
            await uplink.wait_state(ConnectionState.DISCONNECTED)
            broker.start()
            await uplink.wait_state(ConnectionState.CONNECTED)
            async with subscribe(broker, STATUS) as sub:
                await sub.wait_until(lambda m: len(m) >= 1)
            birth = json.loads(sub.messages[0].payload)
            assert sub.messages[0].retain
            assert birth["state"] == "online"
            assert birth["gateway_id"] == GATEWAY_ID
            assert birth["version"] == "0.1.0"
            assert birth["config_hash"] == "cafef00d"
            assert isinstance(birth["outbox_depth"], int)
            assert uplink.stats().connects == 2
        async with subscribe(broker, STATUS) as sub:
            await sub.wait_until(lambda m: len(m) >= 1)
        death = json.loads(sub.messages[0].payload)
        assert death["state"] == "offline"
        assert death["reason"] == "shutdown"
