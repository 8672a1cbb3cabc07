"""Handoff sessions opened by a configured trigger: a vehicle's own tag seen at a door.

Data path role: the engine shows every sighting in a door zone to :class:`TriggerWatch` before
the sessions see it. A trigger names a door and a vehicle (a glob pattern over tag ids and asset
ids, so ``TRL-*`` or ``ibeacon:...:900:*`` cover a fleet). The vehicle has *arrived* once its tag
was heard there :data:`~gateway.custody.rules.VEHICLE_MIN_SIGHTINGS` times with no gap of
:data:`~gateway.custody.rules.VEHICLE_GONE_S` (the rule that closes a session on departure, so
the two agree), and then one session opens for that arrival: no manifest (nothing expected,
nothing missing; every item that crossed with evidence is reported as seen without expectation,
under the stricter unexpected-item rule), the trigger's parties, its window length, and the
vehicle's tag as the session's vehicle, so that the departure closes it. An arrival opens at most
one session; none while another session on the door is open (a ``handoff.open`` for the same
trailer wins); a vehicle that leaves (silent ``VEHICLE_GONE_S``) and comes back is a new arrival.
Pure: no I/O, no clock; time is the caller's monotonic seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.custody.handoff import SessionSpec
from gateway.custody.rules import MAX_ID_CHARS, VEHICLE_GONE_S, VEHICLE_MIN_SIGHTINGS

__all__ = ["TriggerSpec", "TriggerWatch"]

#: Arrivals remembered at once (vehicles matching a trigger heard recently); the oldest is
#: forgotten beyond it, so a yard full of tagged trailers cannot grow memory without bound.
MAX_ARRIVALS: int = 1_000


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One configured trigger (``[[custody.triggers]]``)."""

    door: str
    vehicle: str
    """A glob pattern (``*``, ``?``, ``[...]``) matched against the tag id and the asset id."""
    from_party: str
    to_party: str
    window_s: float
    """The session's window from its opening: it closes by then if the vehicle never leaves."""


@dataclass(slots=True)
class _Arrival:
    last_s: float
    sightings: int = 0
    handled: bool = False
    """A session was opened for it, or refused because another was open on the door."""


class TriggerWatch:
    """Counts the sightings of trigger vehicles at their doors; says when to open a session."""

    def __init__(self, triggers: Iterable[TriggerSpec], epoch: str = "") -> None:
        self.triggers = tuple(triggers)
        #: Part of the session ids, so that ids stay unique across restarts (the caller passes
        #: something that changes per start, e.g. the UTC time of the start).
        self.epoch = epoch
        self._arrivals: dict[tuple[str, str], _Arrival] = {}
        self.opened = 0
        #: Arrivals that opened nothing because a session was already open on the door.
        self.suppressed = 0

    def observe(
        self, tag: str, asset: str | None, zone: str, t: float, door_busy: bool
    ) -> tuple[SessionSpec, int] | None:
        """A sighting in door ``zone``; ``door_busy``: a session is open on it. Returns the
        session to open and the vehicle's sightings so far, when this sighting completes an
        arrival."""
        for trig in self.triggers:
            if trig.door != zone:
                continue
            if fnmatchcase(tag, trig.vehicle):
                vehicle = tag
            elif asset is not None and fnmatchcase(asset, trig.vehicle):
                vehicle = asset
            else:
                continue
            key = (zone, vehicle)
            arrival = self._arrivals.get(key)
            if arrival is None or t - arrival.last_s >= VEHICLE_GONE_S:
                self._arrivals.pop(key, None)
                arrival = self._arrivals[key] = _Arrival(t)
                while len(self._arrivals) > MAX_ARRIVALS:
                    del self._arrivals[next(iter(self._arrivals))]
            arrival.last_s = t
            arrival.sightings += 1
            if arrival.handled or arrival.sightings < VEHICLE_MIN_SIGHTINGS:
                return None
            arrival.handled = True
            if door_busy:
                self.suppressed += 1
                return None
            self.opened += 1
            sid = "-".join(p for p in ("auto", zone, self.epoch, str(self.opened)) if p)
            spec = SessionSpec(
                session_id=sid[:MAX_ID_CHARS],
                door=zone,
                from_party=trig.from_party,
                to_party=trig.to_party,
                expected=(),
                window_start_s=t,
                window_end_s=t + trig.window_s,
                vehicle=vehicle,
            )
            return spec, arrival.sightings
        return None
