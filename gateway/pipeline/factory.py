"""Domain results to events: the one place that stamps, identifies and serialises them.

The domain logic (presence, labels, GPS) reports what happened in monotonic time; the
:class:`EventFactory` gives each result its wall-clock time and time source from the
:class:`~gateway.timekeeping.TimeKeeper`, its deterministic id, the asset its tag is bound to,
the gateway's position when known, and turns it into an outbox row of the class its kind
belongs to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final

from drivers.gps import GpsFixEvent
from gateway.events import (
    ClockRef,
    Event,
    EventSource,
    Observation,
    Origin,
    Position,
    PresenceEnter,
    PresenceExit,
    Quantities,
    TelemetryPosition,
    TelemetryReading,
    to_outbox,
)
from gateway.events.presence import ExitReason
from gateway.outbox import OutboxEvent
from gateway.pipeline.adverts import Reading
from gateway.pipeline.telemetry import TelemetryLimiter
from gateway.presence import PresenceChange
from gateway.registry import TagRegistry
from gateway.timekeeping import Stamp, TimeKeeper

__all__ = ["GPS_POSITION_MAX_AGE_S", "EventFactory"]

#: The gateway's GPS position is put on events for this long after the fix: a van at 50 km/h
#: moves 140 m in 10 s, more than a stop's geofence is wide, so older positions are left out.
GPS_POSITION_MAX_AGE_S: Final = 10.0
#: Open visits remembered for their exit (enter id and first-seen time): the presence tracker's
#: own cap bounds the visits it can close; this only guards against a leak.
MAX_OPEN_VISITS: Final = 100_000
#: The gateway's own GPS position is a telemetry source under this device name.
GATEWAY_GPS_DEVICE: Final = "gps"


class EventFactory:
    """Builds the events of one gateway."""

    def __init__(self, gateway_id: str, registry: TagRegistry, timekeeper: TimeKeeper) -> None:
        self.gateway_id = gateway_id
        self._registry = registry
        self._time = timekeeper
        #: (tag, zone, first_seen monotonic) -> (enter event id, first-seen time)
        self._visits: dict[tuple[str, str, float], tuple[str, datetime]] = {}
        self._position: Position | None = None
        self._position_at = -math.inf

    # -- the envelope -------------------------------------------------------------------------

    def stamp(self, monotonic: float) -> Stamp:
        return self._time.stamp(monotonic)

    def asset_of(self, tag: str) -> str | None:
        return self._registry.asset_of(tag)

    def position(self, monotonic: float) -> Position | None:
        """The gateway's GPS position if it is fresh at ``monotonic``."""
        if monotonic - self._position_at > GPS_POSITION_MAX_AGE_S:
            return None
        return self._position

    def observation(self, device: str, monotonic: float) -> Origin:
        return Observation(device, ClockRef(boot_id=self._time.boot_id, monotonic_s=monotonic))

    def envelope(self, stamp: Stamp, source: EventSource, monotonic: float) -> dict[str, object]:
        """The common fields of an event stamped ``stamp`` about ``source``."""
        return {
            "gateway_id": self.gateway_id,
            "time": stamp.time,
            "time_source": stamp.source,
            "clock_ref": stamp.clock_ref,
            "position": self.position(monotonic),
            "source": source,
            "asset": self._registry.asset_of(source.device),
        }

    # -- BLE: presence and readings -------------------------------------------------------------

    def from_adverts(
        self, changes: Iterable[PresenceChange], readings: Iterable[Reading]
    ) -> list[OutboxEvent]:
        out: list[OutboxEvent] = []
        for change in changes:
            out.append(to_outbox(self.presence(change)))
        for reading in readings:
            out.append(to_outbox(self.reading(reading)))
        return out

    def presence(self, change: PresenceChange) -> Event:
        source = EventSource(device=change.tag, via=change.scanner, zone=change.zone)
        stamp = self._time.stamp(change.decided_at)
        key = (change.tag, change.zone, change.first_seen)
        evidence = {
            "zone": change.zone,
            "tag": change.tag,
            "last_seen": self._time.stamp(change.last_seen).time,
            "sightings": change.sightings,
            "rssi_max_dbm": change.rssi_max_dbm,
            "rssi_mean_dbm": change.rssi_mean_dbm,
            "dwell_s": change.dwell_s,
        }
        if change.kind == "enter":
            first_seen = self._time.stamp(change.first_seen).time
            event_id = PresenceEnter.make_id(
                self.gateway_id, tag=change.tag, zone=change.zone, first_seen=first_seen
            )
            if len(self._visits) >= MAX_OPEN_VISITS:
                del self._visits[next(iter(self._visits))]
            self._visits[key] = (event_id, first_seen)
            return PresenceEnter.model_validate(
                {
                    "event_id": event_id,
                    "first_seen": first_seen,
                    **evidence,
                    **self.envelope(stamp, source, change.decided_at),
                }
            )
        visit = self._visits.pop(key, None)
        if visit is None:  # the enter was forgotten (cannot happen within the caps)
            first_seen = self._time.stamp(change.first_seen).time
            enter_id = PresenceEnter.make_id(
                self.gateway_id, tag=change.tag, zone=change.zone, first_seen=first_seen
            )
        else:
            enter_id, first_seen = visit
        reason = ExitReason.TIMEOUT if change.reason == "timeout" else ExitReason.RSSI_BELOW_EXIT
        return PresenceExit.model_validate(
            {
                "event_id": PresenceExit.make_id(
                    self.gateway_id, tag=change.tag, zone=change.zone, first_seen=first_seen
                ),
                "first_seen": first_seen,
                "reason": reason,
                "enter_event_id": enter_id,
                **evidence,
                **self.envelope(stamp, source, change.decided_at),
            }
        )

    def reading(self, reading: Reading) -> TelemetryReading:
        source = EventSource(device=reading.tag, via=reading.via, zone=reading.zone)
        return self.telemetry_reading(
            self.observation(reading.tag, reading.monotonic),
            self._time.stamp(reading.monotonic),
            source,
            reading.values,
            reading.monotonic,
        )

    def telemetry_reading(
        self,
        origin: Origin,
        stamp: Stamp,
        source: EventSource,
        values: Mapping[str, float],
        monotonic: float,
    ) -> TelemetryReading:
        return TelemetryReading.model_validate(
            {
                "event_id": TelemetryReading.make_id(self.gateway_id, origin),
                "values": Quantities.model_validate(values),
                **self.envelope(stamp, source, monotonic),
            }
        )

    # -- GPS ------------------------------------------------------------------------------------

    def from_gps(self, fix: GpsFixEvent, telemetry: TelemetryLimiter) -> list[OutboxEvent]:
        """Remember the gateway's position; a rate-limited telemetry.position for it."""
        if not fix.valid:
            return []
        f = fix.fix
        if f.lat is None or f.lon is None:  # excluded by ``valid``; keeps the types exact
            return []
        accuracy = None if f.hdop is None else f.hdop * UERE_M
        self._position = Position(lat=f.lat, lon=f.lon, alt_m=f.alt_m, accuracy_m=accuracy)
        self._position_at = fix.monotonic
        if not telemetry.offer_position(GATEWAY_GPS_DEVICE, f.lat, f.lon, fix.monotonic):
            return []
        source = EventSource(device=self.gateway_id, via=GATEWAY_GPS_DEVICE)
        stamp = self._time.stamp(fix.monotonic)
        event = TelemetryPosition.model_validate(
            {
                "event_id": TelemetryPosition.make_id(
                    self.gateway_id, self.observation(self.gateway_id, fix.monotonic)
                ),
                "lat": f.lat,
                "lon": f.lon,
                "alt_m": f.alt_m,
                "speed_mps": f.speed_mps,
                "heading_deg": None if f.heading_deg is None else f.heading_deg % 360.0,
                "satellites": f.num_sats,
                "hdop": f.hdop,
                "fix": f.fix,
                "fix_time": f.time,
                **self.envelope(stamp, source, fix.monotonic),
            }
        )
        return [to_outbox(event)]


#: User equivalent range error of a consumer GPS receiver, metres: horizontal accuracy is
#: about HDOP times this (the usual rule of thumb for uncorrected single-frequency fixes).
UERE_M: Final = 5.0
