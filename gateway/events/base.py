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
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from gateway.outbox import EventClass, OutboxEvent

__all__ = [
    "EVENT_ID_HEX_DIGITS",
    "EVENT_MODEL_CONFIG",
    "KIND_CLASSES",
    "ClockRef",
    "Event",
    "EventSource",
    "Position",
    "TimeSource",
    "UtcDatetime",
    "event_class",
    "make_event_id",
    "require_kind",
    "to_outbox",
]

#: 128 bits of SHA-256: collision-free for any fleet's lifetime, short on a cellular link.
EVENT_ID_HEX_DIGITS: Final = 32


def _require_utc(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ValueError("event times are UTC with an explicit offset")
    return value


#: What the JSON Schema says of a UTC time: RFC 3339 with ``Z`` or a zero offset.
_UTC_DATETIME_JSON_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "format": "date-time",
    "pattern": "(Z|z|[+-]00:?00)$",
}

#: A timezone-aware UTC datetime (naive or other offsets are refused).
UtcDatetime = Annotated[
    datetime, AfterValidator(_require_utc), WithJsonSchema(_UTC_DATETIME_JSON_SCHEMA)
]


def require_kind(schema: dict[str, Any]) -> None:
    """Mark ``kind`` required in a model's JSON Schema: it has a default in Python (so that
    ``model_construct`` fills it in), but it is always on the wire and it selects the model."""
    required = schema.setdefault("required", [])
    if "kind" in schema.get("properties", {}) and "kind" not in required:
        required.insert(0, "kind")


#: The configuration of every event model and of the small models inside events: immutable,
#: unknown fields refused, attribute docstrings become descriptions in the JSON Schema.
EVENT_MODEL_CONFIG: Final = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


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

    model_config = EVENT_MODEL_CONFIG

    lat: float = Field(ge=-90, le=90)
    """Latitude, degrees north."""
    lon: float = Field(ge=-180, le=180)
    """Longitude, degrees east."""
    alt_m: float | None = None
    """Altitude above mean sea level, metres, when the fix has one."""
    accuracy_m: float | None = Field(default=None, ge=0)
    """Horizontal accuracy estimate, metres (from HDOP or the receiver's hAcc) when known."""


class ClockRef(BaseModel):
    """The monotonic reading an unsynced event was stamped at, so that its time can be corrected
    once a trusted source appears (by the gateway before sending, or by the platform)."""

    model_config = EVENT_MODEL_CONFIG

    boot_id: str
    """The kernel's boot id: monotonic readings compare only within one boot."""
    monotonic_s: float
    """The gateway's monotonic clock when the event was stamped, seconds."""


class EventSource(BaseModel):
    """The device an event is about and the way it reached the gateway."""

    model_config = EVENT_MODEL_CONFIG

    device: str = Field(min_length=1)
    """The tag id (``ibeacon:...``, ``smartlabel:...``), the gateway id, or a driver name."""
    via: str | None = None
    """The adapter (``hci0``), the SmartLabel reader's port, or ``gps``."""
    zone: str | None = None
    """The presence zone it was heard in, when that matters."""


class Event(BaseModel):
    """The fields every event has. Each kind subclasses it with a literal ``kind``."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra=require_kind,
    )

    event_id: str = Field(min_length=1, max_length=128)
    """Deterministic: a hash of the identifying content of the fact (docs/events.md)."""
    kind: str
    """The event kind; selects the model and the topic."""
    gateway_id: str
    """The gateway that derived the event."""
    time: UtcDatetime
    """When the fact happened, UTC."""
    time_source: TimeSource
    """Where ``time`` came from (after a correction: the source that corrected it)."""
    clock_ref: ClockRef | None = None
    """Set while ``time_source`` is ``unsynced``; dropped when the time is corrected."""
    time_corrected: bool = False
    """True when ``time`` was corrected after the event was stamped unsynced; ``time_source``
    then names the source that corrected it."""
    position: Position | None = None
    """The gateway's position when the fact happened, when known."""
    source: EventSource
    """The device the event is about and how it reached the gateway."""
    asset: str | None = None
    """The asset the tag is bound to (a GS1 Digital Link URI), when it is bound."""

    def to_json_bytes(self) -> bytes:
        """The stable wire form: compact JSON, fields in declaration order, no ``None`` dropped
        (except where a model says otherwise: absent telemetry quantities)."""
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
    "tag.binding": EventClass.STATUS,
    "gateway.status": EventClass.STATUS,
    "outbox.loss": EventClass.STATUS,
}


def event_class(kind: str) -> EventClass:
    """The outbox class of ``kind``; an unknown kind is a programming error (KeyError)."""
    return KIND_CLASSES[kind]


def _canonical(value: Any) -> Any:
    if type(value) is str or type(value) is int:  # the common case first: ids, sequences
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError("a time in an event identity must be timezone-aware")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_canonical(v) for v in value)
    return value


#: Compact, non-ASCII kept: the bytes the id hashes (one encoder, built once: it is per event).
_ID_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def make_event_id(kind: str, gateway_id: str, *identity: object) -> str:
    """A deterministic id: SHA-256 over the kind, the gateway and the identifying content.

    ``identity`` is what makes the fact this fact (a label id and sequence number; a tag, a
    zone and the start of a visit; a session id), never the wall-clock time it was derived at.
    The hashed text is the compact JSON array ``[kind, gateway_id, *identity]`` with times as
    ISO 8601 in UTC, enums as their values and models as their JSON form (docs/events.md).
    """
    canonical = _ID_ENCODER.encode([kind, gateway_id, *[_canonical(v) for v in identity]])
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
