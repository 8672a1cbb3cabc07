"""``tagrelay run`` in a van with the EPCIS output profile on, as a real process against the
simulator's van world and a real mosquitto (the custody end-to-end harness): every EPCIS
document it publishes is valid against the official schema (URI formats checked), every
eventID is the reference generator's, each document is what the native event published beside
it renders to, and each native fact with an EPCIS meaning (the departure, every delivery
evidence, the misdelivery) has its document, stated as an aggregation on the vehicle.

The world is van-misload-tunnel (a misloaded and a missing parcel at the depot); the
platform's plan lists one parcel of the first stop for the second, so that the van also
delivers a parcel where its plan does not say (a misdelivery). The run ends once the second
stop is decided: about half the tour, to keep the test short."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from gateway.epcis import render
from gateway.events import parse_event
from gateway.pipeline.config import EPCIS_KINDS
from gateway.registry import parse_gs1_key
from simulator.epcis import epcis_settings, item_sscc
from simulator.world import load_scenario
from tests.fixtures.mosquitto import Broker
from tests.gateway.epcis.checks import reference_hash, schema_errors
from tests.gateway.pipeline.test_custody_e2e import (
    BIRTH_TIMEOUT_S,
    LEAD_IN_S,
    VAN_SPEED,
    Platform,
    ScenarioTime,
    logs_clean,
    platform,
    route_load,
)
from tests.gateway.pipeline.test_run import gateway_process, simulation

SCENARIO = "van-misload-tunnel"


def natives(plat: Platform, gw: str) -> dict[str, dict[str, Any]]:
    """The native events of the kinds the profile maps, by event id."""
    out: dict[str, dict[str, Any]] = {}
    for m in plat.messages:
        if not m.topic.startswith(f"tagrelay/v1/{gw}/events/") or m.topic.endswith(
            "/epcis/document"
        ):
            continue
        for e in m.payload if isinstance(m.payload, list) else [m.payload]:
            if e.get("kind") in EPCIS_KINDS:
                out[e["event_id"]] = e
    return out


def documents(plat: Platform, gw: str) -> list[dict[str, Any]]:
    topic = f"tagrelay/v1/{gw}/events/epcis/document"
    return [m.payload for m in plat.messages if m.topic == topic and isinstance(m.payload, dict)]


def stated(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Native event id -> the EPCIS events stating it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for event in doc["epcisBody"]["eventList"]:
            out.setdefault(event["tagrelay:nativeEventID"].rsplit(":", 1)[1], []).append(event)
    return out


def provision(config: Path, settings: dict[str, Any]) -> None:
    """Add :func:`simulator.epcis.epcis_settings` to a gateway's configuration: the ``[epcis]``
    table and every tag bound to its item's SSCC."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "\n" + tomli_w.dumps(settings), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_van_publishes_a_valid_epcis_document_for_every_vehicle_fact(
    mosquitto: Broker, tmp_path: Path
) -> None:
    scenario = load_scenario(SCENARIO)
    truth = scenario.ground_truth
    (route,) = scenario.routes
    van = next(v for v in scenario.vehicles if v.id == route.vehicle)
    assert van.gateway is not None
    gw = van.gateway.id
    assets = {item.id: item_sscc(item.id) for item in scenario.items}
    items = {a: i for i, a in assets.items()}
    first, second = sorted(route.stops, key=lambda s: s.arrive_s)[:2]
    # The platform's plan lists a parcel delivered at the first stop for the second.
    replanned = next(
        d.item for d in truth.deliveries if d.actual_stop == first.id and not d.wrong_stop
    )
    load = route_load(scenario, route.id, assets)
    for stop in load["stops"]:
        parcels = [p for p in stop["parcels"] if p != assets[replanned]]
        stop["parcels"] = parcels + ([assets[replanned]] if stop["stop_id"] == second.id else [])
    delivered = {d.item for d in truth.deliveries if d.actual_stop in (first.id, second.id)} - {
        replanned
    }
    settings = epcis_settings(scenario, gw, "both")
    vehicle = settings["epcis"]["vehicle"]

    def kinds_seen() -> bool:
        events = natives(plat, gw)
        evidences = {items[e["item"]] for e in events.values() if e["kind"] == "delivery.evidence"}
        misdelivered = {
            items[e["item"]]
            for e in events.values()
            if e["kind"] == "delivery.alert" and e["alert"] == "misdelivery"
        }
        return (
            any(e["kind"] == "route.departure" for e in events.values())
            and delivered <= evidences
            and replanned in misdelivered
            # Every document of those facts has arrived too.
            and set(events) <= set(stated(documents(plat, gw))) | unmapped(events)
        )

    def unmapped(events: dict[str, dict[str, Any]]) -> set[str]:
        return {
            i
            for i, e in events.items()
            if not render(parse_event(json.dumps(e)), vehicle=vehicle).events
        }

    started = time.monotonic()
    async with (
        platform(mosquitto) as plat,
        simulation(
            tmp_path, mosquitto, SCENARIO, "--speed", str(VAN_SPEED), "--lead-in", str(LEAD_IN_S)
        ) as (where, _),
    ):
        config = Path(where["gateway_configs"][gw])
        provision(config, settings)
        with gateway_process(config, tmp_path / f"{gw}.log") as proc:
            clock = ScenarioTime.of(config)
            await plat.wait_until(lambda: gw in plat.births(), BIRTH_TIMEOUT_S)
            await plat.command(gw, "route.load", load)
            await plat.wait_until(lambda: bool(plat.results(gw)), 30.0)
            loaded_at = clock.at(time.monotonic())
            assert loaded_at < route.start_s, f"the route was loaded too late (t = {loaded_at:.0f})"
            # The second stop is decided a minute or so after the van leaves it.
            timeout = (second.depart_s + 120.0 - loaded_at) / VAN_SPEED + 30.0
            await plat.wait_until(kinds_seen, timeout)
            assert proc.poll() is None, (tmp_path / f"{gw}.log").read_text()[-4000:]
    elapsed = time.monotonic() - started
    logs_clean(tmp_path, [gw])
    (answer,) = plat.results(gw)
    assert answer["ok"], answer

    events = natives(plat, gw)
    docs = documents(plat, gw)
    by_native = stated(docs)
    ids: list[str] = []
    for doc in docs:
        # The official schema, URI formats checked.
        assert schema_errors(doc) == [], json.dumps(doc)
        for event in doc["epcisBody"]["eventList"]:
            assert event["eventID"] == reference_hash(event), json.dumps(event)
            ids.append(event["eventID"])
    assert len(ids) == len(set(ids))  # each fact once
    # Each document is what its native event renders to, and every native event with an EPCIS
    # meaning has its document; the others (misload, left on board: nothing moved) have none.
    for native_id, body in events.items():
        again = render(parse_event(json.dumps(body)), vehicle=vehicle)
        assert by_native.get(native_id, []) == list(again.events), body
    assert set(by_native) <= set(events)

    # The departure: the load as it left the depot onto the vehicle, then the vehicle departing.
    ((departure_id, departure),) = [
        (i, e) for i, e in events.items() if e["kind"] == "route.departure"
    ]
    loading, departing = by_native[departure_id]
    assert (loading["type"], loading["action"], loading["bizStep"]) == (
        "AggregationEvent",
        "ADD",
        "loading",
    )
    assert loading["parentID"] == vehicle
    (dep_truth,) = truth.departures
    planned = {i.id for i in scenario.items if i.route == route.id}
    assert {items[c] for c in loading["childEPCs"]} == (planned - set(dep_truth.missing)) | set(
        dep_truth.misloaded
    )
    assert (departing["type"], departing["epcList"], departing["bizStep"]) == (
        "ObjectEvent",
        [vehicle],
        "departing",
    )
    # The world's missing and misloaded parcels are named in the native event only.
    assert sorted(items[i] for i in departure["missing"]) == sorted(dep_truth.missing)
    assert sorted(items[i] for i in departure["misloaded"]) == sorted(dep_truth.misloaded)
    # Every parcel put down at the two stops left the vehicle: an unload from it, once.
    unloads: dict[str, str] = {}
    for native_id, body in events.items():
        if body["kind"] not in ("delivery.evidence", "delivery.alert") or (
            body.get("alert") not in (None, "misdelivery")
        ):
            continue
        (unload,) = by_native[native_id]
        assert (unload["type"], unload["action"], unload["bizStep"]) == (
            "AggregationEvent",
            "DELETE",
            "unloading",
        )
        assert unload["parentID"] == vehicle
        (child,) = unload["childEPCs"]
        assert child == body["item"]
        assert items[child] not in unloads
        unloads[items[child]] = body["kind"]
    assert {i for i, k in unloads.items() if k == "delivery.evidence"} >= delivered
    assert unloads[replanned] == "delivery.alert"
    # The misload is no document; every EPC is a GS1 key, never a tag id.
    assert any(
        e["kind"] == "delivery.alert" and e["alert"] == "misload" and i not in by_native
        for i, e in events.items()
    )
    epcs = {c for d in docs for e in d["epcisBody"]["eventList"] for c in e.get("childEPCs", [])}
    assert all(parse_gs1_key(epc).uri == epc for epc in epcs)
    print(
        f"FIGURES {SCENARIO} EPCIS e2e at speed {VAN_SPEED}: {len(docs)} documents, "
        f"{len(ids)} EPCIS events, {len(unloads)} unloads, {elapsed:.0f} s real; native "
        f"{dict(sorted(Counter(e['kind'] for e in events.values()).items()))}",
    )
