"""``tagrelay run`` with the EPCIS output profile on, as a real process against the simulator's
cross-dock world and a real mosquitto: every EPCIS document it publishes is valid against the
official schema (URI formats checked), every eventID is the reference generator's, and each
document is what the native event published beside it renders to."""

from __future__ import annotations

import asyncio
import json
import signal
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import tomli_w

from gateway.epcis import render
from gateway.events import parse_event
from gateway.pipeline.config import EPCIS_KINDS, EpcisConfig, EpcisOutput
from gateway.registry import TagBinding, parse_gs1_key, parse_tag_id
from simulator.epcis import epcis_settings, item_sscc, sgln
from simulator.world import World, load_scenario, shipped_scenarios
from tests.fixtures.mosquitto import Broker
from tests.gateway.epcis.checks import reference_hash, schema_errors
from tests.gateway.pipeline.test_run import START_TIMEOUT_S, gateway_process, simulation
from tests.gateway.uplink.helpers import subscribe

GATEWAY = "gw-door-03"
PREFIX = f"tagrelay/v1/{GATEWAY}"
EPCIS_TOPIC = f"{PREFIX}/events/epcis/document"
DOOR = sgln("door-d3")
SITE = sgln()


def with_epcis(config: Path, output: str) -> Path:
    """The simulator's config of the door gateway with the scenario's GS1 identities."""
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    data |= epcis_settings("cross-dock", GATEWAY, output)
    path = config.with_name(f"{GATEWAY}-epcis.toml")
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def test_the_simulated_identities_are_gs1_keys_and_tag_ids() -> None:
    settings = epcis_settings("cross-dock", GATEWAY)
    assert settings["epcis"] == {
        "output": "both",
        "read_point": "https://id.gs1.org/414/4012345000009/254/door-d3",
        "biz_location": "https://id.gs1.org/414/4012345000009",
    }
    for binding in settings["tags"]:
        assert parse_tag_id(binding["tag"]).text == binding["tag"]
        assert parse_gs1_key(binding["asset"]).uri == binding["asset"]  # check digit right
    assert len({b["tag"] for b in settings["tags"]}) == len(settings["tags"])
    trailer = epcis_settings("cross-dock", "gw-trailer-17")["epcis"]
    assert parse_gs1_key(trailer["vehicle"]).uri == trailer["vehicle"]
    assert parse_gs1_key(sgln("door-d3")).uri == sgln("door-d3")


@pytest.mark.parametrize("scenario", shipped_scenarios())
def test_every_simulated_gateway_gets_a_valid_epcis_configuration(scenario: str) -> None:
    world = World(load_scenario(scenario))
    for gateway_id in world.gateways:
        settings = epcis_settings(scenario, gateway_id, "epcis")
        config = EpcisConfig.model_validate(settings["epcis"])  # the URIs are checked
        assert config.mode is EpcisOutput.EPCIS
        bindings = [TagBinding.model_validate(b) for b in settings["tags"]]
        assert len(bindings) == len(world.tags)
        assert len({b.asset for b in bindings}) == len({ref.item for ref in world.tags})


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_everything_published_in_epcis_mode_is_valid_and_hashes_as_the_reference(
    mosquitto: Broker, tmp_path: Path
) -> None:
    scenario = load_scenario("cross-dock")
    moved = sorted({m.item for m in scenario.movements if m.to == "D3"})
    settings = epcis_settings("cross-dock", GATEWAY)
    some_tag = settings["tags"][0]["tag"]
    async with (
        subscribe(mosquitto, f"{PREFIX}/#") as sub,
        simulation(tmp_path, mosquitto, "cross-dock", "--speed", "10") as (where, _),
    ):
        config = with_epcis(Path(where["gateway_configs"][GATEWAY]), "both")
        with gateway_process(config, tmp_path / "gw.log") as proc:
            await sub.wait_until(
                lambda m: any(x.topic.endswith("/status") for x in m), timeout_s=START_TIMEOUT_S
            )
            start = datetime.fromisoformat(where["start"])
            commands = [
                # Rebound to another asset, then unbound: two AssociationEvents, then one.
                ("tags/bind", {"id": "b-1", "tag": some_tag, "asset": item_sscc("spare-1")}),
                ("tags/unbind", {"id": "b-2", "tag": some_tag}),
                (
                    "handoff/open",
                    {
                        "id": "open-1",
                        "session_id": "H-TRL-17",
                        "door": "door-d3",
                        "from_party": "4012345000016",
                        "to_party": "4012345000009",
                        "expected": [item_sscc(i) for i in moved],
                        "documents": [{"type": "ASN", "number": "ASN-77"}],
                        "window_start": (start + timedelta(seconds=180)).isoformat(),
                        "window_end": (start + timedelta(seconds=1500)).isoformat(),
                    },
                ),
            ]
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as platform:
                for topic, body in commands:
                    await platform.publish(f"{PREFIX}/cmd/{topic}", json.dumps(body), qos=1)

            def documents(_: object) -> list[dict[str, Any]]:
                return [json.loads(m.payload) for m in sub.messages if m.topic == EPCIS_TOPIC]

            def bizsteps(m: object) -> set[str]:
                return {e["bizStep"] for d in documents(m) for e in d["epcisBody"]["eventList"]}

            # Parcels arrive on the dock (presence) and the bindings change.
            await sub.wait_until(
                lambda m: (
                    {"arriving", "assembling", "disassembling"} <= bizsteps(m)
                    and sum(1 for d in documents(m) if _kinds(d) == {"ObjectEvent"}) >= 3
                ),
                timeout_s=150,
            )
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as platform:
                body = {"id": "close-1", "session_id": "H-TRL-17"}
                await platform.publish(f"{PREFIX}/cmd/handoff/close", json.dumps(body), qos=1)
            await sub.wait_until(
                lambda m: any(e.get("kind") == "handoff.report" for e in sub.events()), timeout_s=30
            )
            assert proc.poll() is None, (tmp_path / "gw.log").read_text()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
    answers = [json.loads(m.payload) for m in sub.messages if "/result/" in m.topic]
    assert len(answers) == 4
    assert all(a["ok"] for a in answers), answers
    natives = {
        e["event_id"]: e
        for e in sub.events()
        if e.get("kind") not in (None, "gateway.status", "outbox.loss")
    }
    docs = documents(None)
    ids: list[str] = []
    for doc in docs:
        # The official schema, URI formats checked.
        assert schema_errors(doc) == [], json.dumps(doc)
        events = doc["epcisBody"]["eventList"]
        for event in events:
            assert event["eventID"] == reference_hash(event), json.dumps(event)
            ids.append(event["eventID"])
        # The native event it states was published beside it and renders to the same events.
        (native_id,) = {e["tagrelay:nativeEventID"].rsplit(":", 1)[1] for e in events}
        native = parse_event(json.dumps(natives[native_id]))
        again = render(native, read_point=DOOR, biz_location=SITE)
        assert list(again.events) == events
    assert len(ids) == len(set(ids))  # each fact once
    # And the other way: every native event of a mapped kind with an EPCIS meaning has its
    # document (shocks, handoff items and the report among them when the run produced them).
    stated = {e["tagrelay:nativeEventID"] for d in docs for e in d["epcisBody"]["eventList"]}
    for native_id, body in natives.items():
        if body["kind"] not in EPCIS_KINDS:
            continue
        rendering = render(parse_event(json.dumps(body)), read_point=DOOR, biz_location=SITE)
        if rendering.events:
            assert f"urn:tagrelay:event:{native_id}" in stated, body["kind"]
    associations = [
        (e["action"], e["parentID"])
        for d in docs
        for e in d["epcisBody"]["eventList"]
        if e["type"] == "AssociationEvent"
    ]
    original = next(b["asset"] for b in settings["tags"] if b["tag"] == some_tag)
    assert associations == [
        ("DELETE", original),
        ("ADD", item_sscc("spare-1")),
        ("DELETE", item_sscc("spare-1")),
    ]
    # Arrivals are of parcels bound to SSCCs: every EPC is a GS1 key, never a tag id.
    epcs = {epc for d in docs for e in d["epcisBody"]["eventList"] for epc in e.get("epcList", [])}
    assert epcs
    assert all(parse_gs1_key(epc).uri == epc for epc in epcs)
    log = (tmp_path / "gw.log").read_text()
    assert "Traceback" not in log


def _kinds(doc: dict[str, Any]) -> set[str]:
    return {e["type"] for e in doc["epcisBody"]["eventList"]}
