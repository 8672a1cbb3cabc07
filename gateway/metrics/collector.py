"""The daemon's Prometheus metrics, read from the components' own counters at scrape time.

Nothing on the data path increments a metric: the drivers, the pipeline stages, the outbox and
the uplink already count what they do (decode errors by reason, NACKs, restarts, queue depth),
and :class:`GatewayMetrics` is a custom collector that turns those counters into metric families
when Prometheus asks. The one exception is the publish-to-PUBACK latency histogram, observed
from the uplink's delivery callback (one observation per PUBACK, not per advert).

Each daemon has its own :class:`~prometheus_client.CollectorRegistry`: no process-global state,
so tests can run several gateways in one process. :meth:`GatewayMetrics.render` runs on the
event loop (the outbox statistics are an awaited call on its store thread, and the counters are
the loop's own objects, read without locks or races).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from drivers.base import Driver
from foundation.clock import Clock
from gateway.outbox import EventClass, Outbox, OutboxStats
from gateway.uplink import PubAckReport

__all__ = [
    "LATENCY_BUCKETS_S",
    "GatewayMetrics",
    "MetricSources",
    "class_name",
]

#: Publish-to-PUBACK latency buckets: a LAN broker answers in milliseconds, a cellular link in
#: hundreds of them, a congested one in seconds; beyond 30 s the window is stalled anyway.
LATENCY_BUCKETS_S: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

#: Clock states a gateway can be in (``tagrelay_clock_state`` has one series per state).
CLOCK_STATES: Final = ("gps", "ntp", "unsynced")


def class_name(event_class: EventClass) -> str:
    """The event class as configs and docs spell it (``alarm``, ``telemetry``)."""
    return event_class.name.lower()


@dataclass(slots=True)
class MetricSources:
    """What the collector reads; each part is optional (a component not running is skipped).

    Functions rather than objects where the daemon's components already give a plain answer,
    so that this module does not depend on the pipeline's internals.
    """

    outbox: Outbox | None = None
    #: ConnectionState value (``connected``...) and the uplink's counters.
    uplink_state: Callable[[], str] | None = None
    uplink_counts: Callable[[], Mapping[str, int]] | None = None
    uplink_rejects: Callable[[], Mapping[str, int]] | None = None
    #: The drivers the pipeline runs (BLE scanners, SmartLabel readers, GPS).
    drivers: Callable[[], Iterable[Driver[Any]]] = lambda: ()
    #: (driver or stage name, reason) -> restarts.
    restarts: Callable[[], Mapping[tuple[str, str], int]] = dict
    #: (source, reason) -> frames / adverts that did not decode.
    decode_errors: Callable[[], Mapping[tuple[str, str], int]] = dict
    #: (source, reason) -> SmartLabel frames answered with a NACK.
    label_nacks: Callable[[], Mapping[tuple[str, str], int]] = dict
    #: issue -> SmartLabel times that could not be used as they were.
    label_time_issues: Callable[[], Mapping[str, int]] = dict
    #: source -> SmartLabel sensor faults reported.
    sensor_faults: Callable[[], Mapping[str, int]] = dict
    #: Derived events the pipeline dropped because its queue was full.
    events_dropped: Callable[[], int] = lambda: 0
    #: The gateway clock: state value and offset from the system clock.
    clock_state: Callable[[], str] | None = None
    clock_offset_s: Callable[[], float] | None = None
    #: zone -> tags present.
    presence: Callable[[], Mapping[str, int]] = dict
    handoff_sessions_open: Callable[[], int] | None = None
    excursions_open: Callable[[], Mapping[str, int]] | None = None
    #: Build information labels (version, gateway id).
    info: Mapping[str, str] = field(default_factory=dict)


class GatewayMetrics(Collector):
    """One daemon's registry: this collector plus the latency histogram."""

    def __init__(self, clock: Clock, sources: MetricSources | None = None) -> None:
        self.clock = clock
        self.sources = sources if sources is not None else MetricSources()
        self.registry = CollectorRegistry()
        self._started_s = clock.monotonic()
        self._outbox_stats: OutboxStats | None = None
        self.latency = Histogram(
            "tagrelay_mqtt_publish_ack_latency_seconds",
            "Time from handing a PUBLISH to the MQTT client to its PUBACK, by event class.",
            ["class"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(self)

    def on_delivery(self, delivery: PubAckReport) -> None:
        """The uplink's PUBACK observer: one latency observation per acknowledged message."""
        self.latency.labels(class_name(delivery.event_class)).observe(max(delivery.latency_s, 0))

    async def render(self) -> bytes:
        """The exposition text (call on the event loop)."""
        outbox = self.sources.outbox
        self._outbox_stats = await outbox.stats() if outbox is not None else None
        try:
            return generate_latest(self.registry)
        finally:
            self._outbox_stats = None

    # -- the collector --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        src = self.sources
        now = self.clock.monotonic()
        if src.info:
            info = GaugeMetricFamily(
                "tagrelay_build_info",
                "Always 1; the labels say which tagrelay runs as which gateway.",
                labels=list(src.info),
            )
            info.add_metric(list(src.info.values()), 1.0)
            yield info
        yield from self._drivers(now)
        yield from self._pipeline()
        yield from self._outbox()
        yield from self._uplink()
        yield from self._domain()

    def _drivers(self, now: float) -> Iterator[Metric]:
        src = self.sources
        adverts = CounterMetricFamily(
            "tagrelay_adverts_received",
            "BLE advertisements a scanner handed in, by source (ble:ADAPTER).",
            labels=["source"],
        )
        frames = CounterMetricFamily(
            "tagrelay_frames_received",
            "Frames from SmartLabel readers and GPS fixes, by source.",
            labels=["source"],
        )
        dropped = CounterMetricFamily(
            "tagrelay_driver_queue_dropped",
            "Raw events a driver dropped because the pipeline fell behind, by driver.",
            labels=["driver"],
        )
        age = GaugeMetricFamily(
            "tagrelay_driver_last_data_age_seconds",
            "Seconds since a driver last produced data (since the start before its first).",
            labels=["driver"],
        )
        for driver in src.drivers():
            stats = driver.queue_stats
            family = adverts if driver.name.startswith("ble:") else frames
            family.add_metric([driver.name], float(stats.offered))
            dropped.add_metric([driver.name], float(stats.dropped))
            last = driver.last_event_at
            age.add_metric([driver.name], max(now - (self._started_s if last is None else last), 0))
        restarts = CounterMetricFamily(
            "tagrelay_driver_restarts",
            "Restarts of a driver or pipeline stage, by reason (stage_failed, scan_silent, "
            "bluetoothd_restarted, power_cycle, link_lost).",
            labels=["driver", "reason"],
        )
        for (name, reason), n in sorted(src.restarts().items()):
            restarts.add_metric([name, reason], float(n))
        yield from (adverts, frames, dropped, age, restarts)

    def _pipeline(self) -> Iterator[Metric]:
        src = self.sources
        yield _counter(
            "tagrelay_decode_errors",
            "Adverts and frames that did not decode, by source and reason.",
            ["source", "reason"],
            src.decode_errors(),
        )
        yield _counter(
            "tagrelay_label_nacks",
            "SmartLabel frames answered with a NACK, by reader and reason.",
            ["source", "reason"],
            src.label_nacks(),
        )
        yield _counter(
            "tagrelay_label_time_issues",
            "SmartLabel times that could not be used as they were, by issue.",
            ["issue"],
            {(k,): v for k, v in src.label_time_issues().items()},
        )
        yield _counter(
            "tagrelay_label_sensor_faults",
            "Sensor faults SmartLabels reported, by reader.",
            ["source"],
            {(k,): v for k, v in src.sensor_faults().items()},
        )
        dropped = CounterMetricFamily(
            "tagrelay_events_dropped",
            "Derived events dropped because the pipeline's queue to the outbox was full.",
        )
        dropped.add_metric([], float(src.events_dropped()))
        yield dropped

    def _outbox(self) -> Iterator[Metric]:
        stats = self._outbox_stats
        outbox = self.sources.outbox
        if outbox is not None:
            yield _counter(
                "tagrelay_events",
                "Events committed to the outbox since start, by kind.",
                ["kind"],
                {(k,): v for k, v in outbox.accepted_by_kind.items()},
            )
        if stats is None:
            return
        depth = GaugeMetricFamily(
            "tagrelay_outbox_events", "Events waiting in the outbox, by class.", labels=["class"]
        )
        size = GaugeMetricFamily(
            "tagrelay_outbox_bytes", "Bytes of events waiting, by class.", labels=["class"]
        )
        oldest = GaugeMetricFamily(
            "tagrelay_outbox_oldest_age_seconds",
            "Age of the oldest waiting event, by class (0 when none waits).",
            labels=["class"],
        )
        for cls in stats.classes:
            name = class_name(cls.event_class)
            depth.add_metric([name], float(cls.depth))
            size.add_metric([name], float(cls.bytes))
            oldest.add_metric([name], cls.oldest_age_s or 0.0)
        yield from (depth, size, oldest)
        yield _gauge("tagrelay_outbox_max_bytes", "The outbox's byte cap.", stats.max_bytes)
        yield _gauge(
            "tagrelay_outbox_leased_events",
            "Events handed to the uplink and not yet acknowledged.",
            stats.leased,
        )
        yield _gauge(
            "tagrelay_outbox_dead_letters",
            "Events the broker refused, kept in the dead-letter table.",
            stats.dead_letters,
        )
        yield _counter(
            "tagrelay_outbox_lost_events",
            "Events lost since the outbox file was created, by class and reason "
            "(evicted: the cap was reached; expired: the class TTL ran out).",
            ["class", "reason"],
            {(class_name(loss.event_class), loss.reason): loss.count for loss in stats.losses},
        )

    def _uplink(self) -> Iterator[Metric]:
        src = self.sources
        if src.uplink_state is not None:
            state = src.uplink_state()
            yield _gauge(
                "tagrelay_mqtt_connected", "1 while connected to the broker.", state == "connected"
            )
        if src.uplink_counts is not None:
            counts = src.uplink_counts()
            connects = counts.get("connects", 0)
            for name, key, text in (
                ("tagrelay_mqtt_connects", "connects", "Successful connects to the broker."),
                ("tagrelay_mqtt_messages_published", "messages", "MQTT messages published."),
                (
                    "tagrelay_mqtt_events_published",
                    "events",
                    "Events published (batches count each event).",
                ),
                ("tagrelay_mqtt_events_acked", "acked", "Events the broker acknowledged."),
            ):
                family = CounterMetricFamily(name, text)
                family.add_metric([], float(counts.get(key, 0)))
                yield family
            reconnects = CounterMetricFamily(
                "tagrelay_mqtt_reconnects", "Connects after the first one (link came back)."
            )
            reconnects.add_metric([], float(max(connects - 1, 0)))
            yield reconnects
        if src.uplink_rejects is not None:
            yield _counter(
                "tagrelay_mqtt_events_rejected",
                "Events the broker refused (moved to dead letters), by PUBACK reason.",
                ["reason"],
                {(k,): v for k, v in src.uplink_rejects().items()},
            )

    def _domain(self) -> Iterator[Metric]:
        src = self.sources
        if src.clock_state is not None:
            current = src.clock_state()
            state = GaugeMetricFamily(
                "tagrelay_clock_state",
                "1 for the gateway clock's current state (gps, ntp, unsynced), 0 for the others.",
                labels=["state"],
            )
            for name in CLOCK_STATES:
                state.add_metric([name], float(name == current))
            yield state
            yield _gauge(
                "tagrelay_clock_synced",
                "1 while the clock follows GPS or NTP.",
                current != "unsynced",
            )
        if src.clock_offset_s is not None:
            yield _gauge(
                "tagrelay_clock_offset_seconds",
                "Gateway time (GPS, NTP or the start sample) minus the system clock.",
                src.clock_offset_s(),
            )
        present = GaugeMetricFamily(
            "tagrelay_presence_tags", "Tags present in a zone.", labels=["zone"]
        )
        for zone, n in sorted(src.presence().items()):
            present.add_metric([zone], float(n))
        yield present
        if src.handoff_sessions_open is not None:
            yield _gauge(
                "tagrelay_handoff_sessions_open",
                "Handoff sessions open at the dock doors.",
                src.handoff_sessions_open(),
            )
        if src.excursions_open is not None:
            excursions = GaugeMetricFamily(
                "tagrelay_condition_excursions_open",
                "Condition excursions open, by quantity (temperature, humidity...).",
                labels=["quantity"],
            )
            for quantity, n in sorted(src.excursions_open().items()):
                excursions.add_metric([quantity], float(n))
            yield excursions


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text)
    family.add_metric([], float(value))
    return family


_Key = TypeVar("_Key", bound=tuple[str, ...])


def _counter(
    name: str, text: str, labels: list[str], values: Mapping[_Key, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=labels)
    for key, n in sorted(values.items()):
        family.add_metric(list(key), float(n))
    return family
