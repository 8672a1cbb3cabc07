"""The EPCIS output profile in the pipeline: each mapped native event gets its EPCIS document as
an outbox row of its own, valid against the official schema, with an id from the native one."""

from __future__ import annotations

import json

from gateway.events import to_outbox
from gateway.pipeline.config import EpcisConfig
from gateway.pipeline.epcis import EPCIS_KIND, EpcisProfile
from tests.gateway.epcis.checks import schema_errors
from tests.gateway.events import samples
from tests.gateway.outbox.helpers import FakeClock

DOOR = "https://id.gs1.org/414/4012345000009/254/door-3"


def test_mapped_events_get_a_valid_document_beside_them() -> None:
    natives = [
        samples.presence_enter(),
        samples.handoff_item(),
        samples.handoff_report(),
        samples.route_departure(),
    ]
    rows = [to_outbox(e) for e in natives]
    profile = EpcisProfile("dock-3", EpcisConfig(enabled=True, read_point=DOOR), FakeClock())
    out = profile.extend(rows)
    assert out[: len(rows)] == rows  # the native events go first, unchanged
    docs = [r for r in out if r.kind == EPCIS_KIND]
    # route.departure has no EPCIS meaning (docs/epcis.md); the others each get a document.
    assert len(docs) == 3
    assert profile.rendered == 3
    for doc in docs:
        body = json.loads(doc.payload)
        assert body["type"] == "EPCISDocument"
        assert schema_errors(body) == []
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
