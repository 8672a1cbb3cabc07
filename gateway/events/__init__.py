"""The business events tagrelay publishes: one frozen model per kind, deterministic ids, and
the outbox class of each kind. See docs/events.md and the JSON Schemas in docs/schemas/."""

from gateway.events.base import (
    EVENT_ID_HEX_DIGITS,
    KIND_CLASSES,
    ClockRef,
    Event,
    EventSource,
    Position,
    TimeSource,
    UtcDatetime,
    event_class,
    make_event_id,
    to_outbox,
)

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
