"""``device.status``: the health of a tag, label or reader as the gateway sees it."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field

from gateway.events.base import Event, UtcDatetime, make_event_id
from gateway.events.common import Origin, Quantity

__all__ = ["DeviceState", "DeviceStatus"]


class DeviceState(enum.StrEnum):
    """What a ``device.status`` reports."""

    #: A routine status report (a SmartLabel status frame): battery, firmware, flags.
    OK = "ok"
    #: Nothing heard for longer than the device's profile allows. Never implies an excursion.
    SILENT = "silent"
    #: An impossible value (e.g. 300 °C) or a stuck sensor: the value is not used as a reading.
    SENSOR_FAULT = "sensor_fault"
    #: Back to normal after ``recovered_from``.
    RECOVERED = "recovered"
    #: Battery below the configured threshold for its chemistry.
    LOW_BATTERY = "low_battery"


class DeviceStatus(Event):
    """Emitted for a SmartLabel status frame (``ok``, or ``low_battery`` / ``sensor_fault``
    when it says so), and by the gateway when a device falls silent, reports an impossible or
    stuck value, runs low on battery, or recovers from any of these."""

    kind: Literal["device.status"] = "device.status"
    state: DeviceState
    recovered_from: DeviceState | None = None
    """For ``recovered``: the state that ended."""
    battery_mv: int | None = Field(default=None, ge=0)
    """The latest battery voltage, millivolts."""
    firmware: str | None = None
    """Firmware version, when the device reports it."""
    uptime_s: float | None = Field(default=None, ge=0)
    flags: tuple[str, ...] = ()
    """State bits the device itself reported, by name (``low_battery``, ``sensor_fault``,
    ``shock_latched``, ``clock_unsynced``, ``history_overflow``)."""
    quantity: Quantity | None = None
    """For ``sensor_fault``: the quantity at fault."""
    value: float | None = None
    """For ``sensor_fault``: the offending value (or the stuck one), in the quantity's unit."""
    last_seen: UtcDatetime | None = None
    """For ``silent``: when the device was last heard."""
    silent_for_s: float | None = Field(default=None, ge=0)
    """For ``silent``: how long nothing has been heard, seconds."""
    detail: str | None = None
    """A short human-readable explanation."""

    @classmethod
    def make_id(cls, gateway_id: str, origin: Origin, state: DeviceState) -> str:
        """Hashes the state and the frame or observation it was derived from: a status frame,
        the reading that was at fault or that recovered, or (for ``silent``) the last sighting
        before the silence, so re-deriving a silence after a restart gives the same id."""
        return make_event_id("device.status", gateway_id, state, *origin.identity())
