"""What every event carries, how its id is derived, and which outbox class it goes to.

An event is a frozen pydantic model with a stable JSON form. Its ``event_id`` is a hash of the
content that identifies the fact (never of the time it was derived), so the same fact derived
again after a restart, or re-sent by a label, has the same id and consumers can de-duplicate.
The outbox class is a property of the kind (:data:`KIND_CLASSES`), never the caller's choice.
"""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.outbox import EventClass, OutboxEvent

__all__ = [
    "EVENT_ID_HEX_DIGITS",
    "KIND_CLASSES",
    "ClockRef",
    "Event",
    "EventSource",
    "Position",
    "TimeSource",
    "UtcDatetime",
    "event_class",
    "make_event_id",
    "to_outbox",
]

#: 128 bits of SHA-256: collision-free for any fleet's lifetime, short on a cellular link.
EVENT_ID_HEX_DIGITS: Final = 32


def _require_utc(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ValueError("event times are UTC with an explicit offset")
    return value


#: A timezone-aware UTC datetime (naive or other offsets are refused).
UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


class TimeSource(enum.StrEnum):
    """Where an event's time came from, best first."""

    #: The vehicle's GPS receiver (a valid fix with a time, within its holdover).
    GPS = "gps"
    #: The system clock while NTP (systemd-timesyncd, chrony) says it is synchronised.
    NTP = "ntp"
    #: The system clock set from a battery-backed RTC: right unless the RTC was never set.
    RTC = "rtc"
    #: No trusted source yet: the time may be far off (see ``clock_ref``).
    UNSYNCED = "unsynced"


class Position(BaseModel):
    """A WGS84 position (the gateway's, or a label's own fix)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    alt_m: float | None = None
    #: Horizontal accuracy estimate, metres (from HDOP or the receiver's hAcc) when known.
    accuracy_m: float | None = Field(default=None, ge=0)


class ClockRef(BaseModel):
    """The monotonic reading an unsynced event was stamped at, so that its time can be corrected
    once a trusted source appears (by the gateway before sending, or by the platform)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The kernel's boot id: monotonic readings compare only within one boot.
    boot_id: str
    monotonic_s: float


class EventSource(BaseModel):
    """The device an event is about and the way it reached the gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The tag id (``ibeacon:...``, ``smartlabel:...``), the gateway id, or a driver name.
    device: str = Field(min_length=1)
    #: The adapter (``hci0``), the SmartLabel reader's port, or ``gps``.
    via: str | None = None
    #: The presence zone it was heard in, when that matters.
    zone: str | None = None


class Event(BaseModel):
    """The fields every event has. Each kind subclasses it with a literal ``kind``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=128)
    kind: str
    gateway_id: str
    time: UtcDatetime
    time_source: TimeSource
    #: Set while ``time_source`` is ``unsynced``; dropped when the time is corrected.
    clock_ref: ClockRef | None = None
    #: True when ``time`` was corrected after the event was stamped unsynced; ``time_source``
    #: then names the source that corrected it.
    time_corrected: bool = False
    position: Position | None = None
    source: EventSource
    #: The asset the tag is bound to (a GS1 Digital Link URI), when it is bound.
    asset: str | None = None

    def to_json_bytes(self) -> bytes:
        """The stable wire form: compact JSON, fields in declaration order, no ``None`` dropped."""
        return self.model_dump_json().encode()


#: The outbox class of every kind: alarms first, then custody, presence, status, telemetry.
KIND_CLASSES: Final[dict[str, EventClass]] = {
    "presence.enter": EventClass.PRESENCE,
    "presence.exit": EventClass.PRESENCE,
    "handoff.item": EventClass.HANDOFF,
    "handoff.report": EventClass.HANDOFF,
    "route.departure": EventClass.HANDOFF,
    "delivery.evidence": EventClass.HANDOFF,
    "delivery.alert": EventClass.ALARM,
    "condition.excursion": EventClass.ALARM,
    "condition.warning": EventClass.ALARM,
    "condition.shock": EventClass.ALARM,
    "telemetry.reading": EventClass.TELEMETRY,
    "telemetry.position": EventClass.TELEMETRY,
    "device.status": EventClass.STATUS,
    "gateway.status": EventClass.STATUS,
    "outbox.loss": EventClass.STATUS,
}


def event_class(kind: str) -> EventClass:
    """The outbox class of ``kind``; an unknown kind is a programming error (KeyError)."""
    return KIND_CLASSES[kind]


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_canonical(v) for v in value)
    return value


def make_event_id(kind: str, gateway_id: str, *identity: object) -> str:
    """A deterministic id: SHA-256 over the kind, the gateway and the identifying content.

    ``identity`` is what makes the fact this fact (a label id and sequence number; a tag, a
    zone and the start of a visit; a session id), never the wall-clock time it was derived at.
    """
    canonical = json.dumps(
        [kind, gateway_id, *(_canonical(v) for v in identity)],
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:EVENT_ID_HEX_DIGITS]


def to_outbox(event: Event, *, dedup_key: str | None = None) -> OutboxEvent:
    """The outbox row for ``event``: class from its kind, order kept per source device."""
    return OutboxEvent(
        event_id=event.event_id,
        event_class=event_class(event.kind),
        kind=event.kind,
        payload=event.to_json_bytes(),
        dedup_key=dedup_key,
        source=event.source.device,
    )
