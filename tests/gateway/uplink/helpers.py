"""Shared pieces of the uplink tests: events, an outbox in a temp dir, a platform-side
subscriber (aiomqtt: the platform's side may use any client), and uplink configs."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiomqtt

from foundation.clock import SystemClock
from gateway.outbox import EventClass, Outbox, OutboxConfig, OutboxEvent
from gateway.uplink import BatchingConfig, PubAckReport, StatusInfo, Uplink, UplinkConfig
from tests.fixtures.mosquitto import Broker

GATEWAY_ID = "gw-test-1"
STATUS = StatusInfo(version="0.1.0", config_hash="cafef00d")


def event(
    n: int,
    event_class: EventClass = EventClass.TELEMETRY,
    kind: str = "telemetry.reading",
    source: str = "label-1",
) -> OutboxEvent:
    payload = json.dumps(
        {"event_id": f"ev-{n:08d}", "kind": kind, "source": source, "seq": n, "t_c": 4.5}
    ).encode()
    return OutboxEvent(f"ev-{n:08d}", event_class, kind, payload, source=source)


def plain_config(broker: Broker, **overrides: Any) -> UplinkConfig:
    base: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "transport": "tcp",
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "batching": BatchingConfig(enabled=False),
    }
    base.update(overrides)
    return UplinkConfig.model_validate(base)


@asynccontextmanager
async def open_outbox(path: Path) -> AsyncIterator[Outbox]:
    config = OutboxConfig(ack_flush_delay_ms=20.0)
    async with Outbox(path / "outbox.db", config, SystemClock()) as outbox:
        yield outbox


@asynccontextmanager
async def open_uplink(config: UplinkConfig, outbox: Outbox, **kwargs: Any) -> AsyncIterator[Uplink]:
    async with Uplink(config, GATEWAY_ID, outbox, SystemClock(), status=STATUS, **kwargs) as up:
        yield up


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: Any


@dataclass
class Subscriber:
    """Collects messages; ``wait_for(n)`` returns once n messages arrived."""

    client: aiomqtt.Client
    messages: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def _pump(self) -> None:
        async for msg in self.client.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
            self.messages.append(Received(str(msg.topic), payload, msg.retain, msg.properties))
            self.changed.set()

    async def wait_until(self, predicate: Any, timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self.messages):
                self.changed.clear()
                await self.changed.wait()

    def events(self) -> list[dict[str, Any]]:
        """Every event received on .../events/..., batches unpacked."""
        out: list[dict[str, Any]] = []
        for m in self.messages:
            if "/events/" not in m.topic:
                continue
            data = m.payload
            if data[:1] not in (b"{", b"["):
                data = zlib.decompress(data)
            value = json.loads(data)
            out.extend(value if isinstance(value, list) else [value])
        return out


@asynccontextmanager
async def subscribe(
    broker: Broker,
    topic: str,
    *,
    protocol: Literal["5", "3.1.1"] = "5",
    username: str | None = None,
    password: str | None = None,
    identifier: str | None = None,
    clean_session: bool | None = None,
) -> AsyncIterator[Subscriber]:
    """``identifier`` and ``clean_session=False`` (3.1.1) give the platform a persistent
    session, as a real consumer has."""
    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        protocol=version,
        username=username,
        password=password,
        identifier=identifier if identifier is not None else f"platform-{id(broker)}",
        clean_session=clean_session,
    ) as client:
        await client.subscribe(topic, qos=1)
        sub = Subscriber(client)
        task = asyncio.create_task(sub._pump())
        try:
            yield sub
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@dataclass
class Deliveries:
    """An ``on_delivery`` observer: ``wait_acked(n)`` returns once n events got a PUBACK."""

    acked: int = 0
    rejected: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, delivery: PubAckReport) -> None:
        if delivery.ack.ok:
            self.acked += len(delivery.event_ids)
        else:
            self.rejected += len(delivery.event_ids)
        self.changed.set()

    async def wait_acked(self, n: int, timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            while self.acked < n:
                self.changed.clear()
                await self.changed.wait()
