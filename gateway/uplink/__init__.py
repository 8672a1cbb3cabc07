"""MQTT uplink: the gateway's only road to the platform.

Leases events from the outbox, publishes them at QoS 1 over TLS with a bounded in-flight
window (telemetry batched), acknowledges them on PUBACK, keeps a retained birth / will on
``.../status`` and answers downlink commands. paho-mqtt is confined to ``_mqtt``.
"""

from gateway.uplink.backoff import Backoff
from gateway.uplink.commands import (
    Command,
    CommandError,
    CommandErrorReason,
    CommandProcessor,
    CommandRegistry,
    CommandRejected,
    CommandResponse,
    ConfigGetCommand,
    OutboxStatsCommand,
    PingCommand,
    default_registry,
)
from gateway.uplink.config import BatchingConfig, TlsConfig, UplinkConfig
from gateway.uplink.errors import UplinkError, UplinkErrorReason
from gateway.uplink.status import GatewayStatus
from gateway.uplink.topics import Topics, topic_name_problem
from gateway.uplink.uplink import (
    ConnectionState,
    Delivery,
    SiteMessage,
    StatusInfo,
    Uplink,
    UplinkStats,
)

__all__ = [
    "Backoff",
    "BatchingConfig",
    "Command",
    "CommandError",
    "CommandErrorReason",
    "CommandProcessor",
    "CommandRegistry",
    "CommandRejected",
    "CommandResponse",
    "ConfigGetCommand",
    "ConnectionState",
    "Delivery",
    "GatewayStatus",
    "OutboxStatsCommand",
    "PingCommand",
    "SiteMessage",
    "StatusInfo",
    "TlsConfig",
    "Topics",
    "Uplink",
    "UplinkConfig",
    "UplinkError",
    "UplinkErrorReason",
    "UplinkStats",
    "default_registry",
    "topic_name_problem",
]
