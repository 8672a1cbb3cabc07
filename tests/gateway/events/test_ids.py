"""Event ids: the same fact gives the same id (re-derived, re-sent, read back from JSON, at
another wall-clock time); another fact gives another id; the id never depends on ``time``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.events import (
    EVENT_ID_HEX_DIGITS,
    AlertType,
    Bound,
    ClockRef,
    ConditionExcursion,
    ConditionShock,
    DeliveryAlert,
    DeviceState,
    DeviceStatus,
    Event,
    ExcursionPhase,
    HandoffItem,
    HandoffReport,
    LabelFrame,
    Limit,
    Observation,
    PresenceEnter,
    PresenceExit,
    Quantity,
    RouteDeparture,
    TelemetryPosition,
    TelemetryReading,
    TimeSource,
    excursion_key,
    make_event_id,
    parse_event,
)
from tests.gateway.events import samples
from tests.gateway.events.samples import ALL_SAMPLES, GW, LABEL, T0, TAG


def test_ids_are_short_hex_and_distinct_across_the_samples() -> None:
    ids = [s.event_id for s in ALL_SAMPLES]
    assert all(len(i) == EVENT_ID_HEX_DIGITS and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_id_follows_the_documented_rule() -> None:
    """docs/events.md: the first 32 hex digits of SHA-256 over the compact JSON array
    [kind, gateway_id, identity...], times as ISO 8601. A consumer can recompute it; and the
    hash must not drift between gateway versions, or de-duplication across an upgrade fails."""

    def rule(*parts: object) -> str:
        text = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    assert HandoffReport.make_id("dock-3", session_id="HS-1") == rule(
        "handoff.report", "dock-3", "HS-1"
    )
    assert PresenceEnter.make_id("dock-3", tag="ibeacon:x", zone="door-3", first_seen=T0) == rule(
        "presence.enter", "dock-3", "ibeacon:x", "door-3", "2026-11-24T06:00:00+00:00"
    )
    assert TelemetryReading.make_id("dock-3", LabelFrame("smartlabel:01", 9, 2)) == rule(
        "telemetry.reading", "dock-3", "frame", "smartlabel:01", 9, 2
    )
    assert DeviceStatus.make_id(
        "van-1",
        Observation("ruuvi:aa", ClockRef(boot_id="b", monotonic_s=12.5)),
        DeviceState.SILENT,
    ) == rule("device.status", "van-1", "silent", "observed", "ruuvi:aa", "b", 12.5)
    assert make_event_id("handoff.report", "dock-3", "HS-1") == "34fb4991887c318657801a570838fa69"


def test_presence_visit_identity() -> None:
    first = T0
    enter = PresenceEnter.make_id(GW, tag=TAG, zone="door-3", first_seen=first)
    # Same visit, derived again (the same tag, zone and first sighting): the same id ...
    assert enter == PresenceEnter.make_id(GW, tag=TAG, zone="door-3", first_seen=first)
    # ... whatever tzinfo object spells UTC.
    parsed_first = parse_event(samples.presence_enter().to_json_bytes())
    assert isinstance(parsed_first, PresenceEnter)
    assert parsed_first.event_id == PresenceEnter.make_id(
        GW, tag=parsed_first.tag, zone=parsed_first.zone, first_seen=parsed_first.first_seen
    )
    # Another visit, zone, tag or gateway: another id; the exit of the visit is not the enter.
    others = {
        PresenceEnter.make_id(
            GW, tag=TAG, zone="door-3", first_seen=first + timedelta(milliseconds=1)
        ),
        PresenceEnter.make_id(GW, tag=TAG, zone="door-4", first_seen=first),
        PresenceEnter.make_id(GW, tag=TAG + "x", zone="door-3", first_seen=first),
        PresenceEnter.make_id("dock-4", tag=TAG, zone="door-3", first_seen=first),
        PresenceExit.make_id(GW, tag=TAG, zone="door-3", first_seen=first),
    }
    assert enter not in others
    assert len(others) == 5


def test_identity_times_are_instants_in_utc() -> None:
    """The same instant spelled in another zone is the same visit; a naive time is refused
    (it would hash differently from the same time read back from JSON)."""
    cet = timezone(timedelta(hours=1))
    assert PresenceEnter.make_id(
        GW, tag=TAG, zone="z", first_seen=T0.astimezone(cet)
    ) == PresenceEnter.make_id(GW, tag=TAG, zone="z", first_seen=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        PresenceEnter.make_id(GW, tag=TAG, zone="z", first_seen=T0.replace(tzinfo=None))


def test_time_is_not_part_of_the_id() -> None:
    """Correcting an unsynced time, or deriving the same fact later, keeps the id."""
    event = samples.presence_exit()
    later = event.model_copy(
        update={"time": event.time + timedelta(days=3), "time_source": TimeSource.GPS}
    )
    assert (
        PresenceExit.make_id(GW, tag=later.tag, zone=later.zone, first_seen=later.first_seen)
        == event.event_id
    )
    shock = samples.condition_shock()
    assert ConditionShock.make_id(GW, LabelFrame(LABEL, seq=4711)) == shock.event_id


def test_label_frame_identity() -> None:
    frame = LabelFrame(LABEL, seq=4702, index=3)
    reading = TelemetryReading.make_id(GW, frame)
    # A resend of the frame (after a lost ACK, a restart) gives the same id.
    assert reading == TelemetryReading.make_id(GW, LabelFrame(LABEL, seq=4702, index=3))
    # Each reading of a history batch is its own fact, and so is each frame and each kind.
    assert (
        len(
            {
                reading,
                TelemetryReading.make_id(GW, LabelFrame(LABEL, seq=4702, index=4)),
                TelemetryReading.make_id(GW, LabelFrame(LABEL, seq=4702)),
                TelemetryReading.make_id(GW, LabelFrame(LABEL, seq=4703, index=3)),
                TelemetryReading.make_id(GW, LabelFrame("smartlabel:00", seq=4702, index=3)),
                TelemetryPosition.make_id(GW, frame),
                ConditionShock.make_id(GW, frame),
                DeviceStatus.make_id(GW, frame, DeviceState.OK),
                DeviceStatus.make_id(GW, frame, DeviceState.SENSOR_FAULT),
            }
        )
        == 9
    )


def test_observation_identity_is_the_monotonic_stamp_not_the_wall_clock() -> None:
    ref = ClockRef(boot_id="boot-a", monotonic_s=100.5)
    device = "ruuvi:c3:1d:4a:77:90:02"
    one = TelemetryReading.make_id(GW, Observation(device, ref))
    assert one == TelemetryReading.make_id(
        GW, Observation(device, ClockRef(boot_id="boot-a", monotonic_s=100.5))
    )
    assert one != TelemetryReading.make_id(
        GW, Observation(device, ClockRef(boot_id="boot-b", monotonic_s=100.5))
    )
    assert one != TelemetryReading.make_id(
        GW, Observation(device, ClockRef(boot_id="boot-a", monotonic_s=100.75))
    )
    # A frame and an observation never collide, even with look-alike values.
    assert TelemetryReading.make_id(GW, LabelFrame(device, 100)) != TelemetryReading.make_id(
        GW, Observation(device, ClockRef(boot_id="100", monotonic_s=100))
    )


def test_excursion_phases_share_the_excursion_and_differ_in_id() -> None:
    phases = [samples.condition_excursion(p) for p in ExcursionPhase]
    assert len({p.excursion_id for p in phases}) == 1
    assert len({p.event_id for p in phases}) == 3
    # Re-deriving the close after a restart (same excursion, revision) gives the same id.
    close = phases[-1]
    assert close.event_id == ConditionExcursion.make_id(
        GW, excursion_id=close.excursion_id, phase=ExcursionPhase.CLOSE, revision=close.revision
    )
    low = Limit(quantity=Quantity.TEMPERATURE_C, bound=Bound.LOW, value=2.0)
    other = excursion_key(
        GW,
        subject=samples.ASSET,
        profile=samples.PROFILE,
        limit=low,
        rule=samples.CONSECUTIVE,
        start=close.start,
    )
    assert other != close.excursion_id


def test_custody_identities() -> None:
    item = HandoffItem.make_id(GW, session_id="S1", item="a")
    assert item == HandoffItem.make_id(GW, session_id="S1", item="a")
    assert item != HandoffItem.make_id(GW, session_id="S2", item="a")
    assert item != HandoffItem.make_id(GW, session_id="S1", item="b")
    # A session closed twice reports under one id.
    assert HandoffReport.make_id(GW, session_id="S1") == HandoffReport.make_id(GW, session_id="S1")
    assert RouteDeparture.make_id(GW, route_id="R", trip=1) != RouteDeparture.make_id(
        GW, route_id="R", trip=2
    )
    alerts = {
        DeliveryAlert.make_id(GW, alert=a, route_id="R", item="p", stop_id=s)
        for a in AlertType
        for s in ("stop-1", "stop-2", None)
    }
    assert len(alerts) == len(AlertType) * 3


@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=4),
    st.lists(st.text(max_size=12), min_size=1, max_size=4),
)
def test_different_identities_different_ids(a: list[str], b: list[str]) -> None:
    same = make_event_id("k", "gw", *a) == make_event_id("k", "gw", *b)
    assert same == (a == b)


@given(st.datetimes(timezones=st.just(UTC)), st.integers(1, 10**6))
def test_visit_start_is_resolved_to_the_microsecond(first: datetime, micros: int) -> None:
    later = first + timedelta(microseconds=micros) if first.year < 9999 else first
    ids = {
        PresenceEnter.make_id(GW, tag=TAG, zone="z", first_seen=first),
        PresenceEnter.make_id(GW, tag=TAG, zone="z", first_seen=later),
    }
    assert len(ids) == (1 if later == first else 2)


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=lambda e: e.kind)
def test_id_survives_the_wire(event: Event) -> None:
    assert parse_event(event.to_json_bytes()).event_id == event.event_id
