"""The outbox: durable SQLite store and forward between the pipeline and the uplink.

The pipeline hands events to :meth:`Outbox.accept`, which returns once they are committed; the
uplink leases them by priority class, acks what the broker confirmed (deleted in batches) and
rejects what the platform refused (dead letters). See docs/outbox.md for the guarantees.
"""

from gateway.outbox.config import OutboxConfig
from gateway.outbox.errors import OutboxError, OutboxErrorReason
from gateway.outbox.models import (
    AcceptResult,
    AcceptStatus,
    ClassStats,
    EventClass,
    LeasedEvent,
    LossCount,
    OutboxEvent,
    OutboxStats,
)
from gateway.outbox.outbox import Outbox
from gateway.outbox.store import LOSS_KIND

__all__ = [
    "LOSS_KIND",
    "AcceptResult",
    "AcceptStatus",
    "ClassStats",
    "EventClass",
    "LeasedEvent",
    "LossCount",
    "Outbox",
    "OutboxConfig",
    "OutboxError",
    "OutboxErrorReason",
    "OutboxEvent",
    "OutboxStats",
]
