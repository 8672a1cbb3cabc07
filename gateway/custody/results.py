"""What the custody engine concludes: frozen values the pipeline turns into events.

Each result names the event kind it becomes and its ``identity``: the content that makes the fact
this fact (a session id and an item; a route, a stop and a parcel), never the time it was
derived, so that an event id hashed from it is the same after a restart. Times are the
pipeline's monotonic seconds; the pipeline maps them to UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = [
    "Claim",
    "CustodyResult",
    "DeliveryAlert",
    "DeliveryEvidence",
    "Fix",
    "HandoffReport",
    "ItemConfirmed",
    "ItemEvidence",
    "RouteDeparture",
]


@dataclass(frozen=True, slots=True)
class Fix:
    """An accepted GPS fix (good, fresh, plausible) at monotonic time ``at_s``."""

    lat: float
    lon: float
    at_s: float


@dataclass(frozen=True, slots=True)
class ItemEvidence:
    """What this gateway heard of one item in one zone."""

    item: str
    tag: str
    zone: str
    first_seen_s: float
    last_seen_s: float
    sightings: int
    max_rssi_dbm: int
    mean_rssi_dbm: float
    #: When the carry through the door (the portal read that counted) was heard, if it was.
    crossed_at_s: float | None = None
    #: Mean level after the carry, when measured.
    dwell_rssi_dbm: float | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """One door's evidence that an item crossed into its dock, shared with neighbouring doors
    (over a site topic) so that a door claims an unexpected item only when its evidence beats
    theirs. ``level_dbm`` is the item's current level (a moving average over about the last
    minute of adverts), ``peak_dbm`` the loudest advert of its carry, ``sightings`` how many
    adverts the door heard of it, ``expected`` whether its session expects it."""

    door: str
    item: str
    level_dbm: float
    peak_dbm: int
    sightings: int
    expected: bool = False


ConfirmBasis = Literal["level", "stayed"]


@dataclass(frozen=True, slots=True)
class ItemConfirmed:
    """An expected item of an open session crossed to the receiving side (``handoff.item``).

    ``basis``: ``level`` when its level after the carry beat its level in the trailer (decided
    live); ``stayed`` when the level could not tell and it was still heard after the vehicle had
    pulled away (decided as the session reports)."""

    session_id: str
    door: str
    item: str
    basis: ConfirmBasis
    at_s: float
    evidence: ItemEvidence
    expected_count: int = 0
    """How many items the session expects."""

    kind: ClassVar[str] = "handoff.item"

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.session_id, self.item)


@dataclass(frozen=True, slots=True)
class HandoffReport:
    """A session's outcome (``handoff.report``): expected = confirmed + missing; unexpected
    items were seen crossing but not expected."""

    session_id: str
    door: str
    from_party: str
    to_party: str
    documents: tuple[tuple[str, str], ...]
    """(type, number) pairs: ASN / DESADV / BOL ..."""
    window_start_s: float
    window_end_s: float
    opened_at_s: float
    closed_at_s: float
    reported_at_s: float
    close_reason: Literal["command", "window_end", "vehicle_departed"]
    expected: tuple[str, ...]
    confirmed: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    evidence: tuple[ItemEvidence, ...]
    """For every confirmed, missing-but-heard and unexpected item, in item order."""
    position: Fix | None
    """The gateway's last good fix, if it has a GPS (a door gateway's is configured)."""

    kind: ClassVar[str] = "handoff.report"

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.session_id,)


@dataclass(frozen=True, slots=True)
class RouteDeparture:
    """The vehicle left the depot (``route.departure``)."""

    route_id: str
    at_s: float
    position: Fix
    on_board: tuple[str, ...]
    missing: tuple[str, ...]
    """On the route, not on board."""
    misloaded: tuple[str, ...]
    """On board, on no stop of this route."""

    kind: ClassVar[str] = "route.departure"

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.route_id,)


@dataclass(frozen=True, slots=True)
class DeliveryEvidence:
    """A parcel left the cargo zone inside its stop's geofence (``delivery.evidence``)."""

    route_id: str
    stop_id: str
    parcel: str
    at_s: float
    """When it was last heard in the cargo zone."""
    position: Fix
    distance_m: float
    """From the stop's point."""
    evidence: ItemEvidence

    kind: ClassVar[str] = "delivery.evidence"

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.route_id, self.stop_id, self.parcel)


AlertKind = Literal["misdelivery", "left_on_board", "misload"]


@dataclass(frozen=True, slots=True)
class DeliveryAlert:
    """An alarm (``delivery.alert``).

    - ``misdelivery``: the parcel left the cargo zone outside its stop's geofence; ``stop_id`` is
      the stop whose geofence it left in (None: none), ``expected_stop`` the one it was for
      (None: it was on no stop of this route).
    - ``left_on_board``: the vehicle left ``stop_id``'s geofence with the parcel still aboard.
    - ``misload``: on board at departure, on no stop of this route.
    """

    alert: AlertKind
    route_id: str
    parcel: str
    stop_id: str | None
    expected_stop: str | None
    at_s: float
    position: Fix | None
    evidence: ItemEvidence | None

    kind: ClassVar[str] = "delivery.alert"

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.route_id, self.alert, self.parcel)


CustodyResult = ItemConfirmed | HandoffReport | RouteDeparture | DeliveryEvidence | DeliveryAlert
