"""Typed SmartLabel messages: what the codec hands to the gateway and takes from the simulator.

One frozen, slotted dataclass per message type. Values are in engineering units (degrees,
metres, °C, %RH, mV); the wire scaling lives in the codec. A field that the label reported as
"not available" (a sentinel on the wire) is ``None``. Field names are the JSON names of
``tagrelay decode serial``; ``format`` is the JSON ``format`` value.

Every message starts with the frame header: ``label_id`` (64-bit), ``seq`` (32-bit, per label
and direction) and ``label_time`` (seconds since the Unix epoch UTC, or seconds since boot when
below ``SYNCED_TIME_MIN_S``; see docs/protocol.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final, TypeAlias

from protocols.smartlabel.wire import MessageType

__all__ = [
    "GATEWAY_TO_LABEL",
    "LABEL_TO_GATEWAY",
    "Ack",
    "Environment",
    "GpsFix",
    "Heartbeat",
    "HistoryBatch",
    "HistoryReading",
    "LabelConfig",
    "Message",
    "Nack",
    "NackReason",
    "Shock",
    "Status",
    "StatusFlags",
    "TimeSource",
    "TimeSync",
]


class NackReason(enum.IntEnum):
    """Why the gateway refused a frame; tells the reader whether resending can help."""

    BUSY = 1
    """The gateway could not commit the events now (outbox unavailable): resend later."""
    MALFORMED = 2
    """The frame passed its CRC but its content is invalid: resending the same bytes is futile."""
    UNSUPPORTED = 3
    """The gateway does not handle this message type: drop the frame."""
    UNKNOWN_LABEL = 4
    """The label is not provisioned on this gateway: drop the frame."""


class TimeSource(enum.IntEnum):
    """Where the gateway's clock came from when it sent a time sync."""

    UNSYNCED = 0
    RTC = 1
    NTP = 2
    GPS = 3


class StatusFlags(enum.IntFlag):
    """Bits of :attr:`Status.flags`; bits not listed here are reserved and sent as 0."""

    SHOCK_LATCHED = 1 << 0
    LOW_BATTERY = 1 << 1
    SENSOR_FAULT = 1 << 2
    CLOCK_UNSYNCED = 1 << 3
    HISTORY_OVERFLOW = 1 << 4


@dataclass(frozen=True, slots=True)
class GpsFix:
    """A position fix from a label with a GNSS receiver."""

    format: ClassVar[str] = "smartlabel-gps"
    msg_type: ClassVar[MessageType] = MessageType.GPS_FIX

    label_id: int
    seq: int
    label_time: int
    lat: float
    lon: float
    alt_m: float | None
    speed_mps: float | None
    heading_deg: float | None
    hdop: float | None
    num_sats: int | None
    fix_time: int


@dataclass(frozen=True, slots=True)
class Environment:
    """One temperature / humidity reading."""

    format: ClassVar[str] = "smartlabel-env"
    msg_type: ClassVar[MessageType] = MessageType.ENVIRONMENT

    label_id: int
    seq: int
    label_time: int
    temperature_c: float | None
    humidity_pct: float | None


@dataclass(frozen=True, slots=True)
class Shock:
    """A shock above the label's threshold: signed peak per axis, how long it lasted."""

    format: ClassVar[str] = "smartlabel-shock"
    msg_type: ClassVar[MessageType] = MessageType.SHOCK

    label_id: int
    seq: int
    label_time: int
    peak_x_mg: int
    peak_y_mg: int
    peak_z_mg: int
    duration_ms: int
    threshold_mg: int


@dataclass(frozen=True, slots=True)
class Status:
    """Battery, firmware and health of a label."""

    format: ClassVar[str] = "smartlabel-status"
    msg_type: ClassVar[MessageType] = MessageType.STATUS

    label_id: int
    seq: int
    label_time: int
    battery_mv: int | None
    firmware_version: str
    flags: int
    config_id: int
    uptime_s: int


@dataclass(frozen=True, slots=True)
class HistoryReading:
    """One reading a label logged while it was out of range, with its own time."""

    time: int
    temperature_c: float | None
    humidity_pct: float | None


@dataclass(frozen=True, slots=True)
class HistoryBatch:
    """Up to ``HISTORY_MAX_READINGS`` logged readings, oldest first."""

    format: ClassVar[str] = "smartlabel-history"
    msg_type: ClassVar[MessageType] = MessageType.HISTORY_BATCH

    label_id: int
    seq: int
    label_time: int
    readings: tuple[HistoryReading, ...]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """I am alive, nothing to report."""

    format: ClassVar[str] = "smartlabel-heartbeat"
    msg_type: ClassVar[MessageType] = MessageType.HEARTBEAT

    label_id: int
    seq: int
    label_time: int


@dataclass(frozen=True, slots=True)
class Ack:
    """The gateway committed the events of frame (``label_id``, ``acked_seq``)."""

    format: ClassVar[str] = "smartlabel-ack"
    msg_type: ClassVar[MessageType] = MessageType.ACK

    label_id: int
    seq: int
    label_time: int
    acked_seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    """The gateway refused frame (``label_id``, ``nacked_seq``); ``reason``: resend or not."""

    format: ClassVar[str] = "smartlabel-nack"
    msg_type: ClassVar[MessageType] = MessageType.NACK

    label_id: int
    seq: int
    label_time: int
    nacked_seq: int
    reason: NackReason


@dataclass(frozen=True, slots=True)
class TimeSync:
    """The gateway's UTC time in milliseconds and where it came from."""

    format: ClassVar[str] = "smartlabel-time-sync"
    msg_type: ClassVar[MessageType] = MessageType.TIME_SYNC

    label_id: int
    seq: int
    label_time: int
    utc_time_ms: int
    time_source: TimeSource


@dataclass(frozen=True, slots=True)
class LabelConfig:
    """Reporting intervals and alarm thresholds for one label; ``None`` disables a threshold."""

    format: ClassVar[str] = "smartlabel-config"
    msg_type: ClassVar[MessageType] = MessageType.LABEL_CONFIG

    label_id: int
    seq: int
    label_time: int
    config_id: int
    report_interval_s: int
    heartbeat_interval_s: int
    temp_low_c: float | None
    temp_high_c: float | None
    humidity_high_pct: float | None
    shock_threshold_mg: int | None


Message: TypeAlias = (
    GpsFix
    | Environment
    | Shock
    | Status
    | HistoryBatch
    | Heartbeat
    | Ack
    | Nack
    | TimeSync
    | LabelConfig
)
"""Any SmartLabel message, either direction."""

LABEL_TO_GATEWAY: Final = (GpsFix, Environment, Shock, Status, HistoryBatch, Heartbeat)
"""Messages a reader sends upstream on behalf of its labels."""

GATEWAY_TO_LABEL: Final = (Ack, Nack, TimeSync, LabelConfig)
"""Messages the gateway sends down to a reader (and through it to a label)."""
