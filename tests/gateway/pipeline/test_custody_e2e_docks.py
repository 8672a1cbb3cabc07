"""Custody end to end at more docks than cross-dock: busy-dock (doors 5 and 6 unload at once,
12 m apart, door 7 idle beside them) and yard-return (the trailer is pulled into the yard
mid-session and comes back). The same bar as cross-dock: one ``tagrelay run`` per door gateway,
the simulator and a real mosquitto; the platform's commands come from the scenario's inputs
only (manifests, yard appointments); every door's report is compared with its handoff's ground
truth item by item, and no neighbouring door confirms, counts unexpected or sees present in its
dock zone an item of another door's handoff.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import pytest

from simulator.world import Scenario, load_scenario
from tests.fixtures.mosquitto import Broker
from tests.gateway.pipeline.test_custody_e2e import (
    BIRTH_TIMEOUT_S,
    CROSS_DOCK_SPEED,
    LEAD_IN_S,
    ScenarioTime,
    assets_of,
    carries,
    figures,
    gateways,
    logs_clean,
    platform,
    tags_by_item,
)
from tests.gateway.pipeline.test_run import simulation

#: The speed the cross-dock test uses: the simulator keeps up with 3 doors and ~60 tags.
DOCK_SPEED = CROSS_DOCK_SPEED


def yard_appointment(scenario: Scenario, vehicle: str) -> tuple[float, float]:
    """The vehicle's time at its door from its track: the place of its longest stay, from its
    first arrival there to its last departure (a trailer pulled into the yard and brought back
    keeps its appointment)."""
    track = next(v for v in scenario.vehicles if v.id == vehicle).track
    stays = [
        ((a.lat, a.lon), a.t_s, b.t_s)
        for a, b in itertools.pairwise(track)
        if (a.lat, a.lon) == (b.lat, b.lon)
    ]
    place, _, _ = max(stays, key=lambda s: s[2] - s[1])
    at_door = [(arrive, depart) for p, arrive, depart in stays if p == place]
    return min(a for a, _ in at_door), max(d for _, d in at_door)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["busy-dock", "yard-return"])
async def test_door_gateways_report_their_handoffs_ground_truth(
    mosquitto: Broker, tmp_path: Path, name: str
) -> None:
    scenario = load_scenario(name)
    truths = scenario.ground_truth.handoffs
    assert truths
    tags = tags_by_item(scenario)
    assets = assets_of(scenario)
    items = {a: i for i, a in assets.items()}
    door_gw = {d.id: d.gateway.id for d in scenario.doors}
    door_of = {gw: d for d, gw in door_gw.items()}
    zone = {d.id: f"door-{d.id.lower()}" for d in scenario.doors}
    window = {h.door: yard_appointment(scenario, h.vehicle) for h in truths}
    by_door = {h.door: h for h in truths}
    idle = sorted({nb for h in truths for nb in h.neighbours} - set(by_door))
    last_end = max(depart for _, depart in window.values())
    # Each handoff door gets its manifest; an idle neighbour a session of its own (it must
    # stay missing: nothing of the busy doors may count for it).
    sessions: dict[str, tuple[str, list[str], float]] = {
        **{
            door_gw[h.door]: (f"H-{h.vehicle}", [assets[i] for i in h.expected], window[h.door][1])
            for h in truths
        },
        **{door_gw[d]: (f"H-{door_gw[d]}", [f"asset:own-of-{door_gw[d]}"], last_end) for d in idle},
    }
    carry = carries(scenario)
    first_carry = min(started for (_, door), (started, _) in carry.items() if door in by_door)
    async with (
        platform(mosquitto) as plat,
        simulation(
            tmp_path, mosquitto, name, "--speed", str(DOCK_SPEED), "--lead-in", str(LEAD_IN_S)
        ) as (where, _),
        gateways(tmp_path, where, list(sessions), scenario) as procs,
    ):
        clock = ScenarioTime.of(Path(where["gateway_configs"][next(iter(sessions))]))
        await plat.wait_until(lambda: set(procs) <= plat.births(), BIRTH_TIMEOUT_S)
        opened_at = clock.at(time.monotonic())
        for gw, (sid, expected, end) in sessions.items():
            vehicle = by_door[door_of[gw]].vehicle if door_of[gw] in by_door else None
            carrier = next((v.carrier for v in scenario.vehicles if v.id == vehicle), None)
            await plat.command(
                gw,
                "handoff.open",
                {
                    "id": f"open-{sid}",
                    "session_id": sid,
                    "door": zone[door_of[gw]],
                    "from_party": carrier or "carrier",
                    "to_party": "4012345000009",
                    "expected": expected,
                    "documents": [{"type": "ASN", "number": f"ASN-{sid}"}],
                    "window_end": clock.utc(end),
                },
            )

        def reported() -> bool:
            return all(plat.events(gw, "handoff.report") for gw in procs)

        await plat.wait_until(reported, (last_end + 120.0 - opened_at) / DOCK_SPEED + 60.0)
        for gw, proc in procs.items():
            assert proc.poll() is None, (tmp_path / f"{gw}.log").read_text()[-4000:]
    logs_clean(tmp_path, procs)
    for gw, (sid, expected, _) in sessions.items():
        (answer,) = [r for r in plat.results(gw) if r.get("id") == f"open-{sid}"]
        assert answer["ok"], answer
        assert answer["result"]["items"] == len(expected)
    # The sessions were open before the first parcel was carried off a trailer.
    assert opened_at < first_carry - 30.0, opened_at

    text: list[str] = []
    for h in truths:
        gw = door_gw[h.door]
        ((report, _),) = plat.events(gw, "handoff.report")
        got = {
            k: {items.get(t, t) for t in report[k]} for k in ("confirmed", "missing", "unexpected")
        }
        want = {"confirmed": h.confirmed, "missing": h.missing, "unexpected": h.unexpected}
        diff = {k: (got[k] - set(want[k]), set(want[k]) - got[k]) for k in got}
        wrong = {i for a, b in diff.values() for i in (*a, *b)}
        assert all(a == b == set() for a, b in diff.values()), (
            h.door,
            diff,
            [e for e in report["evidence"] if items.get(e["item"], e["item"]) in wrong],
            [
                (e["item"], e["time"])
                for e, _ in plat.events(gw, "handoff.item")
                if items.get(e["item"]) in wrong
            ],
        )
        assert len(report["confirmed"]) == len(h.confirmed)
        assert report["close_reason"] == "window_end"
        assert report["door"] == zone[h.door]
        # Live progress: one handoff.item per confirmed item, none before its carry.
        live = plat.events(gw, "handoff.item")
        assert sorted(items[e["item"]] for e, _ in live) == sorted(h.confirmed)
        decided, published, at_report = [], [], 0
        _, depart = window[h.door]
        for e, real_s in live:
            started, ended = carry[(items[e["item"]], h.door)]
            at = clock.of_event(e["time"])
            assert at >= started, e
            if at >= depart:
                at_report += 1
                continue
            decided.append(at - ended)
            published.append(clock.at(real_s) - ended)

        # Its neighbours: none of its items confirmed or unexpected there, no presence there.
        mine = {*h.expected, *h.unexpected}
        my_tags = {t for i in mine for t in tags.get(i, [])}
        for nb in h.neighbours:
            other = door_gw[nb]
            ((theirs, _),) = plat.events(other, "handoff.report")
            claimed = {items.get(k, k) for k in (*theirs["confirmed"], *theirs["unexpected"])}
            assert not claimed & mine, (h.door, nb, claimed & mine)
            live_there = {
                items.get(e["item"], e["item"]) for e, _ in plat.events(other, "handoff.item")
            }
            assert not live_there & mine, (h.door, nb, live_there & mine)
            present = [
                e
                for e, _ in plat.events(other, "presence.enter")
                if e["tag"] in my_tags or e.get("asset") in {assets[i] for i in mine}
            ]
            assert present == [], (h.door, nb, present)
        text.append(
            f"{h.door}: {len(report['confirmed'])} confirmed, {len(report['missing'])} missing, "
            f"{len(report['unexpected'])} unexpected (truth {len(h.confirmed)}/{len(h.missing)}/"
            f"{len(h.unexpected)}, exact); {len(decided)} live, {at_report} at the report; "
            + figures("decided after the carry ended", decided)
            + "; "
            + figures("published after the carry ended", published)
        )
    for d in idle:
        gw = door_gw[d]
        ((theirs, _),) = plat.events(gw, "handoff.report")
        assert theirs["missing"] == sessions[gw][1]
        assert plat.events(gw, "handoff.item") == []
    details = f"sessions opened at t = {opened_at:.0f} s; " + " | ".join(text)
    print(f"FIGURES {name} e2e at speed", DOCK_SPEED, details, file=sys.stderr)
