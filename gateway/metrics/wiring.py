"""Where each metric's numbers live in a running daemon: :func:`daemon_sources` points the
collector at the counters the outbox, uplink, pipeline and domain engines already keep."""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Final

from drivers.base import Driver
from drivers.gps import GpsSerialDriver
from foundation.clock import Clock
from gateway.conditions import ConditionMonitor
from gateway.config import GatewayConfig
from gateway.custody import CustodyEngine
from gateway.metrics.collector import GatewayMetrics, MetricSources
from gateway.metrics.server import MetricsServer, MetricsServerError
from gateway.outbox import Outbox
from gateway.pipeline.pipeline import Pipeline
from gateway.presence import PresenceTracker
from gateway.timekeeping import TimeKeeper
from gateway.uplink import Uplink

__all__ = ["daemon_sources", "serve_metrics"]

_log = logging.getLogger(__name__)

#: BLE scanner supervision counters that are restarts, and the reason label they get.
BLE_RESTARTS: Final = {
    "restarts_silent": "scan_silent",
    "bluetoothd_restarts": "bluetoothd_restarted",
    "bus_lost": "bus_lost",
    "power_cycles": "power_cycle",
}


async def serve_metrics(
    stack: AsyncExitStack,
    config: GatewayConfig,
    metrics: GatewayMetrics,
    *,
    outbox: Outbox,
    uplink: Uplink,
    pipeline: Pipeline,
    timekeeper: TimeKeeper,
    presence: PresenceTracker,
    custody: CustodyEngine | None,
    conditions: ConditionMonitor | None,
    version: str,
) -> None:
    """Point ``metrics`` at the daemon's components and serve it until ``stack`` closes. A
    port that cannot be opened is logged and the daemon runs on: observability must not stop
    delivery."""
    zones = (
        *(s.zone for s in config.ble.scanners),
        *(r.zone for r in config.smartlabel_readers if r.zone),
    )
    metrics.sources = daemon_sources(
        zones=zones,
        outbox=outbox,
        uplink=uplink,
        pipeline=pipeline,
        timekeeper=timekeeper,
        presence=presence,
        custody=custody,
        conditions=conditions,
        clock=metrics.clock,
        info={"version": version, "gateway_id": config.gateway_id},
    )
    cfg = config.metrics
    try:
        await stack.enter_async_context(MetricsServer(cfg.bind, cfg.port, metrics.render))
    except MetricsServerError as exc:
        _log.error("%s; running without metrics", exc)


def daemon_sources(
    *,
    zones: Iterable[str],
    outbox: Outbox,
    uplink: Uplink,
    pipeline: Pipeline,
    timekeeper: TimeKeeper,
    presence: PresenceTracker,
    custody: CustodyEngine | None,
    conditions: ConditionMonitor | None,
    clock: Clock,
    info: Mapping[str, str],
) -> MetricSources:
    zone_list = tuple(dict.fromkeys(zones))

    def counts() -> Mapping[str, int]:
        s = uplink.stats()
        return {
            "connects": s.connects,
            "messages": s.messages_published,
            "events": s.events_published,
            "acked": s.events_acked,
        }

    def drivers() -> Iterable[Driver[Any]]:
        found: list[Driver[Any]] = [*pipeline.scanners, *pipeline.readers]
        if pipeline.gps is not None:
            found.append(pipeline.gps)
        return found

    def restarts() -> Mapping[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for stage, n in pipeline.supervisor.restarts.items():
            out[(stage, "stage_failed")] = n
        for scanner in pipeline.scanners:
            for counter, reason in BLE_RESTARTS.items():
                out[(scanner.name, reason)] = scanner.counters[counter]
        for reader in pipeline.readers:
            out[(reader.name, "link_lost")] = reader.link_stats.losses
        return out

    def decode_errors() -> Mapping[tuple[str, str], int]:
        out = {("ble", reason): n for reason, n in pipeline.adverts.decode_errors.items()}
        for reader in pipeline.readers:
            for reason, n in reader.rejected.items():
                out[(reader.name, reason.value)] = n
        if isinstance(pipeline.gps, GpsSerialDriver):
            for gps_reason, n in pipeline.gps.rejected.items():
                out[(pipeline.gps.name, gps_reason.value)] = n
        return out

    def label_nacks() -> Mapping[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for path, labels in pipeline.labels.items():
            for reason, n in labels.counters.nacks.items():
                out[(f"smartlabel:{path}", reason)] = n
        busy = pipeline.counters["label_nack_busy"]
        if busy:
            out[("smartlabel", "busy")] = busy
        return out

    def offset_s() -> float:
        m = clock.monotonic()
        return (timekeeper.peek(m) - clock.now()).total_seconds()

    def present() -> Mapping[str, int]:
        return {zone: len(presence.present(zone)) for zone in zone_list}

    def sessions() -> int:
        assert custody is not None
        book = custody.handoffs
        return sum(book.state_of(s) == "open" for s in book.session_ids())

    def excursions() -> Mapping[str, int]:
        assert conditions is not None
        return collections.Counter(str(q) for _, q, _, _ in conditions.open_excursions())

    return MetricSources(
        outbox=outbox,
        uplink_state=lambda: uplink.state.value,
        uplink_counts=counts,
        uplink_rejects=lambda: uplink.stats().reject_reasons,
        drivers=drivers,
        restarts=restarts,
        decode_errors=decode_errors,
        label_nacks=label_nacks,
        label_time_issues=lambda: {
            str(k): n for k, n in timekeeper.stats.label_time_issues.items()
        },
        sensor_faults=lambda: {
            f"smartlabel:{p}": lp.counters.sensor_faults for p, lp in pipeline.labels.items()
        },
        events_dropped=lambda: pipeline.writer.dropped,
        clock_state=lambda: timekeeper.state.value,
        clock_offset_s=offset_s,
        presence=present,
        handoff_sessions_open=None if custody is None else sessions,
        excursions_open=None if conditions is None else excursions,
        info=info,
    )
