"""SmartLabel frames to events, pure and on a fake clock: ids that survive resends, readings,
faults, history, shocks, status, silence, NACKs, and no exception for anything a reader sends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial import ReaderFrame
from gateway.conditions import ConditionMonitor
from gateway.events import parse_event
from gateway.outbox import EventClass
from gateway.pipeline.conditions import ConditionsBridge
from gateway.pipeline.factory import EventFactory
from gateway.pipeline.labels import BROADCAST_LABEL_ID, LabelProcessor
from gateway.registry import TagRegistry, smartlabel_tag_id
from gateway.timekeeping import TimeKeeper
from protocols.smartlabel import (
    Environment,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    Message,
    NackReason,
    Shock,
    Status,
    StatusFlags,
)
from tests.gateway.outbox.helpers import FakeClock
from tests.protocols.smartlabel_strategies import (
    environments,
    gps_fixes,
    heartbeats,
    history_batches,
    shocks,
    statuses,
)

LABEL = 0x5A4C000000010007
TAG = smartlabel_tag_id(LABEL)
PORT = "/dev/serial/by-id/reader"
T0 = 1_767_225_600


def make(clock: FakeClock, silent_after_s: float = 600.0) -> LabelProcessor:
    keeper = TimeKeeper(clock, boot_id="boot-1", ntp_synchronized=lambda: True)
    keeper.refresh(clock.monotonic())
    registry = TagRegistry()
    factory = EventFactory("gw-1", registry, keeper)
    return LabelProcessor(
        factory, keeper, clock, silent_after_s=silent_after_s, time_sync_interval_s=3600
    )


def frame(clock: FakeClock, msg: Message) -> ReaderFrame:
    return ReaderFrame(msg, PORT, "/dev/pts/3", clock.monotonic(), clock.now())


def env(
    seq: int, t: float | None = 4.5, h: float | None = 80.0, label_time: int = T0
) -> Environment:
    return Environment(LABEL, seq, label_time, t, h)


def test_an_environment_frame_is_one_reading_and_a_resend_has_the_same_id() -> None:
    clock = FakeClock()
    labels = make(clock)
    first = labels.process(frame(clock, env(7)), "door-3")
    clock.advance(5)
    again = labels.process(frame(clock, env(7)), "door-3")  # the ACK was lost
    assert first.nack is None
    (row,) = first.events
    assert row.kind == "telemetry.reading"
    assert row.event_class is EventClass.TELEMETRY
    assert again.events[0].event_id == row.event_id
    event = parse_event(row.payload)
    assert event.source.device == TAG
    assert event.source.zone == "door-3"
    assert event.model_dump()["values"] == {"temperature_c": 4.5, "humidity_pct": 80.0}


def test_a_rebooted_label_repeating_a_sequence_number_is_a_new_fact() -> None:
    clock = FakeClock()
    labels = make(clock)
    before = labels.process(frame(clock, env(1, label_time=T0)), None).events[0]
    after = labels.process(frame(clock, env(1, label_time=T0 + 86_400)), None).events[0]
    assert before.event_id != after.event_id


def test_an_impossible_value_is_a_sensor_fault_not_a_reading() -> None:
    clock = FakeClock()
    labels = make(clock)
    outcome = labels.process(frame(clock, env(3, t=300.0, h=150.0)), None)
    kinds = [parse_event(r.payload) for r in outcome.events]
    assert [e.kind for e in kinds] == ["device.status", "device.status"]
    faults = {(e.model_dump()["quantity"], e.model_dump()["value"]) for e in kinds}
    assert faults == {("temperature_c", 300.0), ("humidity_pct", 150.0)}
    assert len({r.event_id for r in outcome.events}) == 2
    assert labels.counters.sensor_faults == 2
    # One good and one bad value: the good one is still a reading.
    mixed = labels.process(frame(clock, env(4, t=5.0, h=150.0)), None)
    assert sorted(r.kind for r in mixed.events) == ["device.status", "telemetry.reading"]


def test_history_readings_are_one_event_each_with_distinct_ids() -> None:
    clock = FakeClock()
    labels = make(clock)
    readings = tuple(HistoryReading(T0 - 300 * i, 4.0 + i, None) for i in range(5, 0, -1))
    out = labels.process(frame(clock, HistoryBatch(LABEL, 9, T0, readings)), None)
    assert [r.kind for r in out.events] == ["telemetry.reading"] * 5
    assert len({r.event_id for r in out.events}) == 5


def test_a_shock_is_an_alarm_with_its_resultant_peak() -> None:
    clock = FakeClock()
    labels = make(clock)
    out = labels.process(frame(clock, Shock(LABEL, 2, T0, 4500, -3000, 60000, 8, 2000)), None)
    (row,) = out.events
    assert row.event_class is EventClass.ALARM
    shock = parse_event(row.payload).model_dump()
    assert 60.2 < shock["peak_g"] < 60.3
    assert shock["threshold_g"] == 2.0


def test_status_flags_choose_the_state() -> None:
    clock = FakeClock()
    labels = make(clock)
    low = Status(LABEL, 5, T0, 2100, "1.4.2", int(StatusFlags.LOW_BATTERY), 3, 100)
    event = parse_event(labels.process(frame(clock, low), None).events[0].payload).model_dump()
    assert event["state"] == "low_battery"
    assert event["flags"] == ("low_battery",)
    assert event["battery_mv"] == 2100


def test_frames_the_gateway_cannot_use_are_nacked_with_the_reason() -> None:
    clock = FakeClock()
    labels = make(clock)
    for label_id in (0, BROADCAST_LABEL_ID):
        out = labels.process(frame(clock, Heartbeat(label_id, 1, T0)), None)
        assert out.nack is NackReason.UNKNOWN_LABEL
        assert out.events == []
    assert labels.counters.nacks["unknown_label"] == 2


def test_a_silent_label_is_reported_once_and_its_return_too() -> None:
    clock = FakeClock()
    labels = make(clock, silent_after_s=600)
    labels.process(frame(clock, Heartbeat(LABEL, 1, T0)), None)
    clock.advance(599)
    assert labels.tick(clock.monotonic()) == []
    clock.advance(2)
    (silent,) = labels.tick(clock.monotonic())
    assert parse_event(silent.payload).model_dump()["state"] == "silent"
    clock.advance(100)
    assert labels.tick(clock.monotonic()) == []  # once, not every tick
    back = labels.process(frame(clock, Heartbeat(LABEL, 2, T0 + 700)), None)
    (recovered,) = back.events
    assert parse_event(recovered.payload).model_dump()["recovered_from"] == "silent"


def test_time_sync_is_due_once_per_interval_and_only_with_a_trusted_clock() -> None:
    clock = FakeClock()
    labels = make(clock)
    labels.process(frame(clock, Heartbeat(LABEL, 1, T0)), None)
    sync = labels.time_sync_due(LABEL, clock.monotonic())
    assert sync is not None
    assert sync.utc.tzinfo is not None
    assert labels.time_sync_due(LABEL, clock.monotonic() + 10) is None
    assert labels.time_sync_due(LABEL, clock.monotonic() + 3601) is not None
    untrusted = FakeClock()
    keeper = TimeKeeper(untrusted, boot_id="b", ntp_synchronized=lambda: False)
    plain = LabelProcessor(
        EventFactory("gw", TagRegistry(), keeper),
        keeper,
        untrusted,
        silent_after_s=600,
        time_sync_interval_s=3600,
    )
    plain.process(frame(untrusted, Heartbeat(LABEL, 1, T0)), None)
    assert plain.time_sync_due(LABEL, untrusted.monotonic()) is None


messages = st.one_of(environments, gps_fixes, heartbeats, history_batches, shocks, statuses)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, min_size=1, max_size=20))
def test_nothing_a_reader_sends_raises_and_every_event_parses(batch: list[Message]) -> None:
    clock = FakeClock()
    labels = make(clock)
    for msg in batch:
        clock.advance(1)
        outcome = labels.process(frame(clock, msg), "door-3")
        assert (outcome.nack is None) or outcome.events == []
        for row in outcome.events:
            event = parse_event(row.payload)
            assert event.event_id == row.event_id
            assert event.time.tzinfo is not None
    assert labels.tick(clock.monotonic() + 10_000) is not None


def test_event_times_come_from_the_keeper_not_the_label_clock_when_it_is_years_off() -> None:
    clock = FakeClock()
    labels = make(clock)
    ancient = env(11, label_time=1_000_000_001)  # 2001: the label's clock is far off
    event = parse_event(labels.process(frame(clock, ancient), None).events[0].payload)
    assert abs((event.time - clock.now()).total_seconds()) < 5
    assert datetime(2026, 1, 1, tzinfo=UTC) < event.time
    assert labels.counters.time_issues


def with_conditions(clock: FakeClock, profile: str = "pharma-2-8") -> LabelProcessor:
    keeper = TimeKeeper(clock, boot_id="boot-1", ntp_synchronized=lambda: True)
    keeper.refresh(clock.monotonic())
    factory = EventFactory("gw-1", TagRegistry(), keeper)
    monitor = ConditionMonitor(assignments={TAG: profile})
    bridge = ConditionsBridge(monitor, factory, clock)
    return LabelProcessor(
        factory,
        keeper,
        clock,
        silent_after_s=600,
        time_sync_interval_s=3600,
        conditions=bridge,
    )


def test_label_readings_beyond_the_profile_open_and_close_an_excursion_as_alarms() -> None:
    clock = FakeClock()
    labels = with_conditions(clock)
    kinds: list[tuple[str, EventClass, dict[str, Any]]] = []
    temps = [5.0, 6.0, 9.0, 9.5, 9.0, 7.0, 6.0]
    for seq, t in enumerate(temps, start=1):
        clock.advance(60)
        label_time = int(clock.now().timestamp())
        out = labels.process(frame(clock, env(seq, t=t, label_time=label_time)), None)
        for row in out.events:
            kinds.append((row.kind, row.event_class, parse_event(row.payload).model_dump()))
    excursions = [k for k in kinds if k[0] == "condition.excursion"]
    phases = [e[2]["phase"] for e in excursions]
    assert phases[0] == "open"
    assert phases[-1] == "close"
    assert all(e[1] is EventClass.ALARM for e in excursions)
    opened = excursions[0][2]
    assert opened["limit"] == {
        "quantity": "temperature_c",
        "bound": "high",
        "value": 8.0,
        "beyond_at_threshold": False,
    }
    assert opened["source"]["device"] == TAG
    closed = excursions[-1][2]
    assert closed["excursion_id"] == opened["excursion_id"]
    assert closed["max"] == 9.5
    assert [e[2]["revision"] for e in excursions] == list(range(len(excursions)))


def test_a_limit_that_counts_its_threshold_as_beyond_says_so_in_the_event() -> None:
    """The WHO freeze alarm is "at or below -0.5 °C": a label at -0.5 °C (now and then -0.6,
    so it is not a stuck sensor) for an hour opens it, and the event's limit tells the platform
    that -0.5 itself is beyond."""
    clock = FakeClock()
    labels = with_conditions(clock, "who-pqs-refrigerator")
    events: list[dict[str, Any]] = []
    for seq in range(1, 64):
        clock.advance(60)
        label_time = int(clock.now().timestamp())
        t = 4.0 if seq == 1 else -0.6 if seq % 7 == 0 else -0.5
        out = labels.process(frame(clock, env(seq, t=t, label_time=label_time)), None)
        events += [parse_event(row.payload).model_dump(mode="json") for row in out.events]
    opened = [e for e in events if e["kind"] == "condition.excursion" and e["phase"] == "open"]
    assert [e["limit"] for e in opened] == [
        {"quantity": "temperature_c", "bound": "low", "value": -0.5, "beyond_at_threshold": True}
    ]


def test_a_shock_beyond_the_profile_limit_is_an_alarm() -> None:
    clock = FakeClock()
    labels = with_conditions(clock, profile="parcel")
    out = labels.process(frame(clock, Shock(LABEL, 2, T0, 4500, -3000, 60000, 8, 2000)), None)
    shocks = [parse_event(r.payload).model_dump() for r in out.events]
    assert [s["kind"] for s in shocks] == ["condition.shock"]
    assert shocks[0]["alarm"] is True
    assert shocks[0]["profile"] == "parcel"
