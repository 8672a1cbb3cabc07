"""Hardware edge of the data path: BLE (bleak on BlueZ), serial SmartLabel readers and GPS.

Each driver turns its device's callbacks and byte streams into an async iterator of raw events,
and owns reconnects, adapter recovery and the watchdog for its own device. Drivers hand bytes to
``protocols`` for decoding and never import ``gateway``.
"""

from drivers.base import (
    DEFAULT_QUEUE_SIZE,
    REJECT_LOG_INTERVAL_S,
    BurstLog,
    Driver,
    EventQueue,
    OverflowPolicy,
    QueueStats,
)
from drivers.errors import DriverError

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "REJECT_LOG_INTERVAL_S",
    "BurstLog",
    "Driver",
    "DriverError",
    "EventQueue",
    "OverflowPolicy",
    "QueueStats",
]
