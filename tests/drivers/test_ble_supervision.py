"""The BLE watchdog's decisions on a fake clock, the driver configuration and its filters."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

import pytest
from bleak.assigned_numbers import AdvertisementDataType
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.ble import (
    DEFAULT_OR_PATTERNS,
    BleConfig,
    RawAdvert,
    RecoveryAction,
    ScanMode,
    ScanSupervisor,
    or_patterns,
)
from tests.fixtures.clock import FakeClock


def make(
    restarts: int = 2, timeout_s: float = 10.0, power_cycles: int = 1
) -> tuple[FakeClock, ScanSupervisor]:
    clock = FakeClock(1000.0, datetime.fromtimestamp(1000.0, UTC))
    supervisor = ScanSupervisor(
        clock,
        silence_timeout_s=timeout_s,
        restarts_before_power_cycle=restarts,
        max_power_cycles_while_silent=power_cycles,
    )
    supervisor.scan_started()
    return clock, supervisor


def test_quiet_until_the_timeout() -> None:
    clock, supervisor = make()
    clock.advance(9.9)
    assert supervisor.check(None) is RecoveryAction.NONE
    clock.advance(0.2)
    assert supervisor.check(None) is RecoveryAction.RESTART_SCAN


def test_adverts_keep_the_watchdog_quiet() -> None:
    clock, supervisor = make()
    for _ in range(10):
        clock.advance(8.0)
        assert supervisor.check(last_event_at=clock.monotonic() - 1.0) is RecoveryAction.NONE


def silent_checks(clock: FakeClock, supervisor: ScanSupervisor, n: int) -> list[RecoveryAction]:
    actions = []
    for _ in range(n):
        clock.advance(11.0)
        actions.append(supervisor.check(None))
        supervisor.scan_started()
    return actions


R, P = RecoveryAction.RESTART_SCAN, RecoveryAction.POWER_CYCLE


def test_escalates_to_power_cycle_after_fruitless_restarts() -> None:
    clock, supervisor = make(restarts=2, power_cycles=2)
    assert silent_checks(clock, supervisor, 7) == [R, R, P, R, R, P, R]


def test_a_quiet_site_gets_one_power_cycle_then_only_restarts() -> None:
    # No tag in range at all: the default allows one power cycle per silence.
    clock, supervisor = make(restarts=2)
    assert silent_checks(clock, supervisor, 12) == [R, R, P] + [R] * 9
    assert supervisor.power_cycles_exhausted
    # A tag shows up: the ladder is re-armed for the next silence.
    clock.advance(1.0)
    heard_at = clock.monotonic()
    assert supervisor.check(heard_at) is RecoveryAction.NONE
    assert not supervisor.power_cycles_exhausted
    assert silent_checks(clock, supervisor, 4) == [R, R, P, R]


def test_power_cycles_can_be_switched_off() -> None:
    clock, supervisor = make(restarts=0, power_cycles=0)
    assert silent_checks(clock, supervisor, 5) == [R] * 5
    for _ in range(3):
        supervisor.start_failed()
    assert supervisor.before_start() is RecoveryAction.NONE


def test_data_after_a_restart_resets_the_escalation() -> None:
    clock, supervisor = make(restarts=1)
    clock.advance(11.0)
    assert supervisor.check(None) is RecoveryAction.RESTART_SCAN
    supervisor.scan_started()
    clock.advance(1.0)
    heard_at = clock.monotonic()
    clock.advance(10.5)
    # An advert arrived after the restart: the next silence starts the ladder again.
    assert supervisor.check(heard_at) is RecoveryAction.RESTART_SCAN
    assert supervisor.failures == 1


def test_failed_starts_lead_to_a_power_cycle_before_the_next_start() -> None:
    _, supervisor = make(restarts=1)
    supervisor.start_failed()
    assert supervisor.before_start() is RecoveryAction.NONE
    supervisor.start_failed()
    assert supervisor.before_start() is RecoveryAction.POWER_CYCLE
    assert supervisor.before_start() is RecoveryAction.NONE
    # A missing adapter keeps failing: it is not power cycled every few seconds forever.
    for _ in range(10):
        supervisor.start_failed()
        assert supervisor.before_start() is RecoveryAction.NONE


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(0.0, 30.0), st.booleans(), st.booleans()), min_size=1, max_size=40
    ),
    restarts=st.integers(0, 4),
    power_cycles=st.integers(0, 3),
)
def test_never_more_than_the_configured_restarts_or_power_cycles_in_a_row(
    steps: list[tuple[float, bool, bool]], restarts: int, power_cycles: int
) -> None:
    clock, supervisor = make(restarts=restarts, power_cycles=power_cycles)
    last: float | None = None
    in_a_row = 0
    cycles_in_a_row = 0
    for advance_s, heard, failed_start in steps:
        clock.advance(advance_s)
        if heard:
            last = clock.monotonic()
        if failed_start:
            supervisor.start_failed()
        action = supervisor.check(last)
        if heard and action is RecoveryAction.NONE:
            in_a_row = cycles_in_a_row = 0
        if action is RecoveryAction.RESTART_SCAN:
            in_a_row += 1
            supervisor.scan_started()
        elif action is RecoveryAction.POWER_CYCLE:
            in_a_row = 0
            cycles_in_a_row += 1
            supervisor.scan_started()
        if supervisor.before_start() is RecoveryAction.POWER_CYCLE:
            in_a_row = 0
            cycles_in_a_row += 1
        # Restarts in a row are bounded while a power cycle is left; power cycles always are.
        if not supervisor.power_cycles_exhausted:
            assert in_a_row <= restarts
        assert cycles_in_a_row <= power_cycles
        assert supervisor.failures <= restarts + 1


def test_config_defaults_and_validation() -> None:
    config = BleConfig()
    assert (config.adapter, config.mode) == ("hci0", ScanMode.ACTIVE)
    assert BleConfig.model_validate({"mode": "passive"}).mode is ScanMode.PASSIVE
    bad_configs: list[dict[str, object]] = [
        {"adapter": "wlan0"},
        {"watchdog_timeout_s": 0},
        {"queue_size": 0},
        {"extra_company_ids": [0x10000]},
        {"x": 1},
    ]
    for bad in bad_configs:
        with pytest.raises(ValidationError):
            BleConfig.model_validate(bad)
    with pytest.raises(ValidationError):
        config.adapter = "hci1"


def test_or_patterns_cover_the_decoded_formats() -> None:
    mfr = AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA
    patterns = or_patterns(BleConfig(extra_company_ids=(0x0059,)))
    assert patterns[: len(DEFAULT_OR_PATTERNS)] == list(DEFAULT_OR_PATTERNS)
    assert patterns[-1] == (0, mfr, b"\x59\x00")
    contents = {bytes(p.content_of_pattern) for p in DEFAULT_OR_PATTERNS}
    assert {b"\x4c\x00\x02\x15", b"\x99\x04", b"\xff\xff", b"\xaa\xfe", b"\xbe\xac"} == contents


def test_raw_advert_is_frozen() -> None:
    advert = RawAdvert(
        address="AA:BB:CC:DD:EE:FF",
        rssi=-50,
        manufacturer_data=MappingProxyType({1: b"x"}),
        service_data=MappingProxyType({}),
        service_uuids=(),
        name=None,
        tx_power=None,
        adapter="hci0",
        monotonic=1.0,
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(AttributeError):
        advert.rssi = -40  # type: ignore[misc]
    with pytest.raises(TypeError):
        advert.manufacturer_data[2] = b"y"  # type: ignore[index]
