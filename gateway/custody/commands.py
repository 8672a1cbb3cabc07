"""The custody commands: ``handoff.open``, ``handoff.close`` and ``route.load``.

Data path role: the downlink's :class:`~gateway.uplink.commands.CommandProcessor` validates the
JSON against these models (field-level errors name the field) and calls the handlers, which
translate UTC windows to monotonic time and hand the request to the pure
:class:`~gateway.custody.engine.CustodyEngine`. A refusal by the engine (unknown door, an id
reused for other content, an item already in another open session, ...) is answered as
``invalid`` with the field and the reason, and leaves every session and route as it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from gateway.custody.engine import CustodyEngine
from gateway.custody.errors import CustodyError
from gateway.custody.handoff import SessionSpec
from gateway.custody.route import RouteSpec, StopSpec, effective_radii
from gateway.custody.rules import (
    MAX_DOCUMENTS,
    MAX_ID_CHARS,
    MAX_ITEMS_PER_SESSION,
    MAX_PARCELS_PER_ROUTE,
    MAX_STOPS_PER_ROUTE,
)
from gateway.events import UtcDatetime
from gateway.uplink.commands import Command, CommandRegistry, CommandRejected

__all__ = [
    "DocumentRef",
    "HandoffCloseCommand",
    "HandoffOpenCommand",
    "ManifestProfiles",
    "RouteDepot",
    "RouteLoadCommand",
    "RouteStop",
    "register_custody_commands",
]


class ManifestProfiles(Protocol):
    """Where the condition profiles a manifest names go (the condition monitor): ``check``
    raises ``ValueError`` for an unknown profile before anything changes; ``assign`` runs after
    the manifest was accepted."""

    def check(self, profiles: Mapping[str, str]) -> None: ...

    async def assign(self, profiles: Mapping[str, str]) -> None: ...


class _Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


def _gln_or_name(value: str) -> str:
    """A party: a GS1 GLN (13 digits, check digit verified) or a free name."""
    if len(value) == 13 and value.isdigit():
        digits = [int(c) for c in value]
        total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
        if (10 - total % 10) % 10 != digits[12]:
            raise ValueError(f"GLN {value}: wrong check digit")
    return value


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
ItemId = Annotated[str, Field(min_length=1, max_length=2 * MAX_ID_CHARS)]
Party = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(_gln_or_name)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Radius = Annotated[float, Field(gt=0.0, le=100_000.0, allow_inf_nan=False)]
#: A condition profile's name (docs/conditions.md).
ProfileName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DocumentRef(_Frozen):
    """A business document of the handoff (advance ship notice, despatch advice, bill of lading)."""

    type: Literal["ASN", "DESADV", "BOL", "PO", "other"]
    number: Id


class HandoffOpenCommand(Command):
    """Open a handoff session on one of this gateway's door zones."""

    session_id: Id
    door: Id
    """A door zone of this gateway (``door-3``)."""
    from_party: Party
    to_party: Party
    expected: tuple[ItemId, ...] = Field(min_length=1, max_length=MAX_ITEMS_PER_SESSION)
    """Asset ids (GS1 Digital Link URIs) or tag ids."""
    documents: tuple[DocumentRef, ...] = Field(default=(), max_length=MAX_DOCUMENTS)
    window_start: UtcDatetime | None = None
    """When evidence starts to count; None: now."""
    window_end: UtcDatetime
    """The session closes by itself then, unless closed before."""
    profiles: dict[ItemId, ProfileName] = Field(
        default_factory=dict, max_length=MAX_ITEMS_PER_SESSION
    )
    """The condition profile an expected item names (assigned to it when the session opens)."""
    vehicle: ItemId | None = None
    """The vehicle's own tag (tag id or asset id): the session also closes when the vehicle
    departs (its tag falls silent at the door)."""

    @model_validator(mode="after")
    def _window(self) -> HandoffOpenCommand:
        if self.window_start is not None and self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        stray = sorted(set(self.profiles) - set(self.expected))
        if stray:
            raise ValueError(f"profiles for items not expected: {stray[:5]}")
        return self


class HandoffCloseCommand(Command):
    session_id: Id


class RouteStop(_Frozen):
    stop_id: Id
    lat: Latitude
    lon: Longitude
    radius_m: Radius | None = None
    """The geofence asked for; shrunk to half the distance to the nearest other stop."""
    parcels: tuple[ItemId, ...] = Field(default=(), max_length=MAX_PARCELS_PER_ROUTE)


class RouteDepot(_Frozen):
    lat: Latitude
    lon: Longitude
    radius_m: Radius | None = None


class RouteLoadCommand(Command):
    """Load a vehicle's route: the depot, the stops in order and the parcels for each."""

    route_id: Id
    depot: RouteDepot
    stops: tuple[RouteStop, ...] = Field(min_length=1, max_length=MAX_STOPS_PER_ROUTE)
    replace: bool = False
    """Replace a route still under way (otherwise refused)."""
    profiles: dict[ItemId, ProfileName] = Field(
        default_factory=dict, max_length=MAX_PARCELS_PER_ROUTE
    )
    """The condition profile a parcel names (assigned to it when the route is loaded)."""

    @model_validator(mode="after")
    def _profiled_parcels(self) -> RouteLoadCommand:
        parcels = {p for s in self.stops for p in s.parcels}
        stray = sorted(set(self.profiles) - parcels)
        if stray:
            raise ValueError(f"profiles for parcels not on the route: {stray[:5]}")
        return self


def register_custody_commands(
    registry: CommandRegistry,
    engine: CustodyEngine,
    clock: _Clock,
    on_change: Callable[[], Awaitable[None]] | None = None,
    profiles: ManifestProfiles | None = None,
) -> None:
    """Register the three custody commands; ``on_change`` runs after each accepted change
    (the pipeline persists :meth:`CustodyEngine.snapshot` there); ``profiles`` receives the
    condition profiles a manifest's items name (without it, naming one is refused)."""

    def check_profiles(named: Mapping[str, str]) -> None:
        if not named:
            return
        if profiles is None:
            raise CommandRejected("condition profiles are not available on this gateway")
        try:
            profiles.check(named)
        except ValueError as exc:
            raise CommandRejected(str(exc)) from exc

    async def assign_profiles(named: Mapping[str, str]) -> None:
        if named and profiles is not None:
            await profiles.assign(named)

    async def changed() -> None:
        if on_change is not None:
            await on_change()

    def mono(when: datetime) -> float:
        return clock.monotonic() + (when - clock.now()).total_seconds()

    async def handoff_open(cmd: HandoffOpenCommand) -> JsonValue:
        now = clock.monotonic()
        spec = SessionSpec(
            session_id=cmd.session_id,
            door=cmd.door,
            from_party=cmd.from_party,
            to_party=cmd.to_party,
            expected=cmd.expected,
            window_start_s=now if cmd.window_start is None else mono(cmd.window_start),
            window_end_s=mono(cmd.window_end),
            documents=tuple((d.type, d.number) for d in cmd.documents),
            vehicle=cmd.vehicle,
        )
        check_profiles(cmd.profiles)
        try:
            outcome = engine.open_session(spec, now)
        except CustodyError as exc:
            raise CommandRejected(str(exc)) from exc
        if outcome == "opened":
            await changed()
        await assign_profiles(cmd.profiles)
        return {
            "accepted": True,
            "outcome": outcome,
            "session_id": cmd.session_id,
            "items": len(cmd.expected),
        }

    async def handoff_close(cmd: HandoffCloseCommand) -> JsonValue:
        try:
            due = engine.close_session(cmd.session_id, clock.monotonic())
        except CustodyError as exc:
            raise CommandRejected(str(exc)) from exc
        await changed()
        return {
            "accepted": True,
            "session_id": cmd.session_id,
            "report_in_s": round(due - clock.monotonic(), 1),
        }

    async def route_load(cmd: RouteLoadCommand) -> JsonValue:
        spec = RouteSpec(
            route_id=cmd.route_id,
            depot_lat=cmd.depot.lat,
            depot_lon=cmd.depot.lon,
            depot_radius_m=cmd.depot.radius_m,
            stops=tuple(
                StopSpec(s.stop_id, s.lat, s.lon, s.parcels, s.radius_m) for s in cmd.stops
            ),
        )
        check_profiles(cmd.profiles)
        try:
            outcome = engine.load_route(spec, clock.monotonic(), replace=cmd.replace)
        except CustodyError as exc:
            raise CommandRejected(str(exc)) from exc
        if outcome == "loaded":
            await changed()
        await assign_profiles(cmd.profiles)
        depot_r, radii = effective_radii(spec)
        return {
            "accepted": True,
            "outcome": outcome,
            "route_id": cmd.route_id,
            "stops": len(cmd.stops),
            "parcels": sum(len(s.parcels) for s in cmd.stops),
            "depot_radius_m": round(depot_r, 1),
            "radius_m": {k: round(v, 1) for k, v in radii.items()},
        }

    registry.register("handoff.open", HandoffOpenCommand, handoff_open)
    registry.register("handoff.close", HandoffCloseCommand, handoff_close)
    registry.register("route.load", RouteLoadCommand, route_load)
