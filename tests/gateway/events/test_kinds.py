"""Kinds, classes and the two payloads the events package describes but does not build: every
kind has a model and an outbox class, ``gateway.status`` matches the uplink's model, and the
real outbox's ``outbox.loss`` payloads parse and validate as documented."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

from gateway.events import (
    EVENT_TYPES,
    KIND_CLASSES,
    MESSAGE_TYPES,
    Event,
    GatewayStatus,
    OutboxLoss,
    event_class,
    parse_message,
    to_outbox,
)
from gateway.events.schemas import SCHEMA_SUFFIX, schema_for
from gateway.outbox import LOSS_KIND, EventClass, Outbox, OutboxConfig
from gateway.uplink.status import GatewayStatus as UplinkGatewayStatus
from gateway.uplink.topics import Topics
from tests.gateway.events.samples import ALL_SAMPLES
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = ROOT / "docs" / "schemas"


def test_every_model_kind_has_a_class_and_every_class_entry_a_model() -> None:
    assert set(MESSAGE_TYPES) == set(KIND_CLASSES)
    assert set(EVENT_TYPES) <= set(MESSAGE_TYPES)
    assert set(MESSAGE_TYPES) - set(EVENT_TYPES) == {"gateway.status", "outbox.loss"}
    for kind, model in MESSAGE_TYPES.items():
        assert model.model_fields["kind"].default == kind
        assert typing.get_args(model.model_fields["kind"].annotation) == (kind,)
    for kind, model in EVENT_TYPES.items():
        assert issubclass(model, Event), kind


def test_classes_follow_the_design() -> None:
    alarms = {k for k, c in KIND_CLASSES.items() if c is EventClass.ALARM}
    assert alarms == {
        "condition.excursion",
        "condition.warning",
        "condition.shock",
        "delivery.alert",
    }
    assert {k for k, c in KIND_CLASSES.items() if c is EventClass.TELEMETRY} == {
        "telemetry.reading",
        "telemetry.position",
    }
    assert event_class("outbox.loss") is EventClass.STATUS


def test_to_outbox_takes_the_class_from_the_kind() -> None:
    for sample in ALL_SAMPLES:
        row = to_outbox(sample, dedup_key="k")
        assert row.event_class is KIND_CLASSES[sample.kind]
        assert row.kind == sample.kind
        assert row.event_id == sample.event_id
        assert row.source == sample.source.device
        assert parse_message(row.payload) == sample


def test_kinds_map_to_topic_levels() -> None:
    topics = Topics("tagrelay/v1", "dock-3")
    assert topics.event("condition.excursion") == "tagrelay/v1/dock-3/events/condition/excursion"
    assert topics.event(LOSS_KIND) == "tagrelay/v1/dock-3/events/outbox/loss"


# -- gateway.status: the events package's model is the uplink's, field for field -------------


def _without_descriptions(schema: object) -> object:
    if isinstance(schema, dict):
        return {
            k: _without_descriptions(v)
            for k, v in schema.items()
            if k not in ("description", "title") and not (k == "required" and v == ["kind"])
        }
    if isinstance(schema, list):
        return [_without_descriptions(v) for v in schema]
    return schema


def test_gateway_status_model_matches_the_uplinks() -> None:
    ours = GatewayStatus.model_json_schema()
    ours["required"] = [r for r in ours["required"] if r != "kind"]
    assert _without_descriptions(ours) == _without_descriptions(
        UplinkGatewayStatus.model_json_schema()
    )
    assert list(GatewayStatus.model_fields) == list(UplinkGatewayStatus.model_fields)


def test_the_uplinks_birth_and_will_parse_and_validate() -> None:
    from datetime import UTC, datetime

    birth = UplinkGatewayStatus(
        gateway_id="dock-3",
        state="online",
        version="0.1.0",
        config_hash="c9e3daf1c48a0920",
        clock_state="unknown",
        outbox_depth=1532,
        time=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
    )
    will = UplinkGatewayStatus(
        gateway_id="dock-3",
        state="offline",
        version="0.1.0",
        config_hash="c9e3daf1c48a0920",
        clock_state="unknown",
        outbox_depth=None,
        time=None,
        reason="connection lost",
    )
    validator = _validator("gateway.status")
    for status in (birth, will):
        wire = status.to_bytes()
        parsed = parse_message(wire)
        assert isinstance(parsed, GatewayStatus)
        assert parsed.model_dump() == status.model_dump()
        assert list(validator.iter_errors(json.loads(wire))) == []


# -- outbox.loss: the payloads the real outbox writes ----------------------------------------


def _validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{kind}{SCHEMA_SUFFIX}").read_text(encoding="utf-8"))
    assert schema == schema_for(MESSAGE_TYPES[kind])
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _check_loss(payload: bytes) -> OutboxLoss:
    body = json.loads(payload)
    assert list(_validator("outbox.loss").iter_errors(body)) == []
    parsed = parse_message(payload)
    assert isinstance(parsed, OutboxLoss)
    # Read back and written again, it says the same (times re-spelled with Z).
    again = json.loads(parsed.model_dump_json())
    for key in ("since", "at"):
        assert again.pop(key).replace("Z", "+00:00") == body.pop(key)
    assert again == body
    return parsed


async def test_expired_and_evicted_loss_reports_parse(tmp_path: Path) -> None:
    clock = FakeClock()
    ttl: dict[EventClass, float | None] = {c: None for c in EventClass}
    ttl[EventClass.TELEMETRY] = 60.0
    config: OutboxConfig = ROOMY.model_copy(update={"ttl_s": ttl})
    async with Outbox(tmp_path / "o.db", config, clock) as outbox:
        await outbox.accept([event("t0"), event("t1")])
        clock.advance(61.0)
        assert await outbox.sweep() == 2
        leased = await outbox.lease(10)
    (loss_row,) = [e for e in leased if e.kind == LOSS_KIND]
    loss = _check_loss(loss_row.payload)
    assert loss.count == 2
    assert [(x.event_class, x.reason, x.count) for x in loss.losses] == [
        ("telemetry", "expired", 2)
    ]
    assert (loss.first_event_id, loss.last_event_id) == ("t0", "t1")
    assert loss.reason is None

    capped: OutboxConfig = ROOMY.model_copy(update={"max_bytes": 64 * 1024})
    async with Outbox(tmp_path / "capped.db", capped, FakeClock()) as outbox:
        for n in range(40):
            await outbox.accept([event(f"e{n}", size=4000)])
        leased = await outbox.lease(100)
    losses = [_check_loss(e.payload) for e in leased if e.kind == LOSS_KIND]
    assert losses
    assert {x.reason for loss in losses for x in loss.losses} == {"evicted"}


async def test_corrupt_store_report_parses(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    db.write_bytes(b"this is not an sqlite file at all" * 200)
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        leased = await outbox.lease(10)
    (row,) = leased
    loss = _check_loss(row.payload)
    assert loss.reason == "store_corrupt"
    assert loss.quarantined is not None
    (moved,) = loss.quarantined  # the file only: it had no -wal or -shm beside it
    assert Path(moved).name.startswith("outbox.db.corrupt-")
    assert loss.count == 0
    assert loss.first_row_id is None


def test_the_events_package_does_not_pull_in_the_uplink() -> None:
    """Domain packages import gateway.events; they must not load the MQTT stack through it
    (which is why GatewayStatus is mirrored here rather than re-exported from the uplink)."""
    code = (
        "import sys, gateway.events\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paho', 'aiomqtt')"
        " or m.startswith('gateway.uplink')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
