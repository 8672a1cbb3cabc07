"""The simulator's world as a source of sightings for presence trackers, one per door gateway.

Scenarios here reuse the shipped cross-dock layout (doors 2, 3 and 4, 12 m apart along the
north wall, trailer TRL-17 backing onto door 3) with their own items, movements and seeds, and
the world's own radio model (log-distance path loss, body loss, seeded shadowing noise) decides
what each gateway hears. Each gateway gets its own :class:`PresenceTracker`, as on a real site.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from gateway.presence import PresenceChange, PresenceConfig, PresenceTracker, Sighting
from simulator.world import Scenario, World, load_scenario
from simulator.world.radio import seeded_uniform
from simulator.world.state import Sighting as WorldSighting

#: Zone of each door gateway of the cross-dock layout.
DOOR_ZONES = {"gw-door-02": "door-2", "gw-door-03": "door-3", "gw-door-04": "door-4"}
TRAILER_GATEWAY = "gw-trailer-17"
IBEACON_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"


@cache
def cross_dock() -> Scenario:
    return load_scenario("cross-dock")


def item_id(n: int) -> str:
    return f"PCL-{n:04d}"


def tag_id(n: int) -> str:
    """The tracker's tag id of item ``n`` (its iBeacon identity)."""
    return f"ibeacon:{IBEACON_UUID}:300:{n}"


def dock_scenario(
    seed: int,
    *,
    at: Mapping[int, str],
    movements: Sequence[tuple[int, float, str]] = (),
    duration_s: float = 600.0,
    interval_s: float = 1.0,
    trailer: bool = False,
    shadowing_sigma_db: float | None = None,
) -> Scenario:
    """The cross-dock layout with items ``n`` held by ``at[n]`` (a door or ``TRL-17``).

    ``movements`` are (item, t_s, to). Without ``trailer`` the trailer and its gateway are
    left out (doors only).
    """
    base = cross_dock()
    data: dict[str, Any] = {
        "name": f"presence-{seed}",
        "seed": seed,
        "duration_s": duration_s,
        "radio": base.radio.model_dump(),
        "doors": [d.model_dump() for d in base.doors],
        "vehicles": [v.model_dump() for v in base.vehicles] if trailer else [],
        "items": [
            {
                "id": item_id(n),
                "at": holder,
                "tags": [
                    {
                        "format": "ibeacon",
                        "uuid": IBEACON_UUID,
                        "major": 300,
                        "minor": n,
                        "interval_s": interval_s,
                    }
                ],
            }
            for n, holder in at.items()
        ],
        "movements": [{"item": item_id(n), "t_s": t_s, "to": to} for n, t_s, to in movements],
    }
    if shadowing_sigma_db is not None:
        data["radio"]["shadowing_sigma_db"] = shadowing_sigma_db
    return Scenario.model_validate(data)


@dataclass
class Run:
    """The trackers of a run and every change each produced, by gateway."""

    trackers: dict[str, PresenceTracker]
    changes: dict[str, list[PresenceChange]] = field(default_factory=dict)

    def of(self, gateway: str, tag: str) -> list[PresenceChange]:
        return [c for c in self.changes[gateway] if c.tag == tag]

    def enters(self, gateway: str) -> set[str]:
        return {c.tag for c in self.changes[gateway] if c.kind == "enter"}


def run_world(
    world: World,
    *,
    until_s: float,
    gateways: Mapping[str, str] = DOOR_ZONES,
    config: PresenceConfig | None = None,
    interval_s: float = 1.0,
    tick_s: float = 1.0,
    silent: Iterable[tuple[str, float, float]] = (),
    on_step: Callable[[float, Run], None] | None = None,
    tag_of: Callable[[WorldSighting], str] | None = None,
) -> Run:
    """Feed each gateway's tracker what the world says it hears, advert by advert.

    Every tag advertises once per ``interval_s`` (the world redraws its noise once per interval),
    at its own phase; trackers tick every ``tick_s``. ``silent`` holds (adapter, from_s, to_s):
    that scanner hears nothing then (a bluetoothd restart), and is reported down and up again.
    """
    cfg = config or PresenceConfig()
    run = Run({gw: PresenceTracker(cfg) for gw in gateways})
    run.changes = {gw: [] for gw in gateways}
    outages = list(silent)
    adapters = {gw: world.gateways[gw].spec.adapter for gw in gateways}
    down: dict[str, bool] = {a: False for a in adapters.values()}
    phase = {
        ref.address: seeded_uniform(world.scenario.seed, "phase", ref.address, high=0.9)
        * interval_s
        for ref in world.tags
    }
    steps = math.floor(until_s / interval_s)
    next_tick = 0.0
    for k in range(steps + 1):
        t = k * interval_s
        while next_tick <= t:
            _tick(run, next_tick, adapters, down, outages)
            next_tick += tick_s
        heard = sorted(world.sightings(t), key=lambda s: phase[s.address])
        for s in heard:
            if s.gateway not in run.trackers or down[s.adapter]:
                continue
            sighting = Sighting(
                tag=tag_of(s) if tag_of is not None else tag_id(int(s.item.split("-")[1])),
                scanner=s.adapter,
                zone=gateways[s.gateway],
                rssi=s.rssi_dbm,
                monotonic=t + phase[s.address],
            )
            change = run.trackers[s.gateway].observe(sighting)
            if change is not None:
                run.changes[s.gateway].append(change)
        if on_step is not None:
            on_step(t, run)
    return run


def _tick(
    run: Run,
    now: float,
    adapters: Mapping[str, str],
    down: dict[str, bool],
    outages: Sequence[tuple[str, float, float]],
) -> None:
    for gw, tracker in run.trackers.items():
        adapter = adapters[gw]
        is_down = any(a == adapter and t0 <= now < t1 for a, t0, t1 in outages)
        if is_down and not down[adapter]:
            tracker.scanner_down(adapter, now)
        elif not is_down and down[adapter]:
            tracker.scanner_up(adapter, now)
        down[adapter] = is_down
        run.changes[gw].extend(tracker.tick(now))
