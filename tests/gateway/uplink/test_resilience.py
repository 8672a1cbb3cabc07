"""Outages and refusals against real mosquitto: restart mid-drain, ACL denial, status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest

from gateway.outbox import EventClass
from gateway.uplink import ConnectionState, PubAckReport, Uplink, UplinkConfig
from tests.fixtures.mosquitto import (
    PASSWORD,
    SUBSCRIBER,
    SUBSCRIBER_PASSWORD,
    USERNAME,
    BrokerFactory,
)
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    Deliveries,
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


#: Published by the test once the uplink is done: the broker queues it behind every event, so
#: reading up to it reads every copy the broker kept, duplicates included.
MARKER_TOPIC = f"tagrelay/v1/{GATEWAY_ID}/events/test/end"


async def _read_queue(host: str, port: int) -> list[tuple[str, int]]:
    """(kind, seq) of every event queued for the persistent consumer, in delivery order.

    The consumer connects once, after the outage: a client that lives through a broker
    restart leaves aiomqtt futures with exceptions nobody retrieves."""
    got: list[tuple[str, int]] = []
    async with _platform_client(host, port) as client:
        await client.publish(MARKER_TOPIC, b"{}", qos=1)
        async for msg in client.messages:
            if str(msg.topic) == MARKER_TOPIC:
                return got
            assert isinstance(msg.payload, bytes)
            body = json.loads(msg.payload)
            got.append((body["kind"], body["seq"]))
    raise AssertionError("the message stream ended before the marker")


@pytest.mark.parametrize("outage", ["terminate", "kill"])
async def test_broker_restart_mid_drain_loses_nothing(
    mosquitto_factory: BrokerFactory, tmp_path: Path, outage: str
) -> None:
    """SIGTERM: the broker saves its queues, so the consumer's side is checked too. SIGKILL:
    what the broker had not saved is gone (its loss, not ours): the uplink's side is checked,
    every event acknowledged once and deleted."""
    broker = mosquitto_factory("persistent")
    n, window = 3000, 20
    config = plain_config(broker, in_flight_window=window, protocol="3.1.1")
    # Two classes, four sources each: order is promised within (class, source).
    events = [
        event(i, EventClass.PRESENCE, "presence.enter", f"label-{i % 4}")
        if i % 3 == 0
        else event(i, source=f"label-{i % 4}")
        for i in range(n)
    ]
    deliveries = Deliveries()
    acked_ids: list[str] = []
    at_drop: dict[str, object] = {}

    def observe(delivery: PubAckReport) -> None:
        deliveries(delivery)
        if delivery.ack.ok:
            acked_ids.extend(delivery.event_ids)

    async with open_outbox(tmp_path) as outbox:
        await outbox.accept(events)
        async with _platform_client(broker.host, broker.port) as client:
            await client.subscribe(EVENTS, qos=1)
        holder: list[Uplink] = []

        def on_state(state: ConnectionState, detail: str) -> None:
            # Runs before the session's leftovers are released: published minus acked is
            # exactly what was in flight when the connection dropped.
            if state is ConnectionState.DISCONNECTED and holder and "in_flight" not in at_drop:
                stats = holder[0].stats()
                at_drop["in_flight"] = stats.events_published - stats.events_acked
                at_drop["acked"] = set(acked_ids)

        async with (
            open_uplink(config, outbox, on_delivery=observe, on_state=on_state) as uplink,
            asyncio.timeout(90),
        ):
            holder.append(uplink)
            await deliveries.wait_acked(n // 3)
            if outage == "kill":
                broker.kill()
            else:
                broker.stop()  # clean: it saves the consumer's session and queue to disk
            await uplink.wait_state(ConnectionState.DISCONNECTED)
            broker.start()
            await deliveries.wait_acked(n)
            stats = uplink.stats()
        await outbox.flush()
        assert (await outbox.stats()).depth == 0
        received = await _read_queue(broker.host, broker.port) if outage == "terminate" else []
    assert stats.connects == 2
    assert deliveries.acked == n, "an event was acknowledged twice"
    # What the uplink sent twice is exactly what was in flight at the outage, at most a window.
    in_flight = at_drop["in_flight"]
    assert isinstance(in_flight, int)
    assert 0 <= in_flight <= window
    assert stats.events_published - n == in_flight
    if outage == "kill":
        return
    seqs = [seq for _, seq in received]
    assert set(seqs) == set(range(n)), "lost events"
    # The consumer's duplicates are among those, never an event the broker had acknowledged.
    duplicates = [s for s, count in Counter(seqs).items() if count > 1]
    assert len(seqs) - n <= in_flight
    assert all(count <= 2 for count in Counter(seqs).values())
    acked_before = at_drop["acked"]
    assert isinstance(acked_before, set)
    assert not {f"ev-{s:08d}" for s in duplicates} & acked_before
    for kind in ("presence.enter", "telemetry.reading"):
        for source in range(4):
            mine = [s for k, s in received if k == kind and s % 4 == source]
            first_seen = list(dict.fromkeys(mine))
            assert first_seen == sorted(first_seen), (kind, source)


async def test_acl_denial_is_a_negative_puback_and_a_dead_letter(
    mosquitto_factory: BrokerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory("auth")
    caplog.set_level(logging.DEBUG)  # every logger, the most verbose: still no password
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
    assert "broker refused a publish" in caplog.text  # the run did log
    assert PASSWORD not in caplog.text


async def test_wrong_password_is_a_refused_connect(
    mosquitto_factory: BrokerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory("auth")
    wrong = "wrong-but-still-secret"
    config = plain_config(broker, username=USERNAME, password=wrong)
    caplog.set_level(logging.DEBUG)
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.DISCONNECTED)
        assert uplink.state_detail == "connect_refused"
    assert "uplink cannot connect" in caplog.text
    assert wrong not in caplog.text
    assert wrong not in repr(config)


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
            assert birth["clock_state"] == "unknown"  # no time component yet (docs/mqtt.md)
            assert isinstance(birth["outbox_depth"], int)
            assert uplink.stats().connects == 2
        async with subscribe(broker, STATUS) as sub:
            await sub.wait_until(lambda m: len(m) >= 1)
        death = json.loads(sub.messages[0].payload)
        assert death["state"] == "offline"
        assert death["reason"] == "shutdown"


class _FakeBroker:
    """A TCP listener that counts connection attempts and answers each CONNECT with a
    refusing CONNACK (3.1.1 code 5, not authorised) or, with ``refuse = False``, by hanging up.
    Standing in for a broker lets the test see every attempt the uplink makes."""

    def __init__(self) -> None:
        self.attempts = 0
        self.refuse = True
        self.changed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        self.changed.set()
        try:
            if self.refuse:
                await reader.read(1024)  # the CONNECT packet
                writer.write(b"\x20\x02\x00\x05")
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def wait_attempts(self, n: int) -> None:
        async with asyncio.timeout(30):
            while self.attempts < n:
                self.changed.clear()
                await self.changed.wait()


async def test_connection_state_is_logged_once_per_change_not_per_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _FakeBroker()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = UplinkConfig(
        host="127.0.0.1",
        port=port,
        transport="tcp",
        protocol="3.1.1",
        reconnect_min_s=0.01,
        reconnect_max_s=0.02,
    )
    caplog.set_level(logging.INFO, logger="gateway.uplink")

    def lines(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if text in r.getMessage()]

    try:
        async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
            await fake.wait_attempts(6)
            assert uplink.state_detail == "connect_refused"
            assert len(lines("uplink not connected")) == 1
            assert len(lines("uplink cannot connect")) == 1
            assert "Not authorized" in lines("uplink cannot connect")[0]
            # A new reason is a change: one more line, however many attempts follow.
            fake.refuse = False
            seen = fake.attempts
            await fake.wait_attempts(seen + 6)
            assert uplink.state_detail == "connection_lost"
            assert len(lines("uplink not connected")) == 2
            assert len(lines("uplink cannot connect")) == 1
            # Never connected: nothing was "disconnected" (a connection that stood and was
            # lost is; tests/gateway/uplink/test_first_contact.py).
            assert lines("uplink disconnected") == []
            assert uplink.stats().connects == 0
    finally:
        server.close()
        await server.wait_closed()
