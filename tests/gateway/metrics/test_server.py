"""The metrics endpoint's HTTP on a real loopback socket: what a scraper gets, what anything
else gets, and a port that is taken."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from foundation.clock import SystemClock
from gateway.metrics import GatewayMetrics, MetricsServer, MetricsServerError
from gateway.outbox import EventClass
from gateway.uplink import PubAckReport
from gateway.uplink._mqtt import PubAck


async def request(port: int, raw: bytes) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(5):
            response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode(), body


async def test_serves_the_registry_and_refuses_the_rest() -> None:
    metrics = GatewayMetrics(SystemClock())
    ack = PubAck(reason_code=0, reason="Success")
    metrics.on_delivery(PubAckReport(("e1",), EventClass.ALARM, ack, 0.012))
    metrics.on_delivery(PubAckReport(("e2", "e3"), EventClass.TELEMETRY, ack, 0.3))
    async with MetricsServer("127.0.0.1", 0, metrics.render) as server:
        head, body = await request(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith("HTTP/1.1 200 OK")
        assert "Content-Type: text/plain; version=" in head
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        latency = families["tagrelay_mqtt_publish_ack_latency_seconds"]
        counts = {s.labels["class"]: s.value for s in latency.samples if s.name.endswith("_count")}
        assert counts == {"alarm": 1.0, "telemetry": 1.0}
        le = {
            (s.labels["class"], s.labels["le"]): s.value
            for s in latency.samples
            if s.name.endswith("_bucket")
        }
        assert le[("alarm", "0.025")] == 1.0
        assert le[("telemetry", "0.25")] == 0.0
        assert le[("telemetry", "0.5")] == 1.0
        # No components attached: what there is, no errors.
        assert families["tagrelay_presence_tags"].samples == []

        head, body = await request(server.port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert head.startswith("HTTP/1.1 200")
        assert body == b""
        head, _ = await request(server.port, b"GET /other HTTP/1.1\r\n\r\n")
        assert head.startswith("HTTP/1.1 404")
        head, _ = await request(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert head.startswith("HTTP/1.1 405")
        head, _ = await request(server.port, b"\x16\x03\x01 garbage\r\n\r\n")
        assert head.startswith("HTTP/1.1 400")
        assert server.scrapes == 2  # the GET and the HEAD

        # A taken port is a clear error, not a traceback from deep in asyncio.
        with pytest.raises(MetricsServerError, match=f"127.0.0.1:{server.port}"):
            async with MetricsServer("127.0.0.1", server.port, metrics.render):
                pass


def test_each_daemon_has_its_own_registry() -> None:
    a, b = GatewayMetrics(SystemClock()), GatewayMetrics(SystemClock())
    ack = PubAck(reason_code=0, reason="Success")
    a.on_delivery(PubAckReport(("e1",), EventClass.STATUS, ack, 0.1))
    assert (
        a.registry.get_sample_value(
            "tagrelay_mqtt_publish_ack_latency_seconds_count", {"class": "status"}
        )
        == 1.0
    )
    assert (
        b.registry.get_sample_value(
            "tagrelay_mqtt_publish_ack_latency_seconds_count", {"class": "status"}
        )
        is None
    )
