"""The mapping from native events to EPCIS events, decided in docs/epcis.md: golden documents
for each mapping, and the rules around them (what is an EPC, which party is a GLN, what a
document type becomes, what is left out and why)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.epcis import (
    EpcisError,
    Rendering,
    Skip,
    SkipReason,
    epc_uri,
    location_uri,
    party_uri,
    render,
    sgln_uri,
)
from gateway.events import (
    AlertType,
    BusinessDocument,
    ClockRef,
    Party,
    Quantities,
    TimeSource,
)
from tests.gateway.epcis.checks import GOLDEN_DIR, context_terms, reference_hash, schema_errors
from tests.gateway.epcis.golden import AT_DOOR, CASES, DOOR, SITE, VAN, golden_document, golden_text
from tests.gateway.events import samples


@pytest.mark.parametrize("name", CASES)
def test_golden_documents_are_unchanged(name: str) -> None:
    path = GOLDEN_DIR / f"{name}.jsonld"
    assert path.read_text(encoding="utf-8") == golden_text(name), (
        "the mapping changed: run python -m tests.gateway.epcis.golden and review the diff"
    )
    doc = golden_document(name)
    assert schema_errors(doc) == []
    for event in doc["epcisBody"]["eventList"]:
        assert event["eventID"] == reference_hash(event)


def _vocabulary(event: dict[str, Any]) -> list[str]:
    """The CBV and GS1 vocabulary words ``event`` uses (bare words the context defines)."""
    words = [event[k] for k in ("bizStep", "disposition") if k in event]
    for key in ("sourceList", "destinationList", "bizTransactionList"):
        words += [entry["type"] for entry in event.get(key, [])]
    for element in event.get("sensorElementList", []):
        for report in element["sensorReport"]:
            words += [report["type"]] + ([report["exception"]] if "exception" in report else [])
    return words


@pytest.mark.parametrize("name", CASES)
def test_golden_documents_speak_the_cbv(name: str) -> None:
    """Every bizStep, disposition, source / destination and business transaction type, sensor
    type and alert is a word of the normative EPCIS 2.0 context (so of CBV 2.0 and the GS1
    vocabulary), and the three event types and actions are the standard's."""
    events = golden_document(name)["epcisBody"]["eventList"]
    assert events
    for event in events:
        words = _vocabulary(event)
        assert words, "every golden event has a bizStep"
        unknown = [w for w in words if w not in context_terms() and not w.startswith("urn:")]
        assert unknown == [], event["eventID"]
        assert event["type"] in {"ObjectEvent", "AggregationEvent", "AssociationEvent"}
        assert event["action"] in {"OBSERVE", "ADD", "DELETE"}


def test_the_vocabulary_check_catches_a_word_the_cbv_does_not_have() -> None:
    assert "arriving" in context_terms()
    assert "RelativeHumidity" in context_terms()
    assert "arrivng" not in context_terms()
    assert "Humidity" not in context_terms()


def _one(rendering: Rendering) -> dict[str, Any]:
    assert len(rendering.events) == 1, rendering
    return rendering.events[0]


def test_presence_is_arriving_and_departing_of_the_bound_asset_at_the_read_point() -> None:
    enter = _one(render(samples.presence_enter(), **AT_DOOR))
    exit_ = _one(render(samples.presence_exit(), **AT_DOOR))
    for event in (enter, exit_):
        assert event["type"] == "ObjectEvent"
        assert event["action"] == "OBSERVE"
        assert event["epcList"] == [samples.ASSET]
        assert event["readPoint"] == {"id": DOOR}
        assert event["bizLocation"] == {"id": SITE}
    assert (enter["bizStep"], exit_["bizStep"]) == ("arriving", "departing")
    assert enter["eventTime"] == "2026-11-24T06:00:04.200Z"


def test_an_unbound_tag_is_no_epc_it_is_skipped_and_counted() -> None:
    unbound = samples.presence_enter().model_copy(update={"asset": None})
    rendering = render(unbound, **AT_DOOR)
    assert rendering.events == ()
    assert rendering.skipped == (Skip(samples.TAG, SkipReason.NOT_AN_EPC),)


def test_the_handoff_report_is_accepting_between_the_parties_with_the_documents() -> None:
    rendering = render(samples.handoff_report(), **AT_DOOR)
    accepting = _one(rendering)
    assert accepting["bizStep"] == "accepting"
    assert accepting["disposition"] == "in_transit"
    assert accepting["epcList"] == [samples.ASSET, samples.OTHER]  # confirmed, not missing
    assert accepting["sourceList"] == [
        {"type": "possessing_party", "source": "https://id.gs1.org/417/4012345000009"}
    ]
    assert "destinationList" not in accepting  # the receiving party has a name, no GLN
    assert accepting["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:DESADV-778812"},
        {"type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:BOL-55120"},
    ]
    assert set(rendering.skipped) == {
        Skip("Cross-dock Hub 1", SkipReason.PARTY_WITHOUT_GLN),
        Skip(samples.STRAY, SkipReason.NOT_AN_EPC),
    }


def test_handoff_parties_documents_and_unexpected_items() -> None:
    report = samples.handoff_report().model_copy(
        update={
            "to_party": Party(gln="4098765000003", name="Hub"),
            "from_party": Party(name="Carrier without GLN"),
            "documents": (
                BusinessDocument(type="asn", id="ASN 77/1"),
                BusinessDocument(type="waybill", id="W-1"),
            ),
            "unexpected": ("https://id.gs1.org/01/04012345000016/21/ABC-1",),
        }
    )
    accepting, arriving = render(report, **AT_DOOR).events
    assert accepting["destinationList"] == [
        {"type": "possessing_party", "destination": "https://id.gs1.org/417/4098765000003"}
    ]
    assert "sourceList" not in accepting
    # An ASN is a CBV despatch advice; a type the CBV lacks becomes a private URI; without the
    # issuer's GLN the document id is a private URN, percent-encoded.
    assert accepting["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "urn:tagrelay:bt:ASN%2077%2F1"},
        {"type": "urn:tagrelay:btt:waybill", "bizTransaction": "urn:tagrelay:bt:W-1"},
    ]
    assert arriving["bizStep"] == "arriving"
    assert arriving["epcList"] == ["https://id.gs1.org/01/04012345000016/21/ABC-1"]
    for event in (accepting, arriving):
        assert event["eventID"] == reference_hash(event)


def test_a_party_gln_with_a_wrong_check_digit_is_not_used() -> None:
    assert party_uri(Party(gln="4012345000009")) == "https://id.gs1.org/417/4012345000009"
    assert party_uri(Party(gln="4012345000008")) is None
    assert party_uri(Party(name="no gln")) is None


def test_delivery_is_unloading_at_the_vehicles_position_or_a_deletion_from_the_vehicle() -> None:
    evidence = samples.delivery_evidence()
    plain = _one(render(evidence))
    assert (plain["type"], plain["bizStep"], plain["epcList"]) == (
        "ObjectEvent",
        "unloading",
        [samples.ASSET],
    )
    assert plain["readPoint"] == {"id": "geo:52.380100,4.900300"}
    assert plain["eventTime"] == "2026-11-24T06:39:50.000Z"  # left_at, not the decision time
    on_van = _one(render(evidence, vehicle=VAN))
    assert on_van["type"] == "AggregationEvent"
    assert (on_van["parentID"], on_van["childEPCs"], on_van["action"]) == (
        VAN,
        [samples.ASSET],
        "DELETE",
    )


def test_departure_is_the_load_onto_the_vehicle_and_the_vehicle_departing() -> None:
    departure = samples.route_departure()  # on board: two SSCCs and an unbound tag
    plain = _one(render(departure))
    assert (plain["type"], plain["action"], plain["bizStep"], plain["disposition"]) == (
        "ObjectEvent",
        "OBSERVE",
        "departing",
        "in_transit",
    )
    assert plain["epcList"] == [samples.ASSET, samples.OTHER]
    rendering = render(departure, vehicle=VAN)
    load, leaving = rendering.events
    assert (load["type"], load["parentID"], load["action"], load["bizStep"]) == (
        "AggregationEvent",
        VAN,
        "ADD",
        "loading",
    )
    assert load["childEPCs"] == [samples.ASSET, samples.OTHER]
    assert (leaving["epcList"], leaving["bizStep"]) == ([VAN], "departing")
    assert rendering.skipped == (Skip(samples.STRAY, SkipReason.NOT_AN_EPC),)
    # A vehicle named by a URI that is no GS1 key is a parent, never an EPC.
    private = render(departure, vehicle="urn:example:fleet:van-42")
    assert [e["type"] for e in private.events] == ["AggregationEvent"]
    assert Skip("urn:example:fleet:van-42", SkipReason.NOT_AN_EPC) in private.skipped
    empty = departure.model_copy(update={"on_board": ()})
    assert render(empty).events == ()


def test_a_binding_is_an_association_of_the_tag_with_its_asset() -> None:
    tag_urn = f"urn:tagrelay:device:{samples.TAG}"
    bind = _one(render(samples.tag_binding(), **AT_DOOR))
    assert (bind["type"], bind["parentID"], bind["childEPCs"], bind["action"]) == (
        "AssociationEvent",
        samples.ASSET,
        [tag_urn],
        "ADD",
    )
    assert bind["bizStep"] == "assembling"
    unbind = _one(render(samples.tag_unbinding(), **AT_DOOR))
    assert (unbind["parentID"], unbind["action"], unbind["bizStep"]) == (
        samples.ASSET,
        "DELETE",
        "disassembling",
    )
    rebind = render(
        samples.tag_binding().model_copy(update={"previous_asset": samples.OTHER}), **AT_DOOR
    )
    assert [(e["parentID"], e["action"]) for e in rebind.events] == [
        (samples.OTHER, "DELETE"),
        (samples.ASSET, "ADD"),
    ]
    # The child is the URI the tag's sensor reports name as their device.
    reading = samples.telemetry_reading().model_copy(
        update={"source": samples.tag_binding().source}
    )
    element = _one(render(reading, **AT_DOOR))["sensorElementList"][0]
    assert element["sensorMetadata"]["deviceID"] == tag_urn
    # An asset that is no GS1 key (a private URI from the configuration) has no association.
    odd = samples.tag_unbinding().model_copy(update={"previous_asset": "urn:example:crate:7"})
    assert render(odd) == Rendering((), (Skip("urn:example:crate:7", SkipReason.NOT_AN_EPC),))


@pytest.mark.parametrize("alert", [AlertType.LEFT_ON_BOARD, AlertType.MISLOAD])
def test_alerts_that_move_nothing_render_to_nothing(alert: AlertType) -> None:
    event = samples.delivery_alert().model_copy(update={"alert": alert})
    rendering = render(event)
    assert rendering.events == ()
    assert rendering.skipped == (Skip("delivery.alert", SkipReason.NO_EPCIS_MEANING),)


def test_an_excursion_is_a_sensor_report_with_the_alarm_condition() -> None:
    event = _one(render(samples.condition_excursion(), **AT_DOOR))
    assert event["bizStep"] == "sensor_reporting"
    (element,) = event["sensorElementList"]
    assert element["sensorMetadata"] == {
        "startTime": "2026-11-24T06:13:00.000Z",
        "endTime": "2026-11-24T06:22:00.000Z",
        "deviceID": "urn:tagrelay:device:smartlabel:0011223344556677",
        "bizRules": "urn:tagrelay:profile:pharma-2-8",
    }
    assert element["sensorReport"] == [
        {
            "type": "Temperature",
            "exception": "ALARM_CONDITION",
            "minValue": 8.0,
            "maxValue": 11.6,
            "meanValue": 9.8,
            "uom": "CEL",
        }
    ]


def test_a_shock_below_the_alarm_limit_has_no_exception() -> None:
    quiet = samples.condition_shock().model_copy(update={"alarm": False})
    (report,) = _one(render(quiet))["sensorElementList"][0]["sensorReport"]
    assert "exception" not in report
    assert (report["type"], report["value"], report["uom"]) == ("Acceleration", 16.2, "K40")


def test_telemetry_without_a_gs1_type_is_skipped_per_quantity() -> None:
    reading = samples.telemetry_reading().model_copy(
        update={"values": Quantities(voc_index=120, temperature_c=4.0)}
    )
    rendering = render(reading)
    (report,) = _one(rendering)["sensorElementList"][0]["sensorReport"]
    assert report == {"type": "Temperature", "value": 4.0, "uom": "CEL"}
    assert rendering.skipped == (Skip("voc_index", SkipReason.NO_SENSOR_TYPE),)


def test_unsynced_events_wait_for_their_corrected_time() -> None:
    unsynced = samples.presence_enter().model_copy(
        update={
            "time_source": TimeSource.UNSYNCED,
            "clock_ref": ClockRef(boot_id=samples.BOOT, monotonic_s=12.0),
        }
    )
    assert render(unsynced).skipped == (Skip("presence.enter", SkipReason.UNSYNCED_TIME),)
    corrected = unsynced.model_copy(
        update={"time_source": TimeSource.NTP, "clock_ref": None, "time_corrected": True}
    )
    assert len(render(corrected).events) == 1


@pytest.mark.parametrize(
    "sample",
    [samples.condition_warning(), samples.telemetry_position(), samples.device_status()],
    ids=lambda e: e.kind,
)
def test_kinds_without_epcis_meaning_render_to_nothing(sample: Any) -> None:
    assert render(sample) == Rendering((), (Skip(sample.kind, SkipReason.NO_EPCIS_MEANING),))


def test_without_a_configured_read_point_a_fixed_gateway_names_itself() -> None:
    event = samples.presence_enter().model_copy(update={"position": None})
    assert _one(render(event))["readPoint"] == {"id": "urn:tagrelay:gateway:dock-3"}


def test_identifiers() -> None:
    assert (
        epc_uri("urn:epc:id:sscc:0614141.1234567890") == "https://id.gs1.org/00/106141412345678908"
    )
    assert epc_uri("https://example.com/dl/00/340123450000000017?x=1") == samples.ASSET
    assert epc_uri("https://id.gs1.org/01/04012345000016") is None  # a product, not one item
    assert epc_uri("https://id.gs1.org/00/340123450000000018") is None  # check digit
    assert epc_uri(samples.TAG) is None
    assert sgln_uri("4012345000009", "D/3") == "https://id.gs1.org/414/4012345000009/254/D%2F3"
    with pytest.raises(EpcisError, match="254"):
        sgln_uri("4012345000009", "door 3")  # a space is not in GS1 character set 82
    assert sgln_uri("4012345000009") == SITE
    with pytest.raises(EpcisError, match="check digit"):
        sgln_uri("4012345000008")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DOOR, DOOR),
        ("HTTP://ID.GS1.ORG/414/4012345000009", SITE),
        ("urn:epc:id:sgln:4012345.00000.door-3", DOOR),
        ("https://example.com/sites/ams-1/doors/3", "https://example.com/sites/ams-1/doors/3"),
        ("geo:52.37,4.89", "geo:52.37,4.89"),
    ],
)
def test_configured_locations_are_canonical(text: str, expected: str) -> None:
    assert location_uri(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "door 3",
        "dock-3",
        "https://example.com/a b",
        "https://example.com/414/4012345000008",  # a Digital Link look-alike with a bad GLN
        "https://id.gs1.org/01/04012345000016",  # a product is no place
    ],
)
def test_bad_configured_locations_are_refused(text: str) -> None:
    with pytest.raises(EpcisError):
        location_uri(text)
    with pytest.raises(EpcisError):
        render(samples.presence_enter(), read_point=text)


def test_time_is_written_in_milliseconds_utc() -> None:
    event = samples.presence_enter().model_copy(
        update={"time": samples.T0 + timedelta(microseconds=123_999)}
    )
    assert _one(render(event))["eventTime"] == "2026-11-24T06:00:00.123Z"
