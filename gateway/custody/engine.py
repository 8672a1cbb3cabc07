"""The custody engine of one gateway: handoff sessions on its door zones, the route on its cargo
zones, one interface for the pipeline.

Data path role: the pipeline stage after presence calls :meth:`CustodyEngine.observe` for every
sighting of a tracked tag, :meth:`CustodyEngine.position` for every GPS fix and
:meth:`CustodyEngine.tick` about once a second, and turns the results into events. Commands
reach it through :func:`gateway.custody.commands.register_custody_commands`. After each call
that changed something the pipeline stores :meth:`CustodyEngine.snapshot` (a JSON value) and
gives it back to :meth:`CustodyEngine.restore` at start, so open sessions and loaded routes
survive a restart or a kill -9. Pure: no I/O, no clock; every time is the caller's monotonic
seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

from pydantic import JsonValue

from gateway.custody.errors import CustodyError
from gateway.custody.handoff import HandoffBook, SessionSpec
from gateway.custody.results import Claim, CustodyResult
from gateway.custody.route import RouteBook, RouteSpec
from gateway.custody.triggers import TriggerSpec, TriggerWatch

__all__ = ["SNAPSHOT_VERSION", "CustodyEngine"]

#: Bumped when the snapshot's layout changes; an unknown version is not restored.
SNAPSHOT_VERSION: Final = 1


class CustodyEngine:
    """Handoff sessions (door zones such as ``door-3``) and vehicle mode (cargo zones)."""

    def __init__(
        self,
        *,
        door_zones: Iterable[str] = (),
        cargo_zones: Iterable[str] = (),
        triggers: Iterable[TriggerSpec] = (),
        trigger_epoch: str = "",
    ) -> None:
        """``triggers`` open sessions when a vehicle's tag arrives at a door (their doors must
        be among ``door_zones``: ValueError otherwise); ``trigger_epoch`` goes into the ids of
        the sessions they open (something that differs per start)."""
        self.door_zones = frozenset(door_zones)
        self.cargo_zones = frozenset(cargo_zones)
        self.handoffs = HandoffBook(self.door_zones)
        self.route = RouteBook(self.cargo_zones)
        self.triggers = TriggerWatch(triggers, trigger_epoch)
        stray = sorted({t.door for t in self.triggers.triggers} - self.door_zones)
        if stray:
            raise ValueError(f"trigger door(s) {stray} are not door zones of this gateway")
        self.restore_failures = 0
        #: Trigger openings the book refused (an id already used): counted, never raised.
        self.trigger_failures = 0
        self._revision_base = 0

    @property
    def revision(self) -> int:
        """Changes when something happened that a restart must not forget (a session opened,
        closed or reported, a crossing decided): compare with the value at the last save."""
        return self._revision_base + self.handoffs.revision

    # --- evidence ------------------------------------------------------------------------------

    def observe(
        self, tag: str, asset: str | None, zone: str, rssi: int, monotonic: float
    ) -> list[CustodyResult]:
        """One advert of a tracked tag heard in ``zone`` at ``rssi`` dBm."""
        if zone in self.door_zones:
            if self.triggers.triggers:
                self._trigger(tag, asset, zone, monotonic)
            return list(self.handoffs.observe(tag, asset, zone, rssi, monotonic))
        if zone in self.cargo_zones:
            self.route.observe(tag, asset, zone, rssi, monotonic)
        return []

    def _trigger(self, tag: str, asset: str | None, zone: str, monotonic: float) -> None:
        busy = self.handoffs.door_busy(zone)
        arrival = self.triggers.observe(tag, asset, zone, monotonic, busy)
        if arrival is None:
            return
        spec, sightings = arrival
        try:
            # This sighting is counted again by the session itself, right after.
            self.handoffs.open_triggered(spec, monotonic, sightings - 1)
        except CustodyError:
            self.trigger_failures += 1

    def receiver(self, zone: str, receiver: str, up: bool, monotonic: float) -> None:
        """A receiver (BLE adapter) of ``zone`` stopped listening or listens again: a door's
        vehicle is not departed by a silence it could not hear."""
        if zone in self.door_zones:
            self.handoffs.receiver(zone, receiver, up, monotonic)

    def position(
        self, lat: float, lon: float, fix_ok: bool, monotonic: float, hdop: float | None = None
    ) -> list[CustodyResult]:
        """A GPS fix; ``fix_ok`` False for no fix (or a fix the driver calls invalid)."""
        self.route.position(lat, lon, fix_ok, monotonic, hdop)
        return []

    def tick(self, monotonic: float) -> list[CustodyResult]:
        """Decide what is due: candidate crossings, window ends, reports, leaves, departures."""
        out: list[CustodyResult] = list(self.handoffs.tick(monotonic, self.route.last_fix))
        out += self.route.tick(monotonic)
        return out

    # --- arbitration between neighbouring doors ------------------------------------------------

    def claims(self) -> list[Claim]:
        """What this gateway's doors claim (to publish on the site topic every few seconds)."""
        return self.handoffs.claims()

    def neighbour_claims(self, claims: list[Claim], monotonic: float) -> int:
        """Claims received from neighbouring door gateways (claims for our own doors are
        ignored). Not persisted: neighbours re-send them."""
        return self.handoffs.neighbour_claims(claims, monotonic)

    # --- commands ------------------------------------------------------------------------------

    def open_session(
        self, spec: SessionSpec, monotonic: float
    ) -> Literal["opened", "already_open"]:
        """Raises :class:`~gateway.custody.errors.CustodyError`; the state is then unchanged."""
        return self.handoffs.open(spec, monotonic)

    def close_session(self, session_id: str, monotonic: float) -> float:
        """Close now; returns when the report falls due (monotonic)."""
        return self.handoffs.close(session_id, monotonic)

    def load_route(
        self, spec: RouteSpec, monotonic: float, *, replace: bool = False
    ) -> Literal["loaded", "already_loaded"]:
        return self.route.load(spec, monotonic, replace=replace)

    # --- persistence ---------------------------------------------------------------------------

    def snapshot(self) -> JsonValue:
        return {
            "version": SNAPSHOT_VERSION,
            "handoffs": self.handoffs.to_json(),
            "route": self.route.to_json(),
        }

    def restore(self, data: JsonValue) -> bool:
        """Take the state from a :meth:`snapshot` value; False (state left empty, counted) when
        it is not one this version wrote."""
        fresh_h, fresh_r = HandoffBook(self.door_zones), RouteBook(self.cargo_zones)
        try:
            d: Any = data
            if d["version"] != SNAPSHOT_VERSION:
                raise ValueError(f"snapshot version {d['version']}")
            fresh_h.restore(d["handoffs"])
            fresh_r.restore(d["route"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            self.restore_failures += 1
            return False
        self._revision_base += self.handoffs.revision + 1
        self.handoffs, self.route = fresh_h, fresh_r
        return True
