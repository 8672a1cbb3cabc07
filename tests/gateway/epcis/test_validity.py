"""Every EPCIS event tagrelay emits is valid against the official EPCIS 2.0 JSON Schema with
URI formats checked, and its eventID is the one GS1's reference generator computes; the checks
themselves catch what they must (a misspelt bizStep, an EPC that is no URI, a wrong id)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.epcis import EXTENSION_NAMESPACE, EXTENSION_PREFIX, document, pre_hash, render
from gateway.events import Event
from tests.gateway.epcis.checks import (
    CREATED,
    EXAMPLE_FILES,
    reference_hash,
    schema_errors,
)
from tests.gateway.events.samples import ALL_SAMPLES

DOOR = "https://id.gs1.org/414/4012345000009/254/door-3"
SITE = "https://id.gs1.org/414/4012345000009"
VAN = "https://id.gs1.org/8004/4012345VAN-0042"
#: The configurations a gateway can run with: none, a site with a GLN, a vehicle with a GIAI.
SETTINGS: list[dict[str, str]] = [
    {},
    {"read_point": DOOR, "biz_location": SITE},
    {"vehicle": VAN},
    {"read_point": "https://example.com/sites/ams-1/doors/3"},
]


def _all_rendered() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for settings in SETTINGS:
        for event in ALL_SAMPLES:
            for rendered in render(event, **settings).events:
                out.append((f"{event.kind}-{rendered['type']}-{sorted(settings)}", rendered))
    return out


RENDERED = _all_rendered()


def test_the_samples_render_to_every_mapped_event_type() -> None:
    kinds = {key.split("-")[0] for key, _ in RENDERED}
    assert kinds == {
        "presence.enter",
        "presence.exit",
        "handoff.item",
        "handoff.report",
        "delivery.evidence",
        "delivery.alert",
        "condition.excursion",
        "condition.shock",
        "telemetry.reading",
        "route.departure",
        "tag.binding",
    }
    assert {e["type"] for _, e in RENDERED} == {
        "ObjectEvent",
        "AggregationEvent",
        "AssociationEvent",
    }


@pytest.mark.parametrize(("key", "event"), RENDERED, ids=[k for k, _ in RENDERED])
def test_every_rendered_event_is_valid_against_the_official_schema(
    key: str, event: dict[str, Any]
) -> None:
    assert schema_errors(document([event], created=CREATED)) == []


def test_a_document_of_all_events_is_valid() -> None:
    doc = document([e for _, e in RENDERED], created=CREATED)
    assert schema_errors(doc) == []
    assert doc["schemaVersion"] == "2.0"
    assert doc["creationDate"] == "2026-11-24T07:00:00.000Z"


@pytest.mark.parametrize(("key", "event"), RENDERED, ids=[k for k, _ in RENDERED])
def test_every_event_id_is_the_reference_generators(key: str, event: dict[str, Any]) -> None:
    assert event["eventID"].startswith("ni:///sha-256;")
    assert event["eventID"].endswith("?ver=CBV2.0")
    assert event["eventID"] == reference_hash(event)


@pytest.mark.parametrize("sample", ALL_SAMPLES, ids=lambda e: e.kind)
def test_a_re_derived_or_re_sent_fact_has_the_same_event_id(sample: Event) -> None:
    again = type(sample).model_validate_json(sample.to_json_bytes())
    first = [e["eventID"] for e in render(sample, read_point=DOOR).events]
    assert first == [e["eventID"] for e in render(again, read_point=DOOR).events]
    later = {
        name: getattr(sample, name).replace(year=2027)
        for name in ("time", "left_at")
        if hasattr(sample, name)
    }
    moved = sample.model_copy(update=later)
    assert not set(first) & {e["eventID"] for e in render(moved, read_point=DOOR).events}


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_the_hash_port_agrees_with_the_published_examples(path: Any) -> None:
    """The six example documents carry eventIDs made by the CBV 2.0 rule (bizTransactions,
    parties, sensor reports and extension fields among them): the port derives the same."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert schema_errors(doc) == []
    namespaces = {
        prefix: iri
        for item in doc["@context"]
        if isinstance(item, dict)
        for prefix, iri in item.items()
    }
    for event in doc["epcisBody"]["eventList"]:
        from gateway.epcis import event_hash

        assert event_hash(event, namespaces) == event["eventID"]


def test_a_misspelt_biz_step_fails_the_schema() -> None:
    event = copy.deepcopy(RENDERED[0][1])
    event["bizStep"] = "arrivng"
    errors = schema_errors(document([event], created=CREATED))
    assert errors, "a misspelt bizStep passed: URI format checking is off"


@pytest.mark.parametrize("bad", ["ibeacon f7826da6 100 7", "00/340123450000000017", ""])
def test_an_epc_that_is_no_uri_fails_the_schema(bad: str) -> None:
    event = copy.deepcopy(RENDERED[0][1])
    event["epcList"] = [bad]
    assert schema_errors(document([event], created=CREATED))


def test_a_tampered_event_no_longer_matches_its_id() -> None:
    event = copy.deepcopy(RENDERED[0][1])
    event["bizStep"] = "departing"
    assert reference_hash(event) != event["eventID"]
    assert reference_hash(event) != RENDERED[0][1]["eventID"]


def test_extension_fields_are_hashed_under_their_namespace() -> None:
    event = RENDERED[0][1]
    text = pre_hash(event, {EXTENSION_PREFIX: EXTENSION_NAMESPACE})
    assert f"{{{EXTENSION_NAMESPACE}}}nativeEventID=urn:tagrelay:event:" in text
    with pytest.raises(ValueError, match="unknown prefix"):
        pre_hash(event, {})
