"""``presence.enter`` / ``presence.exit``: a tag became present in, or left, a zone of this
gateway, with the RSSI evidence the decision rests on."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import Field

from gateway.events.base import Event, UtcDatetime, make_event_id

__all__ = ["ExitReason", "PresenceEnter", "PresenceEvent", "PresenceExit"]


class ExitReason(enum.StrEnum):
    """Why a tag was declared away. A silent or restarted scanner is not a reason: the tag's
    state is then unknown and no exit is emitted."""

    #: The smoothed RSSI fell below the zone's exit threshold (the lower one: hysteresis).
    RSSI_BELOW_EXIT = "rssi_below_exit"
    #: Not heard for longer than the timeout learned from its advertising interval, while the
    #: scanner itself kept hearing other devices.
    TIMEOUT = "timeout"


class PresenceEvent(Event):
    """The fields both presence kinds carry: one visit of one tag to one zone."""

    zone: str = Field(min_length=1)
    """The zone of this gateway (e.g. ``door-3``, ``cargo``); the same as ``source.zone``."""
    tag: str = Field(min_length=1)
    """The tag id; the same as ``source.device``. The asset, when bound, is in ``asset``."""
    first_seen: UtcDatetime
    """The first sighting of this visit. With ``tag`` and ``zone`` it identifies the visit."""
    last_seen: UtcDatetime
    """The latest sighting that counted for this visit."""
    sightings: int = Field(ge=1)
    """Adverts heard during the visit (up to the event)."""
    rssi_max_dbm: float
    """Strongest raw RSSI during the visit, dBm."""
    rssi_mean_dbm: float
    """Mean raw RSSI during the visit, dBm."""
    dwell_s: float = Field(ge=0)
    """``last_seen - first_seen``, seconds: how long the tag has been (enter) or was (exit)
    in the zone."""

    @classmethod
    def make_id(cls, gateway_id: str, *, tag: str, zone: str, first_seen: datetime) -> str:
        """The id of this kind for the visit of ``tag`` to ``zone`` that began at
        ``first_seen``: the enter and the exit of one visit differ only by their kind."""
        kind = cls.model_fields["kind"].default
        return make_event_id(kind, gateway_id, tag, zone, first_seen)


class PresenceEnter(PresenceEvent):
    """Emitted when a tag becomes present in a zone: its smoothed RSSI passed the zone's enter
    threshold for enough sightings. ``time`` is the moment of the decision."""

    kind: Literal["presence.enter"] = "presence.enter"


class PresenceExit(PresenceEvent):
    """Emitted when a tag that was present leaves the zone: its smoothed RSSI fell below the
    exit threshold, or it was not heard within its timeout while the scanner was healthy.
    ``time`` is the moment of the decision; ``last_seen`` is when it was last heard."""

    kind: Literal["presence.exit"] = "presence.exit"
    reason: ExitReason
    """Why the tag was declared away."""
    enter_event_id: str = Field(min_length=1, max_length=128)
    """The ``event_id`` of the ``presence.enter`` that opened this visit."""
