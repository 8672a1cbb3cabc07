"""Custody at the edge: handoff sessions at a dock door and vehicle mode on a delivery route.

Pure domain logic (no I/O, no clock): :class:`CustodyEngine` is fed sightings, GPS fixes and
ticks in monotonic seconds and returns frozen results that the pipeline turns into
``handoff.item``, ``handoff.report``, ``route.departure``, ``delivery.evidence`` and
``delivery.alert`` events. See docs/custody.md for the rules and their tunables.
"""

from gateway.custody.commands import (
    DocumentRef,
    HandoffCloseCommand,
    HandoffOpenCommand,
    RouteLoadCommand,
    RouteStop,
    register_custody_commands,
)
from gateway.custody.engine import SNAPSHOT_VERSION, CustodyEngine
from gateway.custody.errors import CustodyError
from gateway.custody.handoff import SessionSpec
from gateway.custody.results import (
    Claim,
    CustodyResult,
    DeliveryAlert,
    DeliveryEvidence,
    Fix,
    HandoffReport,
    ItemConfirmed,
    ItemEvidence,
    RouteDeparture,
)
from gateway.custody.route import RouteSpec, StopSpec, effective_radii
from gateway.custody.triggers import TriggerSpec

__all__ = [
    "SNAPSHOT_VERSION",
    "Claim",
    "CustodyEngine",
    "CustodyError",
    "CustodyResult",
    "DeliveryAlert",
    "DeliveryEvidence",
    "DocumentRef",
    "Fix",
    "HandoffCloseCommand",
    "HandoffOpenCommand",
    "HandoffReport",
    "ItemConfirmed",
    "ItemEvidence",
    "RouteDeparture",
    "RouteLoadCommand",
    "RouteSpec",
    "RouteStop",
    "SessionSpec",
    "StopSpec",
    "TriggerSpec",
    "effective_radii",
    "register_custody_commands",
]
