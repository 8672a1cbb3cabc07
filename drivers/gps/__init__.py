"""The vehicle's GPS on the data path: position fixes and the trusted time derived from them.

Two sources produce the same :class:`GpsFixEvent`: a receiver read directly on serial
(:class:`GpsSerialDriver`, NMEA and UBX) or gpsd's JSON reports (:class:`GpsdDriver`).
:func:`gps_driver` picks one from :class:`GpsConfig`. Both expose ``trusted_time``: GPS time
pinned to the monotonic clock, which the gateway uses to stamp events with time source "gps".
"""

from drivers.base import DEFAULT_QUEUE_SIZE
from drivers.gps.base import TIME_HOLDOVER_S, GpsDriver
from drivers.gps.config import GPSD_DEFAULT_PORT, GpsConfig, GpsdConfig
from drivers.gps.events import TIME_SOURCE_GPS, GpsFixEvent, TrustedTime
from drivers.gps.gpsd import (
    GpsdDriver,
    GpsdFailure,
    GpsdRejectReason,
    GpsdReportError,
    fix_from_tpv,
)
from drivers.gps.serial import GpsSerialDriver
from foundation.clock import Clock

__all__ = [
    "GPSD_DEFAULT_PORT",
    "TIME_HOLDOVER_S",
    "TIME_SOURCE_GPS",
    "GpsConfig",
    "GpsDriver",
    "GpsFixEvent",
    "GpsSerialDriver",
    "GpsdConfig",
    "GpsdDriver",
    "GpsdFailure",
    "GpsdRejectReason",
    "GpsdReportError",
    "TrustedTime",
    "fix_from_tpv",
    "gps_driver",
]


def gps_driver(
    config: GpsConfig, *, clock: Clock, queue_size: int = DEFAULT_QUEUE_SIZE
) -> GpsDriver:
    """The driver for the configured source (the one place where the source is chosen)."""
    if config.source == "gpsd":
        return GpsdDriver(config.gpsd, clock=clock, queue_size=queue_size)
    assert config.serial is not None  # enforced by GpsConfig's validator
    return GpsSerialDriver(config.serial, clock=clock, queue_size=queue_size)
