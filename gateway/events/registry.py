"""Every kind's model in one place, and the parsers a consumer (or a test) reads events with.

``parse_event`` reads one event of the pipeline's kinds (the envelope ones); ``parse_message``
reads anything the gateway publishes on its event and status topics, ``outbox.loss`` and
``gateway.status`` included. Both parse JSON strictly (no number for a time, no ``1.0`` for a
count) and raise :class:`EventError` with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Final

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from gateway.events.base import Event
from gateway.events.binding import TagBindingChange
from gateway.events.conditions import ConditionExcursion, ConditionShock, ConditionWarning
from gateway.events.custody import (
    DeliveryAlert,
    DeliveryEvidence,
    HandoffItem,
    HandoffReport,
    RouteDeparture,
)
from gateway.events.device import DeviceStatus
from gateway.events.errors import EventError, EventErrorReason
from gateway.events.presence import PresenceEnter, PresenceExit
from gateway.events.system import GatewayStatus, OutboxLoss
from gateway.events.telemetry import TelemetryPosition, TelemetryReading

__all__ = [
    "EVENT_TYPES",
    "MESSAGE_TYPES",
    "AnyEvent",
    "AnyMessage",
    "parse_event",
    "parse_message",
]

#: One event of any kind the pipeline builds (they all carry the envelope).
AnyEvent = Annotated[
    PresenceEnter
    | PresenceExit
    | HandoffItem
    | HandoffReport
    | RouteDeparture
    | DeliveryEvidence
    | DeliveryAlert
    | ConditionExcursion
    | ConditionWarning
    | ConditionShock
    | TelemetryReading
    | TelemetryPosition
    | DeviceStatus
    | TagBindingChange,
    Field(discriminator="kind"),
]

#: Anything the gateway publishes as one JSON object: an event, a loss report, its status.
AnyMessage = Annotated[
    PresenceEnter
    | PresenceExit
    | HandoffItem
    | HandoffReport
    | RouteDeparture
    | DeliveryEvidence
    | DeliveryAlert
    | ConditionExcursion
    | ConditionWarning
    | ConditionShock
    | TelemetryReading
    | TelemetryPosition
    | DeviceStatus
    | TagBindingChange
    | OutboxLoss
    | GatewayStatus,
    Field(discriminator="kind"),
]


def _kind(model: type[BaseModel]) -> str:
    default = model.model_fields["kind"].default
    assert isinstance(default, str), model
    return default


_EVENT_MODELS: Final[tuple[type[Event], ...]] = (
    PresenceEnter,
    PresenceExit,
    HandoffItem,
    HandoffReport,
    RouteDeparture,
    DeliveryEvidence,
    DeliveryAlert,
    ConditionExcursion,
    ConditionWarning,
    ConditionShock,
    TelemetryReading,
    TelemetryPosition,
    DeviceStatus,
    TagBindingChange,
)

#: The model of every envelope kind, by kind.
EVENT_TYPES: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {_kind(m): m for m in _EVENT_MODELS}
)

#: The model of every kind the gateway publishes (``EVENT_TYPES`` plus ``outbox.loss`` and
#: ``gateway.status``), by kind: the kinds that have an outbox class and a JSON Schema.
MESSAGE_TYPES: Final[Mapping[str, type[BaseModel]]] = MappingProxyType(
    {**EVENT_TYPES, _kind(OutboxLoss): OutboxLoss, _kind(GatewayStatus): GatewayStatus}
)

_EVENT_ADAPTER: Final[TypeAdapter[AnyEvent]] = TypeAdapter(AnyEvent)
_MESSAGE_ADAPTER: Final[TypeAdapter[AnyMessage]] = TypeAdapter(AnyMessage)

#: How much of pydantic's message an error keeps: enough to find the field, bounded for logs.
_DETAIL_MAX_CHARS: Final = 300


def _translate(error: ValidationError) -> EventError:
    first = error.errors(include_url=False, include_input=False)[0]
    kind_type = first["type"]
    if kind_type == "json_invalid":
        return EventError(EventErrorReason.MALFORMED_JSON, first["msg"])
    if kind_type in ("dict_type", "model_type", "model_attributes_type") and not first["loc"]:
        return EventError(EventErrorReason.NOT_AN_OBJECT, first["msg"])
    if kind_type == "union_tag_not_found":
        return EventError(EventErrorReason.UNKNOWN_KIND, "no kind")
    if kind_type == "union_tag_invalid":
        tag = str((first.get("ctx") or {}).get("tag", ""))
        return EventError(EventErrorReason.UNKNOWN_KIND, f"unknown kind {tag!r}", kind=tag)
    kind = str(first["loc"][0]) if first["loc"] else None
    fields = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or '<root>'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)
    )
    return EventError(EventErrorReason.INVALID, fields[:_DETAIL_MAX_CHARS], kind=kind)


def parse_event(data: bytes | str) -> Event:
    """The event in ``data`` (one JSON object of an envelope kind), as its kind's model.

    Raises :class:`EventError` for anything else, ``outbox.loss`` and ``gateway.status`` included
    (read those with :func:`parse_message`).
    """
    try:
        event: Event = _EVENT_ADAPTER.validate_json(data, strict=True)
    except ValidationError as e:
        raise _translate(e) from e
    return event


def parse_message(data: bytes | str) -> BaseModel:
    """Anything the gateway publishes as one JSON object: an :class:`Event`, an
    :class:`OutboxLoss` or a :class:`GatewayStatus`. Raises :class:`EventError`."""
    try:
        message: BaseModel = _MESSAGE_ADAPTER.validate_json(data, strict=True)
    except ValidationError as e:
        raise _translate(e) from e
    return message
