"""Delivery from a real outbox to a real mosquitto: backlog, order, acks, batching."""

from __future__ import annotations

from pathlib import Path

from gateway.outbox import EventClass
from gateway.uplink import BatchingConfig, ConnectionState
from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    event,
    open_outbox,
    open_uplink,
    plain_config,
    subscribe,
)


async def test_backlog_is_delivered_in_order_and_acked(mosquitto: Broker, tmp_path: Path) -> None:
    n = 500
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i, source=f"label-{i % 3}") for i in range(n)])
        async with subscribe(mosquitto, f"tagrelay/v1/{GATEWAY_ID}/events/#") as sub:
            async with open_uplink(plain_config(mosquitto), outbox) as uplink:
                await sub.wait_until(lambda m: len(m) >= n)
                await uplink.wait_state(ConnectionState.CONNECTED)
            stats = uplink.stats()
        assert stats.events_acked == n
        assert stats.messages_published == n
        # The MQTT client id is the gateway id (mosquitto logs it at notice level; stopping
        # the broker flushes its log).
        mosquitto.stop()
        assert f" as {GATEWAY_ID} " in mosquitto.log()
        got = sub.events()
        assert len(got) == n
        for source in ("label-0", "label-1", "label-2"):
            seqs = [e["seq"] for e in got if e["source"] == source]
            assert seqs == sorted(seqs)
        assert all(
            m.topic == f"tagrelay/v1/{GATEWAY_ID}/events/telemetry/reading" for m in sub.messages
        )
        # MQTT 5 message expiry from the class TTL (telemetry: 2 days by default).
        props = sub.messages[0].properties
        assert 0 < props.MessageExpiryInterval <= 2 * 86400
        assert props.ContentType == "application/json"
        await outbox.flush()
        after = await outbox.stats()
        assert after.depth == 0
        assert after.leased == 0


async def test_batching_packs_telemetry_and_keeps_alarms_alone(
    mosquitto: Broker, tmp_path: Path
) -> None:
    # 1050 events in batches of 100: ten full ones, and fifty that go out when the age limit
    # closes the last batch.
    config = plain_config(
        mosquitto, batching=BatchingConfig(enabled=True, max_events=100, max_age_ms=50)
    )
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i) for i in range(1050)])
        await outbox.accept([event(5000, EventClass.ALARM, "condition.shock")])
        async with subscribe(mosquitto, f"tagrelay/v1/{GATEWAY_ID}/events/#") as sub:
            async with open_uplink(config, outbox) as uplink:
                await sub.wait_until(lambda m: len(sub.events()) >= 1051)
            stats = uplink.stats()
        alarms = [m for m in sub.messages if m.topic.endswith("/condition/shock")]
        assert len(alarms) == 1
        assert alarms[0].payload.startswith(b"{")
        assert sub.messages[0] is alarms[0], "the alarm goes ahead of the backlog"
        assert stats.batches_published == 11
        assert stats.messages_published == 12
        assert sorted(e["seq"] for e in sub.events()) == [*range(1050), 5000]
        batches = [m for m in sub.messages if m.topic.endswith("telemetry/reading")]
        sizes = sorted(int(dict(m.properties.UserProperty)["batch-size"]) for m in batches)
        assert sizes == [50] + [100] * 10
        assert all(m.properties.ContentType == "application/json" for m in batches)
        assert all(("content-encoding", "zlib") in m.properties.UserProperty for m in batches)
