"""device.status from the conditions bridge on a fake clock: a label's and a BLE sensor tag's
silence learned from their reporting interval, chemistry-aware low battery from status frames
and adverts, stuck readings withheld from the monitor, and the recovery from each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drivers.serial import ReaderFrame
from gateway.conditions import Chemistry, ConditionMonitor, DeviceSettings, Profile, Quantity
from gateway.conditions.presets import PRESETS
from gateway.events import EventSource, parse_event
from gateway.pipeline.conditions import ConditionsBridge
from gateway.pipeline.factory import EventFactory
from gateway.pipeline.labels import LabelProcessor
from gateway.registry import TagRegistry, smartlabel_tag_id
from gateway.timekeeping import TimeKeeper
from protocols.smartlabel import Environment, Message, Status
from tests.gateway.outbox.helpers import FakeClock

LABEL = 0x5A4C000000010042
TAG = smartlabel_tag_id(LABEL)
RUUVI = "ruuvi:c1d2e3f4a5b6"
PORT = "/dev/serial/by-id/reader"

DEVICE = DeviceSettings(
    silent_floor_s=60,
    silent_factor=4,
    battery_chemistry=Chemistry.LI_MNO2_COIN,
    stuck_after_s=600,
    stuck_readings=10,
)
PROFILE = PRESETS["pharma-2-8"].model_copy(update={"name": "cold", "device": DEVICE})


def setup(
    clock: FakeClock, assignments: dict[str, str] | None = None
) -> tuple[LabelProcessor, ConditionsBridge]:
    keeper = TimeKeeper(clock, boot_id="boot-1", ntp_synchronized=lambda: True)
    keeper.refresh(clock.monotonic())
    factory = EventFactory("gw-1", TagRegistry(), keeper)
    monitor = ConditionMonitor([Profile.model_validate(PROFILE.model_dump())], assignments)
    bridge = ConditionsBridge(monitor, factory, clock)
    labels = LabelProcessor(
        factory, keeper, clock, silent_after_s=600, time_sync_interval_s=3600, conditions=bridge
    )
    return labels, bridge


def statuses(events: list[Any]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        event = parse_event(e.payload) if hasattr(e, "payload") else e
        dumped = event.model_dump(mode="json")
        if dumped["kind"] == "device.status":
            out.append(dumped)
    return out


def send(labels: LabelProcessor, clock: FakeClock, msg: Message) -> list[Any]:
    frame = ReaderFrame(msg, PORT, "/dev/pts/3", clock.monotonic(), clock.now())
    return list(labels.process(frame, "cold-room").events)


def env(clock: FakeClock, seq: int, t: float) -> Environment:
    return Environment(LABEL, seq, int(clock.now().timestamp()), t, 60.0 + seq % 7)


def test_a_label_is_silent_after_four_reporting_intervals_and_recovers() -> None:
    clock = FakeClock()
    labels, bridge = setup(clock, {TAG: "cold"})
    for seq in range(1, 11):
        assert statuses(send(labels, clock, env(clock, seq, 5.0 + seq / 100))) == []
        clock.advance(30)
    clock.advance(-30)
    last = clock.now()
    clock.advance(119)
    assert bridge.tick(clock.monotonic()) == []
    assert labels.tick(clock.monotonic()) == []  # silence is the bridge's now
    clock.advance(1)
    (silent,) = statuses(bridge.tick(clock.monotonic()))
    assert silent["state"] == "silent"
    assert silent["silent_for_s"] == 120
    assert silent["source"]["device"] == TAG
    assert silent["source"]["via"] == PORT
    assert abs(_seconds(silent["last_seen"]) - last.timestamp()) < 0.01
    clock.advance(600)
    assert bridge.tick(clock.monotonic()) == []  # once
    out = send(labels, clock, env(clock, 11, 5.0))
    (back,) = statuses(out)
    assert back["state"] == "recovered"
    assert back["recovered_from"] == "silent"
    # The silence produced no condition event at all.
    assert [parse_event(e.payload).kind for e in out] == ["device.status", "telemetry.reading"]


def test_a_label_without_a_profile_is_still_watched_with_the_default_floor() -> None:
    clock = FakeClock()
    labels, bridge = setup(clock)
    for seq in range(1, 5):
        send(labels, clock, env(clock, seq, 5.0))
        clock.advance(30)
    clock.advance(DeviceSettings().silent_floor_s - 31)
    assert bridge.tick(clock.monotonic()) == []
    clock.advance(1)
    (silent,) = statuses(bridge.tick(clock.monotonic()))
    assert silent["state"] == "silent"


def test_status_frames_give_low_battery_by_chemistry_and_its_recovery() -> None:
    clock = FakeClock()
    labels, _ = setup(clock, {TAG: "cold"})
    found: list[dict[str, Any]] = []
    for seq, mv in enumerate([2900, 2480, 2470, 2460, 2450], start=1):
        clock.advance(3600)
        now = int(clock.now().timestamp())
        found += statuses(send(labels, clock, Status(LABEL, seq, now, mv, "1.4.2", 0, 3, 100)))
    # Every status frame is its own "ok" status; the third low reading adds low_battery.
    low = [s for s in found if s["state"] == "low_battery"]
    assert len(low) == 1
    assert low[0]["battery_mv"] == 2460
    assert "li-mno2-coin" in low[0]["detail"]
    back: list[dict[str, Any]] = []
    for seq, mv in enumerate([2700, 2700, 2700], start=10):
        clock.advance(3600)
        now = int(clock.now().timestamp())
        back += statuses(send(labels, clock, Status(LABEL, seq, now, mv, "1.4.2", 0, 3, 100)))
    (recovered,) = [s for s in back if s["state"] == "recovered"]
    assert recovered["recovered_from"] == "low_battery"
    assert recovered["battery_mv"] == 2700


def test_stuck_readings_are_a_sensor_fault_and_are_withheld_from_the_rules() -> None:
    clock = FakeClock()
    labels, bridge = setup(clock, {TAG: "cold"})
    kinds: list[str] = []
    faults: list[dict[str, Any]] = []
    # A stuck sensor repeating 9.5 °C, above the 8 °C limit, for 30 min.
    for seq in range(1, 62):
        now = int(clock.now().timestamp())
        out = send(labels, clock, Environment(LABEL, seq, now, 9.5, 60.0 + seq % 5))
        kinds += [parse_event(e.payload).kind for e in out]
        faults += [s for s in statuses(out) if s["state"] == "sensor_fault"]
        clock.advance(30)
    (fault,) = faults
    assert "condition.excursion" in kinds  # the instant rule, on the first plausible readings
    assert fault["quantity"] == "temperature_c"
    assert fault["value"] == 9.5
    # The first readings were plausible and opened the instant excursion; once stuck, the
    # repeated value no longer counts as time beyond.
    beyond = bridge.monitor.time_beyond_s(TAG, Quantity.TEMPERATURE_C, "high")
    assert beyond < 601
    out = send(labels, clock, Environment(LABEL, 99, int(clock.now().timestamp()), 5.0, 60.0))
    (recovered,) = [s for s in statuses(out) if s["state"] == "recovered"]
    assert recovered["recovered_from"] == "sensor_fault"
    assert recovered["value"] == 5.0


def test_a_ble_sensor_tag_is_watched_only_when_its_goods_have_a_profile() -> None:
    clock = FakeClock()
    _, bridge = setup(clock, {RUUVI: "cold"})
    source = EventSource(device=RUUVI, via="hci0", zone="door-3")
    other = EventSource(device="ruuvi:000000000001", via="hci0", zone="door-3")
    for _ in range(10):
        values = {"temperature_c": 4.0 + clock.monotonic() / 1e4, "battery_mv": 2400.0}
        at = clock.now()
        found = statuses(bridge.readings(RUUVI, source, values, at, clock.monotonic()))
        found += statuses(bridge.readings(other.device, other, values, at, clock.monotonic()))
        if found:
            (low,) = found
            assert low["state"] == "low_battery"
            assert low["source"]["device"] == RUUVI
        clock.advance(10)
    clock.advance(60 - 10)
    (silent,) = statuses(bridge.tick(clock.monotonic()))  # the floor: 60 s > 4 × 10 s
    assert silent["source"]["device"] == RUUVI
    assert silent["source"]["zone"] == "door-3"
    clock.advance(10_000)
    assert bridge.tick(clock.monotonic()) == []


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
