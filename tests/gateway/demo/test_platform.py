"""The platform's commands for a scenario: from its inputs only, in the order they must go,
each valid for the gateway's own command models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from gateway.conditions.commands import ProfilesAssignCommand
from gateway.custody.commands import HandoffOpenCommand, RouteLoadCommand
from gateway.demo import item_asset, platform_commands, tag_ids
from gateway.registry import TagBindCommand
from gateway.report import asset_uri, item_name
from simulator.world import load_scenario, parse_scenario

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def test_cross_dock_binds_assigns_and_opens_door_3_with_its_manifest() -> None:
    scenario = load_scenario("cross-dock")
    commands = platform_commands(scenario, START)
    names = [c.name for c in commands]
    # Bindings first: manifests and profiles name assets.
    assert names == sorted(names, key=["tags.bind", "profiles.assign", "handoff.open"].index)
    models: dict[str, type[BaseModel]] = {
        "tags.bind": TagBindCommand,
        "profiles.assign": ProfilesAssignCommand,
        "handoff.open": HandoffOpenCommand,
    }
    for c in commands:
        models[c.name].model_validate(c.payload)
    (opened,) = (c for c in commands if c.name == "handoff.open")
    (truth,) = scenario.ground_truth.handoffs
    assert opened.gateway_id == "gw-door-03"
    assert opened.topic("tagrelay/v1") == "tagrelay/v1/gw-door-03/cmd/handoff/open"
    assert opened.payload["door"] == "door-d3"
    assert opened.payload["expected"] == [asset_uri(i) for i in truth.expected]
    assert opened.payload["window_start"] == "2026-03-02T06:03:00+00:00"
    assert opened.payload["window_end"] == "2026-03-02T06:25:00+00:00"
    # Nothing of the outcome: no missing or unexpected item is named beyond the manifest.
    assert asset_uri("PCL-0099") not in str(opened.payload)
    assigns = [c for c in commands if c.name == "profiles.assign"]
    assert {c.gateway_id for c in assigns} == {g.id for g in scenario.gateways}
    assert {(c.payload["profile"], tuple(c.payload["subjects"])) for c in assigns} == {  # type: ignore[arg-type]
        ("pharma-2-8", (asset_uri("PAL-0001"),))
    }
    pallet = next(i for i in scenario.items if i.id == "PAL-0001")
    label = f"smartlabel:{6506575561643590632:016x}"  # the label id in cross-dock.toml
    assert tag_ids(scenario, pallet) == [label, "ruuvi:CB:B8:33:4C:88:4F"]


def test_delivery_route_loads_each_stop_with_its_parcels() -> None:
    scenario = load_scenario("delivery-route")
    (load,) = (c for c in platform_commands(scenario, START) if c.name == "route.load")
    RouteLoadCommand.model_validate(load.payload)
    (route,) = scenario.routes
    stops: list[dict[str, Any]] = json.loads(json.dumps(load.payload["stops"]))
    by_stop = {s["stop_id"]: s["parcels"] for s in stops}
    for item in scenario.items:
        if item.route == route.id:
            assert asset_uri(item.id) in by_stop[str(item.stop)]


def test_an_item_id_that_cannot_be_a_giai_is_named_by_its_tag() -> None:
    assert item_asset("PCL-0001") == asset_uri("PCL-0001")
    assert item_name(asset_uri("PCL-0001")) == "PCL-0001"
    assert item_asset("an item id with spaces") is None
    assert item_asset("X" * 40) is None  # a GIAI reference has at most 30 - 7 characters
    text = """
name = "odd"
duration_s = 10
[[doors]]
id = "D1"
lat = 51.0
lon = 6.0
gateway = { id = "gw-1" }
[[vehicles]]
id = "T"
track = [{ t_s = 0, lat = 51.0001, lon = 6.0 }]
[[items]]
id = "parcel with spaces"
at = "T"
tags = [{ format = "ibeacon", uuid = "f7826da6-4fa2-4e98-8024-bc5b71e0893e", major = 1, minor = 2 }]
[[ground_truth.handoffs]]
door = "D1"
vehicle = "T"
window_s = [0, 10]
expected = ["parcel with spaces"]
confirmed = ["parcel with spaces"]
missing = []
"""
    commands = platform_commands(parse_scenario(text), START)
    assert [c.name for c in commands] == ["handoff.open"]
    assert commands[0].payload["expected"] == ["ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:2"]
