"""A gateway on a three-node NATS cluster (JetStream + MQTT front end) loses its node mid-drain.

The uplink drains a backlog to node 1 while the platform reads with a persistent QoS 1 session
on node 3; node 1 is SIGKILLed by pid. The uplink must move to another node by itself
(``fallback_brokers``), resume its session there (a command sent meanwhile is answered),
and deliver every event, with duplicates only from its in-flight window. The drain rate and
the failover time (kill to the first PUBACK from the new node) are printed for docs/fleet.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest

from gateway.uplink import (
    BatchingConfig,
    ConnectionState,
    PubAckReport,
    Uplink,
    UplinkConfig,
)
from tests.fixtures.nats import NatsCluster
from tests.gateway.uplink.helpers import GATEWAY_ID, event, open_outbox, open_uplink, subscribe

#: Big enough that the drain is well under way, not finished, when the node dies.
BACKLOG_EVENTS = 8_000
KILL_AFTER_ACKED = 2_000
WINDOW = 50
#: How long the platform's command publish gets a PUBACK from one node, and in all.
PUBACK_WAIT_S = 6.0
COMMAND_SEND_S = 45.0
RESEND_PAUSE_S = 0.5


class _Acks:
    """PUBACKs counted, with the time of the first one from a broker other than ``first``."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.uplink: Uplink | None = None
        self.acked = 0
        self.first_at: float | None = None
        self.first_elsewhere_at: float | None = None
        self.changed = asyncio.Event()

    def __call__(self, delivery: PubAckReport) -> None:
        if not delivery.ack.ok:
            return
        self.acked += len(delivery.event_ids)
        if self.first_at is None:
            self.first_at = time.monotonic()
        up = self.uplink
        if (
            self.first_elsewhere_at is None
            and up is not None
            and up.state == ConnectionState.CONNECTED
            and up.state_detail != self.first
        ):
            self.first_elsewhere_at = time.monotonic()
        self.changed.set()

    async def wait_acked(self, n: int, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while self.acked < n:
                self.changed.clear()
                await self.changed.wait()


async def _send_command(cluster: NatsCluster, topic: str, body: dict[str, str]) -> None:
    """Publish at QoS 1 the way a platform does while the cluster elects new leaders: a
    PUBACK may not come in time, so send again (same command id) on another surviving node."""
    payload = json.dumps(body).encode()
    async with asyncio.timeout(COMMAND_SEND_S):
        for attempt in itertools.count():
            node = cluster.nodes[2 - attempt % 2]  # 3, 2, 3, ...
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    node.host, node.port, identifier="platform-commands",
                    protocol=aiomqtt.ProtocolVersion.V311, timeout=PUBACK_WAIT_S,
                ) as client:  # fmt: skip
                    await client.publish(topic, payload, qos=1)
                    return
            await asyncio.sleep(RESEND_PAUSE_S)  # pacing, as a platform's retry would


@pytest.mark.timeout(180)
async def test_node_killed_mid_drain_gateway_moves_on_and_delivers_everything(
    nats_cluster: NatsCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    one, two, three = nats_cluster.endpoints()
    config = UplinkConfig(
        host=nats_cluster.nodes[0].host,
        port=nats_cluster.nodes[0].port,
        fallback_brokers=(two, three),
        protocol="3.1.1",  # NATS's MQTT front end speaks 3.1.1
        transport="tcp",
        in_flight_window=WINDOW,
        reconnect_min_s=0.5,  # the shipped default: the failover time below is a real one
        reconnect_max_s=5.0,
        batching=BatchingConfig(enabled=False),
    )
    prefix = f"tagrelay/v1/{GATEWAY_ID}"
    acks = _Acks(first=one)
    platform = subscribe(
        nats_cluster.nodes[2], f"{prefix}/#", protocol="3.1.1",
        identifier="platform-consumer", clean_session=False,
    )  # fmt: skip
    async with open_outbox(tmp_path) as outbox, platform as sub:
        await outbox.accept([event(i, source=f"label-{i % 4}") for i in range(BACKLOG_EVENTS)])
        async with open_uplink(config, outbox, on_delivery=acks) as uplink:
            acks.uplink = uplink
            await acks.wait_acked(KILL_AFTER_ACKED, timeout_s=60)
            assert uplink.stats().broker == one
            before_kill = acks.acked
            killed_at = time.monotonic()
            nats_cluster.nodes[0].kill()
            # Sent while the gateway has no node: its session (in the cluster) queues it.
            await _send_command(nats_cluster, f"{prefix}/cmd/ping", {"id": "while-moving"})
            await acks.wait_acked(BACKLOG_EVENTS, timeout_s=90)
            drained_at = time.monotonic()
            stats = uplink.stats()
            assert uplink.state == ConnectionState.CONNECTED
            assert stats.broker in (two, three)
            assert stats.broker_switches >= 1
            # The session lives in the cluster's JetStream, not on the dead node.
            assert stats.sessions_resumed >= 1
            await sub.wait_until(
                lambda m: (
                    len({json.loads(x.payload)["seq"] for x in m if "/events/" in x.topic})
                    >= BACKLOG_EVENTS
                ),
                timeout_s=30,
            )
            await sub.wait_until(
                lambda m: any(x.topic == f"{prefix}/result/ping" for x in m), timeout_s=30
            )
        await sub.wait_until(
            lambda m: any(x.topic == f"{prefix}/status" and b'"shutdown"' in x.payload for x in m),
            timeout_s=15,
        )
        answers = [json.loads(m.payload) for m in sub.messages if "/result/" in m.topic]
        # Once per copy the platform had to send (a resend gets the same answer, not a rerun).
        assert {(a["id"], a["ok"], a["result"]["pong"]) for a in answers} == {
            ("while-moving", True, True)
        }
        seqs = Counter(e["seq"] for e in sub.events())
        assert set(seqs) == set(range(BACKLOG_EVENTS))
        duplicates = sum(seqs.values()) - len(seqs)
        assert duplicates <= WINDOW, f"{duplicates} duplicates, window {WINDOW}"
        status = [json.loads(m.payload) for m in sub.messages if m.topic == f"{prefix}/status"]
        # A birth on node 1, one on the node it moved to (after any will of an attempt that
        # failed there), and the goodbye of the clean stop.
        assert [s["state"] for s in status].count("online") >= 2
        assert status[-2]["state"] == "online"
        assert (status[-1]["state"], status[-1]["reason"]) == ("offline", "shutdown")
        assert any(f"lost {one}, next attempt on" in r.getMessage() for r in caplog.records)
        await outbox.flush()
        assert (await outbox.stats()).depth == 0

    assert acks.first_elsewhere_at is not None
    failover_s = acks.first_elsewhere_at - killed_at
    assert acks.first_at is not None
    rate_before = before_kill / (killed_at - acks.first_at)
    rate_after = (BACKLOG_EVENTS - before_kill) / (drained_at - acks.first_elsewhere_at)
    # The will lived on the killed node only: NATS publishes none (docs/fleet.md).
    will = [
        m for m in sub.messages if m.topic == f"{prefix}/status" and b"connection lost" in m.payload
    ]
    # Sessions, retained and QoS 1 messages: JetStream streams on all three nodes.
    streams = nats_cluster.streams(1)
    replicas = {name: s["config"]["num_replicas"] for name, s in streams.items()}
    assert replicas == {"$MQTT_sess": 3, "$MQTT_msgs": 3, "$MQTT_rmsgs": 3}
    print(
        f"\nfleet: {BACKLOG_EVENTS} events, window {WINDOW}; drain {rate_before:.0f} ev/s before"
        f" the kill, {rate_after:.0f} ev/s after; failover (kill -> first PUBACK on"
        f" {stats.broker}) {failover_s:.2f} s; duplicates {duplicates};"
        f" switches {stats.broker_switches}; sessions resumed {stats.sessions_resumed};"
        f" will seen {len(will)}; stream replicas {replicas}"
    )
