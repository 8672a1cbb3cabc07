"""MQTT uplink: the gateway's only road to the platform.

Leases events from the outbox, publishes them at QoS 1 over TLS with a bounded in-flight
window (telemetry batched), acknowledges them on PUBACK, keeps a retained birth / will on
``.../status`` and answers downlink commands. paho-mqtt is confined to ``_mqtt``.

Exported here is what the rest of the gateway uses: the :class:`Uplink` and its
configuration, state and statistics, and the command API other packages register commands
with. The rooms inside (``session_loop``, ``publisher``, ``dispatch``, ``site``, ``topics``,
``backoff``, ``commands``) are importable as submodules.
"""

from gateway.uplink.commands import Command, CommandRegistry, CommandRejected, default_registry
from gateway.uplink.config import BatchingConfig, TlsConfig, UplinkConfig
from gateway.uplink.errors import UplinkError, UplinkErrorReason
from gateway.uplink.uplink import (
    ConnectionState,
    PubAckReport,
    SiteMessage,
    StatusInfo,
    Uplink,
    UplinkStats,
)

__all__ = [
    "BatchingConfig",
    "Command",
    "CommandRegistry",
    "CommandRejected",
    "ConnectionState",
    "PubAckReport",
    "SiteMessage",
    "StatusInfo",
    "TlsConfig",
    "Uplink",
    "UplinkConfig",
    "UplinkError",
    "UplinkErrorReason",
    "UplinkStats",
    "default_registry",
]
