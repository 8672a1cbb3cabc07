"""SmartLabel frames to events: readings, positions, shocks, status, and silence.

:class:`LabelProcessor` is the serial half of the pipeline without I/O. For each frame a reader
relays it returns a :class:`LabelOutcome`: the events to commit before the frame may be ACKed,
or the NACK reason when the frame cannot be turned into events. Every event of a frame has an
id derived from (label, sequence, index in a history batch), so a frame the reader sends again
(a lost ACK, a gateway restart, a kill -9) produces the same ids and the outbox keeps one copy.

Label frames are not rate-limited: each is a reading the label chose to log at its configured
interval, and the cold-chain record needs every one. Values outside what a sensor can measure
(a temperature of 300 °C) are a ``device.status`` sensor fault, not a reading. A label's own
times are mapped to gateway time by the :class:`~gateway.timekeeping.TimeKeeper`; a label that
falls silent is reported once, and again when it is heard from (with a conditions bridge, how
long a label may stay silent is learned from its reporting interval, docs/conditions.md).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from drivers.serial import ReaderFrame
from foundation.clock import Clock
from gateway.events import (
    ConditionShock,
    DeviceState,
    DeviceStatus,
    Event,
    EventSource,
    LabelFrame,
    Quantity,
    TelemetryPosition,
    make_event_id,
    to_outbox,
)
from gateway.outbox import OutboxEvent
from gateway.pipeline.conditions import ConditionsBridge
from gateway.pipeline.factory import EventFactory
from gateway.registry import smartlabel_tag_id
from gateway.timekeeping import Stamp, TimeKeeper, TimeSyncValue
from protocols.smartlabel import (
    Environment,
    GpsFix,
    Heartbeat,
    HistoryBatch,
    NackReason,
    Shock,
    Status,
    StatusFlags,
    TimeSource,
)

__all__ = [
    "BROADCAST_LABEL_ID",
    "HUMIDITY_RANGE_PCT",
    "SHOCK_MAX_MG",
    "TEMPERATURE_RANGE_C",
    "LabelOutcome",
    "LabelProcessor",
]

#: Addressed to every label of a reader; never the id of a real label.
BROADCAST_LABEL_ID: Final = 0xFFFF_FFFF_FFFF_FFFF
#: What the labels' sensors can measure (SHT4x-class: -40..125 °C, 0..100 %RH); a value outside
#: is a sensor fault, not a cold chain event.
TEMPERATURE_RANGE_C: Final = (-40.0, 125.0)
HUMIDITY_RANGE_PCT: Final = (0.0, 100.0)
#: The labels' accelerometer full scale (±200 g, docs/protocol.md): beyond it is a fault.
SHOCK_MAX_MG: Final = 200_000
#: Labels remembered for silence detection and time sync: far more than one reader relays.
MAX_LABELS: Final = 10_000


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    """What to do with one frame: commit ``events`` then ACK, or NACK with ``nack``."""

    events: list[OutboxEvent]
    nack: NackReason | None = None
    detail: str = ""


@dataclass(slots=True)
class _Label:
    last_heard: float
    reader: str
    zone: str | None
    synced_at: float = -math.inf
    silent: bool = False
    last_seq: int | None = None


@dataclass(slots=True)
class LabelCounters:
    frames: int = 0
    events: int = 0
    sensor_faults: int = 0
    out_of_order: int = 0
    time_issues: collections.Counter[str] = field(default_factory=collections.Counter)
    nacks: collections.Counter[str] = field(default_factory=collections.Counter)


class LabelProcessor:
    """Turns reader frames into events, remembers which labels are heard."""

    def __init__(
        self,
        factory: EventFactory,
        timekeeper: TimeKeeper,
        clock: Clock,
        *,
        silent_after_s: float,
        time_sync_interval_s: float,
        conditions: ConditionsBridge | None = None,
    ) -> None:
        self._factory = factory
        self._conditions = conditions
        self._time = timekeeper
        self._clock = clock
        self._silent_after_s = silent_after_s
        self._sync_interval_s = time_sync_interval_s
        self._labels: dict[int, _Label] = {}
        self.counters = LabelCounters()

    # -- frames -----------------------------------------------------------------------------

    def process(self, frame: ReaderFrame, zone: str | None) -> LabelOutcome:
        """The events of one frame (never raises on what a reader can send)."""
        msg = frame.message
        self.counters.frames += 1
        if msg.label_id in (0, BROADCAST_LABEL_ID):
            return self._nack(NackReason.UNKNOWN_LABEL, f"label id {msg.label_id:#x}")
        events: list[Event] = []
        recovered = self._heard(msg.label_id, msg.seq, frame, zone)
        tag = smartlabel_tag_id(msg.label_id)
        source = EventSource(device=tag, via=frame.port, zone=zone)
        if recovered is not None:
            events.append(recovered)
        if self._conditions is not None:
            # Silence learned from the label's own reporting interval (docs/conditions.md).
            events.extend(self._conditions.heard(tag, source, frame.monotonic, watch=True))
        if isinstance(msg, Environment):
            self._environment(msg, frame, source, events)
        elif isinstance(msg, HistoryBatch):
            self._history(msg, frame, source, events)
        elif isinstance(msg, GpsFix):
            events.append(self._gps(msg, frame, source))
        elif isinstance(msg, Shock):
            events.extend(self._shock(msg, frame, source))
        elif isinstance(msg, Status):
            events.extend(self._status(msg, frame, source))
        elif not isinstance(msg, Heartbeat):
            return self._nack(NackReason.UNSUPPORTED, f"message type {msg.format}")
        self.counters.events += len(events)
        return LabelOutcome([to_outbox(e) for e in events])

    def _nack(self, reason: NackReason, detail: str) -> LabelOutcome:
        self.counters.nacks[reason.name.lower()] += 1
        return LabelOutcome([], reason, detail)

    def _heard(
        self, label_id: int, seq: int, frame: ReaderFrame, zone: str | None
    ) -> DeviceStatus | None:
        """Note the label as heard; a ``recovered`` status when it had been reported silent."""
        label = self._labels.get(label_id)
        if label is None:
            if len(self._labels) >= MAX_LABELS:
                del self._labels[next(iter(self._labels))]
            self._labels[label_id] = _Label(frame.monotonic, frame.port, zone, last_seq=seq)
            return None
        if label.last_seq is not None and 0 < (label.last_seq - seq) % 2**32 < 2**31:
            self.counters.out_of_order += 1  # a resend or a late frame: kept, ids dedupe it
        else:
            label.last_seq = seq
        label.last_heard = max(label.last_heard, frame.monotonic)
        label.reader = frame.port
        label.zone = zone
        if not label.silent:
            return None
        label.silent = False
        tag = smartlabel_tag_id(label_id)
        stamp = self._time.stamp(frame.monotonic)
        return DeviceStatus.model_validate(
            {
                "event_id": DeviceStatus.make_id(
                    self._factory.gateway_id,
                    LabelFrame(tag, seq, None, frame.message.label_time),
                    DeviceState.RECOVERED,
                ),
                "state": DeviceState.RECOVERED,
                "recovered_from": DeviceState.SILENT,
                "detail": "heard again",
                **self._factory.envelope(
                    stamp, EventSource(device=tag, via=frame.port, zone=zone), frame.monotonic
                ),
            }
        )

    def _label_stamp(self, frame: ReaderFrame, label_time: int) -> Stamp:
        msg = frame.message
        mapped = self._time.label_clock(
            frame.port,
            msg.label_id,
            label_time,
            frame_time=msg.label_time,
            received=frame.monotonic,
            broadcast_id=BROADCAST_LABEL_ID,
        )
        if mapped.issue is not None:
            self.counters.time_issues[mapped.issue.value] += 1
        return mapped.stamp

    def _values(
        self,
        frame: ReaderFrame,
        origin: LabelFrame,
        stamp: Stamp,
        source: EventSource,
        temperature_c: float | None,
        humidity_pct: float | None,
        events: list[Event],
    ) -> None:
        """A reading, or a sensor fault for each value a sensor cannot have measured."""
        values: dict[str, float] = {}
        for quantity, value, (low, high) in (
            (Quantity.TEMPERATURE_C, temperature_c, TEMPERATURE_RANGE_C),
            (Quantity.HUMIDITY_PCT, humidity_pct, HUMIDITY_RANGE_PCT),
        ):
            if value is None:
                continue
            if low <= value <= high:
                values[quantity.value] = value
            else:
                events.append(self._fault(frame, origin, stamp, source, quantity, value))
        if values:
            events.append(
                self._factory.telemetry_reading(origin, stamp, source, values, frame.monotonic)
            )
            if self._conditions is not None:
                events.extend(
                    self._conditions.readings(
                        source.device, source, values, stamp.time, frame.monotonic
                    )
                )

    def _fault(
        self,
        frame: ReaderFrame,
        origin: LabelFrame,
        stamp: Stamp,
        source: EventSource,
        quantity: Quantity,
        value: float,
    ) -> DeviceStatus:
        self.counters.sensor_faults += 1
        return DeviceStatus.model_validate(
            {
                # One frame can carry two faulty values: the quantity is part of the identity.
                "event_id": make_event_id(
                    "device.status",
                    self._factory.gateway_id,
                    DeviceState.SENSOR_FAULT,
                    quantity,
                    *origin.identity(),
                ),
                "state": DeviceState.SENSOR_FAULT,
                "quantity": quantity,
                "value": value,
                "detail": f"{quantity.value} = {value} is outside what the sensor can measure",
                **self._factory.envelope(stamp, source, frame.monotonic),
            }
        )

    def _environment(
        self, msg: Environment, frame: ReaderFrame, source: EventSource, events: list[Event]
    ) -> None:
        origin = LabelFrame(source.device, msg.seq, None, msg.label_time)
        stamp = self._label_stamp(frame, msg.label_time)
        self._values(frame, origin, stamp, source, msg.temperature_c, msg.humidity_pct, events)

    def _history(
        self, msg: HistoryBatch, frame: ReaderFrame, source: EventSource, events: list[Event]
    ) -> None:
        for index, reading in enumerate(msg.readings):
            origin = LabelFrame(source.device, msg.seq, index, msg.label_time)
            stamp = self._label_stamp(frame, reading.time)
            self._values(
                frame, origin, stamp, source, reading.temperature_c, reading.humidity_pct, events
            )

    def _gps(self, msg: GpsFix, frame: ReaderFrame, source: EventSource) -> Event:
        stamp = self._label_stamp(frame, msg.fix_time)
        return TelemetryPosition.model_validate(
            {
                "event_id": TelemetryPosition.make_id(
                    self._factory.gateway_id,
                    LabelFrame(source.device, msg.seq, None, msg.label_time),
                ),
                "lat": msg.lat,
                "lon": msg.lon,
                "alt_m": msg.alt_m,
                "speed_mps": msg.speed_mps,
                "heading_deg": None if msg.heading_deg is None else msg.heading_deg % 360.0,
                "satellites": msg.num_sats,
                "hdop": msg.hdop,
                **self._factory.envelope(stamp, source, frame.monotonic),
            }
        )

    def _shock(self, msg: Shock, frame: ReaderFrame, source: EventSource) -> list[Event]:
        stamp = self._label_stamp(frame, msg.label_time)
        peaks = (msg.peak_x_mg, msg.peak_y_mg, msg.peak_z_mg)
        origin = LabelFrame(source.device, msg.seq, None, msg.label_time)
        worst = max(abs(p) for p in peaks)
        if worst > SHOCK_MAX_MG:
            return [self._fault(frame, origin, stamp, source, Quantity.SHOCK_G, worst / 1000)]
        if self._conditions is not None:
            evaluated = self._conditions.shock(
                source.device,
                source,
                stamp.time,
                (msg.peak_x_mg / 1000, msg.peak_y_mg / 1000, msg.peak_z_mg / 1000),
                float(msg.duration_ms),
                frame.monotonic,
            )
            if evaluated:
                return evaluated
        # No profile with a shock limit for this subject: recorded, not an alarm.
        peak_g = math.sqrt(sum((p / 1000) ** 2 for p in peaks))
        shock = ConditionShock.model_validate(
            {
                "event_id": ConditionShock.make_id(self._factory.gateway_id, origin),
                "peak_x_g": msg.peak_x_mg / 1000,
                "peak_y_g": msg.peak_y_mg / 1000,
                "peak_z_g": msg.peak_z_mg / 1000,
                "peak_g": peak_g,
                "duration_ms": msg.duration_ms,
                "threshold_g": msg.threshold_mg / 1000,
                "alarm": False,
                **self._factory.envelope(stamp, source, frame.monotonic),
            }
        )
        return [shock]

    def _status(self, msg: Status, frame: ReaderFrame, source: EventSource) -> list[Event]:
        stamp = self._label_stamp(frame, msg.label_time)
        flags = StatusFlags(msg.flags & sum(StatusFlags))
        names = tuple(f.name.lower() for f in StatusFlags if f in flags and f.name is not None)
        if StatusFlags.SENSOR_FAULT in flags:
            state = DeviceState.SENSOR_FAULT
        elif StatusFlags.LOW_BATTERY in flags:
            state = DeviceState.LOW_BATTERY
        else:
            state = DeviceState.OK
        status = DeviceStatus.model_validate(
            {
                "event_id": DeviceStatus.make_id(
                    self._factory.gateway_id,
                    LabelFrame(source.device, msg.seq, None, msg.label_time),
                    state,
                ),
                "state": state,
                "battery_mv": msg.battery_mv,
                "firmware": msg.firmware_version or None,
                "uptime_s": msg.uptime_s,
                "flags": names,
                **self._factory.envelope(stamp, source, frame.monotonic),
            }
        )
        if self._conditions is None or msg.battery_mv is None:
            return [status]
        # The label's own flag uses its firmware's level; this one the profile's chemistry.
        return [
            status,
            *self._conditions.battery(
                source.device, source, msg.battery_mv, frame.monotonic, watch=True
            ),
        ]

    # -- time sync and silence --------------------------------------------------------------

    def time_sync_due(self, label_id: int, monotonic: float) -> TimeSyncValue | None:
        """The time sync to send ``label_id`` now, if one is due and the gateway has a trusted
        time (an untrusted time is never pushed into the labels' logs)."""
        label = self._labels.get(label_id)
        if label is None or monotonic - label.synced_at < self._sync_interval_s:
            return None
        value = self._time.time_sync(label.reader, label_id, monotonic)
        if value.source is TimeSource.UNSYNCED:
            return None
        label.synced_at = monotonic
        return value

    def tick(self, monotonic: float) -> list[OutboxEvent]:
        """``device.status`` silent for each label not heard for ``silent_after_s`` (without
        a conditions bridge: with one, silence is learned per label there)."""
        out: list[OutboxEvent] = []
        if self._conditions is not None:
            return out
        for label_id, label in self._labels.items():
            if label.silent or monotonic - label.last_heard < self._silent_after_s:
                continue
            label.silent = True
            tag = smartlabel_tag_id(label_id)
            source = EventSource(device=tag, via=label.reader, zone=label.zone)
            stamp = self._time.stamp(monotonic)
            last = self._time.stamp(label.last_heard).time
            event = DeviceStatus.model_validate(
                {
                    "event_id": DeviceStatus.make_id(
                        self._factory.gateway_id,
                        LabelFrame(tag, label.last_seq or 0),
                        DeviceState.SILENT,
                    ),
                    "state": DeviceState.SILENT,
                    "last_seen": last,
                    "silent_for_s": monotonic - label.last_heard,
                    "detail": f"nothing heard for {monotonic - label.last_heard:.0f} s",
                    **self._factory.envelope(stamp, source, monotonic),
                }
            )
            out.append(to_outbox(event))
        return out

    @property
    def labels(self) -> Mapping[int, float]:
        """Label id -> monotonic time last heard."""
        return {k: v.last_heard for k, v in self._labels.items()}
