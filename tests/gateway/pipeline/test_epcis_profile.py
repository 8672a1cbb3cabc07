"""The EPCIS output profile in the pipeline: each mapped native event gets its EPCIS document as
an outbox row of its own, valid against the official schema, with an id from the native one;
``output = "epcis"`` replaces the native rows it can; unsynced events wait for the clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from drivers.gps import TrustedTime
from gateway.events import ClockRef, TimeSource, parse_event, to_outbox
from gateway.pipeline.config import EpcisConfig, EpcisOutput
from gateway.pipeline.epcis import EPCIS_KIND, PENDING_MAX, EpcisProfile
from gateway.timekeeping import TimeKeeper
from tests.gateway.epcis.checks import reference_hash, schema_errors
from tests.gateway.events import samples
from tests.gateway.outbox.helpers import FakeClock

DOOR = "https://id.gs1.org/414/4012345000009/254/door-3"
BOOT = "0f4f2f8e-3c1d-4a47-9e0a-5b1f0d6a7c21"


def test_mapped_events_get_a_valid_document_beside_them() -> None:
    natives = [
        samples.presence_enter(),
        samples.handoff_item(),
        samples.handoff_report(),
        samples.route_departure(),
        samples.tag_binding(),
        samples.device_status(),
    ]
    rows = [to_outbox(e) for e in natives]
    profile = EpcisProfile(
        "dock-3", EpcisConfig(output=EpcisOutput.BOTH, read_point=DOOR), FakeClock()
    )
    out = profile.extend(rows)
    assert out[: len(rows)] == rows  # the native events go first, unchanged
    docs = [r for r in out if r.kind == EPCIS_KIND]
    # device.status is not a mapped kind; the others each get a document.
    assert len(docs) == 5
    assert profile.rendered == 5
    types = []
    for doc in docs:
        body = json.loads(doc.payload)
        assert body["type"] == "EPCISDocument"
        assert schema_errors(body) == []
        types += [e["type"] for e in body["epcisBody"]["eventList"]]
    assert set(types) == {"ObjectEvent", "AssociationEvent"}
    by_native = {r.event_id: r for r in rows}
    assert all(d.event_class in {r.event_class for r in by_native.values()} for d in docs)
    # The same facts again give the same document ids: the outbox keeps one copy.
    again = EpcisProfile("dock-3", EpcisConfig(enabled=True, read_point=DOOR), FakeClock())
    assert [d.event_id for d in again.extend(rows) if d.kind == EPCIS_KIND] == [
        d.event_id for d in docs
    ]


def test_kinds_not_switched_on_are_left_alone() -> None:
    rows = [to_outbox(samples.presence_enter())]
    profile = EpcisProfile(
        "dock-3", EpcisConfig(enabled=True, kinds=("handoff.report",)), FakeClock()
    )
    assert profile.extend(rows) == rows


def test_the_switch() -> None:
    assert EpcisConfig().mode is EpcisOutput.NATIVE
    assert EpcisConfig(enabled=True).mode is EpcisOutput.BOTH
    assert EpcisConfig(output=EpcisOutput.EPCIS).mode is EpcisOutput.EPCIS
    assert EpcisConfig(output=EpcisOutput.NATIVE, enabled=True).mode is EpcisOutput.NATIVE
    with pytest.raises(ValidationError):
        EpcisConfig.model_validate({"output": "json-ld"})


def test_epcis_output_replaces_the_native_rows_it_can_and_keeps_the_rest() -> None:
    unbound = samples.presence_enter().model_copy(update={"asset": None})
    natives = [samples.presence_enter(), unbound, samples.device_status()]
    rows = [to_outbox(e) for e in natives]
    profile = EpcisProfile(
        "dock-3", EpcisConfig(output=EpcisOutput.EPCIS, read_point=DOOR), FakeClock()
    )
    out = profile.extend(rows)
    # The bound tag's visit goes out as EPCIS only; the unbound tag's has no EPC, so it keeps
    # its native form (nothing lost); device.status is not a mapped kind.
    assert [r.kind for r in out] == ["presence.enter", "device.status", EPCIS_KIND]
    assert out[0] is rows[1]
    assert (profile.replaced, profile.rendered, profile.skipped["not_an_epc"]) == (1, 1, 1)


def _unsynced(monotonic: float, boot: str = BOOT) -> bytes:
    event = samples.presence_enter().model_copy(
        update={
            "time": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),  # the untrusted system clock
            "time_source": TimeSource.UNSYNCED,
            "clock_ref": ClockRef(boot_id=boot, monotonic_s=monotonic),
        }
    )
    return to_outbox(event).payload


def test_unsynced_events_are_rendered_with_their_corrected_time_once_the_clock_is_trusted() -> None:
    clock = FakeClock()
    keeper = TimeKeeper(clock, boot_id=BOOT)
    config = EpcisConfig(output=EpcisOutput.EPCIS, read_point=DOOR)
    profile = EpcisProfile("dock-3", config, clock, keeper.correct_payload)
    row = replace(to_outbox(samples.presence_enter()), payload=_unsynced(4990.0))
    out = profile.extend([row])
    # Not rendered yet, and the native row is kept (the uplink corrects it at send time).
    assert out == [row]
    assert (profile.pending, profile.rendered) == (1, 0)
    assert profile.extend([]) == []
    assert profile.corrected() == []
    # GPS time appears: the true time at monotonic 5000 is 06:00:10, 10 s after the event.
    truth = datetime(2026, 11, 24, 6, 0, 10, tzinfo=UTC)
    keeper.on_gps(TrustedTime(truth, 5000.0), 5000.0)
    docs = profile.corrected()
    assert len(docs) == 1
    assert profile.pending == 0
    body = json.loads(docs[0].payload)
    assert schema_errors(body) == []
    (event,) = body["epcisBody"]["eventList"]
    assert event["eventTime"] == "2026-11-24T06:00:00.000Z"
    assert event["eventID"] == reference_hash(event)
    # The same id as the document of the event corrected by the uplink and rendered again.
    again = EpcisProfile("dock-3", config, clock).extend(
        [replace(row, payload=keeper.correct_payload(row.payload))]
    )
    assert [json.loads(d.payload)["epcisBody"]["eventList"][0]["eventID"] for d in again] == [
        event["eventID"]
    ]
    assert parse_event(keeper.correct_payload(row.payload)).time == truth - timedelta(seconds=10)


def test_pending_events_are_bounded_and_what_is_never_rendered_is_counted() -> None:
    clock = FakeClock()
    keeper = TimeKeeper(clock, boot_id=BOOT)
    profile = EpcisProfile(
        "dock-3", EpcisConfig(output=EpcisOutput.BOTH), clock, keeper.correct_payload
    )
    template = to_outbox(samples.presence_enter())
    rows = [replace(template, payload=_unsynced(float(i))) for i in range(PENDING_MAX + 2)]
    profile.extend(rows)
    assert profile.pending == PENDING_MAX
    assert profile.skipped["unsynced_overflow"] == 2
    # Another boot's event can never be corrected: once the clock is trusted it is counted.
    profile.extend([replace(template, payload=_unsynced(1.0, boot="other"))])
    keeper.on_gps(TrustedTime(datetime(2026, 11, 24, 6, tzinfo=UTC), 5000.0), 5000.0)
    assert len(profile.corrected()) == PENDING_MAX - 1
    assert profile.skipped["unsynced_lost"] == 1
    profile.extend([replace(template, payload=_unsynced(2.0, boot="other"))])
    assert profile.close() == 1
    assert profile.skipped["unsynced_lost"] == 2
