"""A handoff session opened by a configured trigger, end to end: cross-dock's door 3 gateway
(``tagrelay run`` as a real process, the simulator's world, a real mosquitto) is configured with
a ``[[custody.triggers]]`` for the trailer's tag and receives no ``handoff.open`` at all. The
session opens when the trailer has arrived, closes when it departs, and reports, with no
manifest, only items that the ground truth says were handed off at door 3.

The shipped scenario's trailer has no tag of its own; one of the two parcels that never leave it
stands in for one (a tag in the load space, behind the trailer's body: the hardest place for
a trailer tag to be heard from)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from gateway.custody.rules import CLOSE_SETTLE_S, VEHICLE_GONE_S
from simulator.world import load_scenario
from tests.fixtures.mosquitto import Broker
from tests.gateway.pipeline.test_custody_e2e import (
    BIRTH_TIMEOUT_S,
    CROSS_DOCK_SPEED,
    LEAD_IN_S,
    ScenarioTime,
    assets_of,
    carries,
    gateways,
    logs_clean,
    parked_at_door,
    platform,
    tags_by_item,
)
from tests.gateway.pipeline.test_run import simulation


def add_trigger(config: Path, door: str, vehicle: str, carrier: str) -> None:
    """The installer's ``[[custody.triggers]]`` in the gateway's configuration file."""
    config.write_text(
        config.read_text()
        + f'\n[[custody.triggers]]\ndoor = "{door}"\nvehicle = "{vehicle}"\n'
        + f'from_party = "{carrier}"\nto_party = "4012345000009"\n'
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_the_trailers_tag_opens_and_closes_the_session_without_a_command(
    mosquitto: Broker, tmp_path: Path
) -> None:
    scenario = load_scenario("cross-dock")
    (truth,) = scenario.ground_truth.handoffs
    assets = assets_of(scenario)
    items = {a: i for i, a in assets.items()}
    tags = tags_by_item(scenario)
    door = next(d for d in scenario.doors if d.id == truth.door)
    ours, zone = door.gateway.id, f"door-{door.id.lower()}"
    arrive, depart = parked_at_door(scenario, truth.vehicle)
    stays_on_board = sorted(truth.missing)[0]
    trailer_tag = tags[stays_on_board][0]
    carry = carries(scenario)
    first_carry = min(start for (_, d), (start, _) in carry.items() if d == truth.door)
    async with (
        platform(mosquitto) as plat,
        simulation(
            tmp_path,
            mosquitto,
            "cross-dock",
            "--speed",
            str(CROSS_DOCK_SPEED),
            "--lead-in",
            str(LEAD_IN_S),
        ) as (where, _),
    ):
        config = Path(where["gateway_configs"][ours])
        add_trigger(config, zone, trailer_tag, scenario.vehicles[0].carrier or "carrier")
        async with gateways(tmp_path, where, [ours], scenario) as procs:
            clock = ScenarioTime.of(config)
            await plat.wait_until(lambda: ours in plat.births(), BIRTH_TIMEOUT_S)
            started_at = clock.at(time.monotonic())
            timeout = (depart + VEHICLE_GONE_S + CLOSE_SETTLE_S + 60 - started_at) / (
                CROSS_DOCK_SPEED
            ) + 60.0
            await plat.wait_until(lambda: bool(plat.events(ours, "handoff.report")), timeout)
            assert procs[ours].poll() is None, (tmp_path / f"{ours}.log").read_text()[-4000:]
    logs_clean(tmp_path, [ours])
    assert started_at < arrive  # the gateway was listening before the trailer came in

    ((report, _),) = plat.events(ours, "handoff.report")
    assert report["session_id"].startswith(f"auto-{zone}-")
    assert report["door"] == zone
    assert report["from_party"]["name"] == scenario.vehicles[0].carrier
    assert report["to_party"]["gln"] == "4012345000009"
    assert report["close_reason"] == "vehicle_departed"
    opened = clock.of_event(report["opened_at"])
    closed = clock.of_event(report["closed_at"])
    # Opened once the trailer was there (it reverses in from 90 s, parks at `arrive`), before
    # anything was carried; closed when it pulled away.
    assert arrive - 90.0 <= opened < first_carry, (opened, arrive, first_carry)
    assert depart <= closed <= depart + 60.0, (closed, depart)
    # No manifest: nothing expected or missing, no live confirmations; what it reports as seen
    # was handed off at door 3, and nothing that stayed on the trailer.
    assert (report["expected"], report["confirmed"], report["missing"]) == ([], [], [])
    assert plat.events(ours, "handoff.item") == []
    seen = {items.get(k, k) for k in report["unexpected"]}
    handed = set(truth.confirmed) | set(truth.unexpected)
    assert seen, report["evidence"]
    assert seen <= handed, seen - handed
    assert trailer_tag not in {e["tag"] for e in report["evidence"]}
    print(
        "FIGURES trigger-opened session (cross-dock door 3 at speed",
        CROSS_DOCK_SPEED,
        f"): opened at t = {opened:.0f} s (trailer parked at {arrive:.0f} s, first carry at",
        f"{first_carry:.0f} s), closed at t = {closed:.0f} s (departure {depart:.0f} s);",
        f"{len(seen)} of {len(handed)} handed-off items reported as seen, none wrongly",
        file=sys.stderr,
    )
