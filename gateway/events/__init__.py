"""The business events tagrelay publishes: one frozen model per kind, deterministic ids, and
the outbox class of each kind. See docs/events.md and the JSON Schemas in docs/schemas/.

The domain packages build events (``model_construct`` is fine for values they computed, the
models validate what comes from outside), hand them to the outbox with :func:`to_outbox`, and
consumers read them back with :func:`parse_event` / :func:`parse_message`.
"""

from gateway.events.base import (
    EVENT_ID_HEX_DIGITS,
    EVENT_MODEL_CONFIG,
    KIND_CLASSES,
    ClockRef,
    Event,
    EventSource,
    Position,
    TimeSource,
    UtcDatetime,
    event_class,
    make_event_id,
    require_kind,
    to_outbox,
)
from gateway.events.binding import BindingAction, TagBindingChange
from gateway.events.common import LabelFrame, Observation, Origin, Quantity
from gateway.events.conditions import (
    Bound,
    ConditionExcursion,
    ConditionShock,
    ConditionWarning,
    ExcursionPhase,
    Limit,
    Rule,
    RuleType,
    WarningPhase,
    excursion_key,
)
from gateway.events.custody import (
    AlertType,
    BusinessDocument,
    DeliveryAlert,
    DeliveryEvidence,
    HandoffCloseReason,
    HandoffItem,
    HandoffItemStatus,
    HandoffReport,
    ItemEvidence,
    Party,
    RouteDeparture,
    TimeWindow,
)
from gateway.events.device import DeviceState, DeviceStatus
from gateway.events.errors import EventError, EventErrorReason
from gateway.events.presence import ExitReason, PresenceEnter, PresenceEvent, PresenceExit
from gateway.events.registry import (
    EVENT_TYPES,
    MESSAGE_TYPES,
    AnyEvent,
    AnyMessage,
    parse_event,
    parse_message,
)
from gateway.events.system import GatewayStatus, LossEntry, OutboxLoss
from gateway.events.telemetry import Quantities, TelemetryPosition, TelemetryReading

__all__ = [
    "EVENT_ID_HEX_DIGITS",
    "EVENT_MODEL_CONFIG",
    "EVENT_TYPES",
    "KIND_CLASSES",
    "MESSAGE_TYPES",
    "AlertType",
    "AnyEvent",
    "AnyMessage",
    "BindingAction",
    "Bound",
    "BusinessDocument",
    "ClockRef",
    "ConditionExcursion",
    "ConditionShock",
    "ConditionWarning",
    "DeliveryAlert",
    "DeliveryEvidence",
    "DeviceState",
    "DeviceStatus",
    "Event",
    "EventError",
    "EventErrorReason",
    "EventSource",
    "ExcursionPhase",
    "ExitReason",
    "GatewayStatus",
    "HandoffCloseReason",
    "HandoffItem",
    "HandoffItemStatus",
    "HandoffReport",
    "ItemEvidence",
    "LabelFrame",
    "Limit",
    "LossEntry",
    "Observation",
    "Origin",
    "OutboxLoss",
    "Party",
    "Position",
    "PresenceEnter",
    "PresenceEvent",
    "PresenceExit",
    "Quantities",
    "Quantity",
    "RouteDeparture",
    "Rule",
    "RuleType",
    "TagBindingChange",
    "TelemetryPosition",
    "TelemetryReading",
    "TimeSource",
    "TimeWindow",
    "UtcDatetime",
    "WarningPhase",
    "event_class",
    "excursion_key",
    "make_event_id",
    "parse_event",
    "parse_message",
    "require_kind",
    "to_outbox",
]
