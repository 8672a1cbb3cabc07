"""Custody events: handoff sessions at a dock door (``handoff.item``, ``handoff.report``) and
vehicle mode on a route (``route.departure``, ``delivery.evidence``, ``delivery.alert``).

Items are named as the manifest named them: an asset id (a GS1 Digital Link URI) or a tag id.
"""

from __future__ import annotations

import enum
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from gateway.events.base import EVENT_MODEL_CONFIG, Event, UtcDatetime, make_event_id

__all__ = [
    "AlertType",
    "BusinessDocument",
    "DeliveryAlert",
    "DeliveryEvidence",
    "HandoffCloseReason",
    "HandoffItem",
    "HandoffItemStatus",
    "HandoffReport",
    "ItemEvidence",
    "Party",
    "RouteDeparture",
    "TimeWindow",
]

#: A GS1 Global Location Number: 13 digits (the check digit is verified where it is accepted).
GLN_PATTERN = r"^[0-9]{13}$"


class ItemEvidence(BaseModel):
    """What the radio said about one item in one zone: the evidence a decision rests on."""

    model_config = EVENT_MODEL_CONFIG

    item: str = Field(min_length=1)
    """The item as the manifest names it (asset id or tag id)."""
    tag: str | None = None
    """The tag heard for it, when the item is named by its asset."""
    zone: str = Field(min_length=1)
    """The zone the sightings were in (e.g. ``dock-3``, ``trailer-3``, ``cargo``)."""
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    sightings: int = Field(ge=0)
    rssi_max_dbm: float | None = None
    """Strongest raw RSSI, dBm; None when there were no sightings."""
    rssi_mean_dbm: float | None = None
    """Mean raw RSSI, dBm; None when there were no sightings."""
    dwell_s: float = Field(default=0.0, ge=0)
    """Time present in the zone, seconds."""


class Party(BaseModel):
    """A party to a handoff: a GS1 GLN, a name, or both (at least one)."""

    model_config = EVENT_MODEL_CONFIG

    gln: str | None = Field(default=None, pattern=GLN_PATTERN)
    """The party's GS1 Global Location Number (13 digits)."""
    name: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _named(self) -> Self:
        if self.gln is None and self.name is None:
            raise ValueError("a party has a gln, a name or both")
        return self


class BusinessDocument(BaseModel):
    """A business document a handoff refers to (EPCIS ``bizTransaction``)."""

    model_config = EVENT_MODEL_CONFIG

    type: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=32)
    """Lower case: ``asn``, ``desadv``, ``bol``, ``po``, ``inv`` (as in the CBV) or the
    platform's own."""
    id: str = Field(min_length=1, max_length=128)


class TimeWindow(BaseModel):
    """A time window, start inclusive, end exclusive."""

    model_config = EVENT_MODEL_CONFIG

    start: UtcDatetime
    end: UtcDatetime


class HandoffItemStatus(enum.StrEnum):
    """What a live ``handoff.item`` says about an item."""

    #: Expected, and the evidence says it crossed to the receiving side.
    CONFIRMED = "confirmed"
    #: Not expected, yet the evidence says it crossed to the receiving side.
    UNEXPECTED = "unexpected"


class HandoffItem(Event):
    """Emitted while a handoff session is open, once per item, when the evidence says the item
    crossed to the receiving side of the door (live progress before the report)."""

    kind: Literal["handoff.item"] = "handoff.item"
    session_id: str = Field(min_length=1, max_length=128)
    door: str = Field(min_length=1)
    """The door (zone) of the session."""
    item: str = Field(min_length=1)
    status: HandoffItemStatus
    evidence: ItemEvidence
    """The sightings in the door's dock zone that confirmed it."""
    confirmed_count: int = Field(ge=0)
    """Expected items confirmed so far in this session, this one included."""
    expected_count: int = Field(ge=0)
    """Items the session expects."""

    @classmethod
    def make_id(cls, gateway_id: str, *, session_id: str, item: str) -> str:
        """One per (session, item): a re-derived confirmation has the same id."""
        return make_event_id("handoff.item", gateway_id, session_id, item)


class HandoffCloseReason(enum.StrEnum):
    """Why a handoff session closed."""

    COMMAND = "command"
    WINDOW_END = "window_end"
    VEHICLE_DEPARTED = "vehicle_departed"


class HandoffReport(Event):
    """Emitted once when a handoff session closes (command, end of its window, or the vehicle
    departing): expected against confirmed, missing and unexpected items, with the evidence."""

    kind: Literal["handoff.report"] = "handoff.report"
    session_id: str = Field(min_length=1, max_length=128)
    door: str = Field(min_length=1)
    from_party: Party
    to_party: Party
    documents: tuple[BusinessDocument, ...] = ()
    window: TimeWindow | None = None
    """The window the session was opened for, when it had one."""
    opened_at: UtcDatetime
    closed_at: UtcDatetime
    close_reason: HandoffCloseReason
    expected: tuple[str, ...]
    """Every item the session expected."""
    confirmed: tuple[str, ...]
    """Expected and confirmed."""
    missing: tuple[str, ...]
    """Expected, not confirmed (possibly heard elsewhere, e.g. still in the trailer)."""
    unexpected: tuple[str, ...]
    """Confirmed without being expected."""
    evidence: tuple[ItemEvidence, ...]
    """Per item and zone, for every item heard during the session."""

    @classmethod
    def make_id(cls, gateway_id: str, *, session_id: str) -> str:
        """One report per session: a session closed twice reports under the same id."""
        return make_event_id("handoff.report", gateway_id, session_id)


class RouteDeparture(Event):
    """Emitted when the vehicle leaves the depot's geofence with a route loaded: the route's
    parcels missing from the load and the parcels on board that are not on the route."""

    kind: Literal["route.departure"] = "route.departure"
    route_id: str = Field(min_length=1, max_length=128)
    trip: int = Field(default=1, ge=1)
    """Which departure from the depot under this route (1 unless the vehicle came back)."""
    depot: str | None = None
    """The depot's stop id, when the route names one."""
    expected_count: int = Field(ge=0)
    """Parcels on the route."""
    on_board_count: int = Field(ge=0)
    """Parcels of the route heard on board at departure."""
    missing: tuple[str, ...]
    """On the route, not on board."""
    misloaded: tuple[str, ...]
    """On board, not on this route."""
    evidence: tuple[ItemEvidence, ...] = ()
    """For each misloaded parcel: its sightings in the cargo zone."""
    on_board: tuple[str, ...] = ()
    """Every parcel heard on board at departure, misloaded ones included (the load as it
    left: the EPCIS profile states it as an aggregation onto the vehicle)."""

    @classmethod
    def make_id(cls, gateway_id: str, *, route_id: str, trip: int = 1) -> str:
        return make_event_id("route.departure", gateway_id, route_id, trip)


class DeliveryEvidence(Event):
    """Emitted when a parcel leaves the vehicle's cargo zone while the vehicle (on a good,
    fresh fix) is inside the geofence of the parcel's stop: proof of delivery at the stop."""

    kind: Literal["delivery.evidence"] = "delivery.evidence"
    route_id: str = Field(min_length=1, max_length=128)
    stop_id: str = Field(min_length=1, max_length=128)
    item: str = Field(min_length=1)
    left_at: UtcDatetime
    """When the parcel left the cargo zone (its exit decision)."""
    distance_to_stop_m: float | None = Field(default=None, ge=0)
    """The vehicle's distance to the stop's coordinates at that moment, metres."""
    evidence: ItemEvidence
    """Its sightings in the cargo zone up to leaving."""

    @classmethod
    def make_id(cls, gateway_id: str, *, route_id: str, stop_id: str, item: str) -> str:
        return make_event_id("delivery.evidence", gateway_id, route_id, stop_id, item)


class AlertType(enum.StrEnum):
    """What went wrong with a parcel on a route."""

    #: It left the vehicle, but not inside its own stop's geofence.
    MISDELIVERY = "misdelivery"
    #: The vehicle left its stop's geofence with the parcel still on board.
    LEFT_ON_BOARD = "left_on_board"
    #: It is on board but not on this route.
    MISLOAD = "misload"


class DeliveryAlert(Event):
    """Emitted when a parcel leaves the vehicle outside its stop's geofence (misdelivery), is
    still on board when the vehicle leaves its stop (left on board), or is found on board
    without being on the route (misload)."""

    kind: Literal["delivery.alert"] = "delivery.alert"
    alert: AlertType
    route_id: str = Field(min_length=1, max_length=128)
    item: str = Field(min_length=1)
    intended_stop_id: str | None = None
    """The stop the parcel is for (None for a misload: it is on no stop of this route)."""
    actual_stop_id: str | None = None
    """For a misdelivery, the stop whose geofence the vehicle was in when the parcel left
    (None when it was in none); for left on board, the stop being left."""
    distance_to_intended_m: float | None = Field(default=None, ge=0)
    """The vehicle's distance to the intended stop at that moment, metres."""
    evidence: ItemEvidence | None = None

    @classmethod
    def make_id(
        cls, gateway_id: str, *, alert: AlertType, route_id: str, item: str, stop_id: str | None
    ) -> str:
        """One alert per (type, route, parcel, stop where it happened)."""
        return make_event_id("delivery.alert", gateway_id, alert, route_id, item, stop_id)
