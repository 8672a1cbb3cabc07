"""Prometheus metrics of a running gateway: a custom collector over the components' own
counters, served on a loopback port from the daemon's event loop (docs/operations.md,
"Metrics")."""

from gateway.metrics.collector import (
    LATENCY_BUCKETS_S,
    GatewayMetrics,
    MetricSources,
    class_name,
)
from gateway.metrics.config import DEFAULT_METRICS_PORT, MetricsConfig
from gateway.metrics.server import MetricsServer, MetricsServerError

__all__ = [
    "DEFAULT_METRICS_PORT",
    "LATENCY_BUCKETS_S",
    "GatewayMetrics",
    "MetricSources",
    "MetricsConfig",
    "MetricsServer",
    "MetricsServerError",
    "class_name",
]
