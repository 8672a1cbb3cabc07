"""The platform's part in a simulated run: what it tells each gateway before the world moves.

A real platform knows its master data and its plans: which tag travels on which parcel, which
trailer is due at which door with which manifest and documents, which van drives which route
with which parcels, and which goods need which condition profile. In the demo that knowledge
comes from the scenario's INPUTS only: its items and tags, the handoff appointments (door,
vehicle, window, expected items), its routes with their stops and parcels, and the items'
profiles. The truth's outcomes (confirmed, missing, unexpected, excursion windows, actual
stops) are never read here.

:func:`platform_commands` is pure: a scenario in, the commands out, in the order they must be
sent (bindings first, so manifests and profiles can name assets).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from pydantic import JsonValue

from gateway.registry import Gs1Error, canonical_asset_uri, parse_tag_id
from gateway.report.names import asset_uri
from simulator.gateway_config import door_zone
from simulator.world import (
    EddystoneUidTag,
    IBeaconTag,
    Item,
    RuuviTag,
    Scenario,
    SmartLabelTag,
)
from simulator.world.state import derive_address

__all__ = ["PlatformCommand", "item_asset", "platform_commands", "tag_ids"]

#: The receiving party of every handoff: the site operator's GLN (check digit valid).
SITE_GLN: Final = "4012345000009"


@dataclass(frozen=True, slots=True)
class PlatformCommand:
    """One command for one gateway: ``name`` (``tags.bind``) goes to ``…/cmd/tags/bind``."""

    gateway_id: str
    name: str
    payload: dict[str, JsonValue]

    def topic(self, prefix: str) -> str:
        return f"{prefix}/{self.gateway_id}/cmd/{self.name.replace('.', '/')}"


def tag_ids(scenario: Scenario, item: Item) -> list[str]:
    """The gateway's tag ids of a scenario item's tags, in the item's order."""
    out: list[str] = []
    for n, tag in enumerate(item.tags):
        if isinstance(tag, SmartLabelTag):
            text = f"smartlabel:{tag.label_id:016x}"
        elif isinstance(tag, IBeaconTag):
            text = f"ibeacon:{tag.uuid}:{tag.major}:{tag.minor}"
        elif isinstance(tag, EddystoneUidTag):
            text = f"eddystone:{tag.namespace}:{tag.instance}"
        elif isinstance(tag, RuuviTag):
            text = f"ruuvi:{tag.address or derive_address(scenario.name, item.id, n)}"
        else:  # pragma: no cover - the scenario's tag union is closed
            continue
        out.append(parse_tag_id(text).text)
    return out


def item_asset(item_id: str) -> str | None:
    """The asset an item is bound to, or None when its id cannot be a GIAI reference (then
    the platform names it by its first tag id)."""
    try:
        return canonical_asset_uri(asset_uri(item_id))
    except (Gs1Error, ValueError):
        return None


def platform_commands(scenario: Scenario, start: datetime) -> list[PlatformCommand]:
    """Everything the platform sends, for a world whose t = 0 is ``start`` (UTC)."""
    gateways = [g.id for g in scenario.gateways]
    names: dict[str, str] = {}  # item id -> how the platform names it on the wire
    binds: list[PlatformCommand] = []
    for item in scenario.items:
        ids = tag_ids(scenario, item)
        asset = item_asset(item.id)
        names[item.id] = asset if asset is not None else ids[0]
        if asset is None:
            continue
        for gw in gateways:
            for n, tag in enumerate(ids):
                payload: dict[str, JsonValue] = {
                    "id": f"bind-{item.id}-{n}",
                    "tag": tag,
                    "asset": asset,
                }
                binds.append(PlatformCommand(gw, "tags.bind", payload))
    commands = list(binds)
    profiled: dict[str, list[str]] = defaultdict(list)
    for item in scenario.items:
        profile = getattr(item, "profile", None)  # a field of later scenario formats
        if isinstance(profile, str):
            profiled[profile].append(names[item.id])
    for profile, subjects in sorted(profiled.items()):
        for gw in gateways:
            payload = {"id": f"profile-{profile}", "profile": profile, "subjects": list(subjects)}
            commands.append(PlatformCommand(gw, "profiles.assign", payload))
    doors = {d.id: d for d in scenario.doors}
    vehicles = {v.id: v for v in scenario.vehicles}
    for n, h in enumerate(scenario.ground_truth.handoffs):
        door = doors[h.door]
        vehicle = vehicles[h.vehicle]
        payload = {
            "id": f"open-{n}",
            "session_id": f"H-{h.vehicle}-{h.door}-{n}",
            "door": door_zone(door.id),
            "from_party": vehicle.carrier or vehicle.name or vehicle.id,
            "to_party": SITE_GLN,
            "expected": [names[i] for i in h.expected],
            "documents": [{"type": "ASN", "number": f"ASN-{scenario.name}-{n}"}],
            "window_start": _at(start, h.window_s[0]),
            "window_end": _at(start, h.window_s[1]),
        }
        commands.append(PlatformCommand(door.gateway.id, "handoff.open", payload))
    for route in scenario.routes:
        vehicle = vehicles[route.vehicle]
        if vehicle.gateway is None:
            continue
        parcels: dict[str, list[JsonValue]] = defaultdict(list)
        for item in scenario.items:
            if item.route == route.id and item.stop is not None:
                parcels[item.stop].append(names[item.id])
        stops: list[JsonValue] = [
            {
                "stop_id": s.id,
                "lat": s.lat,
                "lon": s.lon,
                "radius_m": s.radius_m,
                "parcels": parcels[s.id],
            }
            for s in route.stops
        ]
        payload = {
            "id": f"load-{route.id}",
            "route_id": route.id,
            "depot": {"lat": route.depot_lat, "lon": route.depot_lon},
            "stops": stops,
        }
        commands.append(PlatformCommand(vehicle.gateway.id, "route.load", payload))
    return commands


def _at(start: datetime, t_s: float) -> str:
    return (start + timedelta(seconds=t_s)).isoformat()
