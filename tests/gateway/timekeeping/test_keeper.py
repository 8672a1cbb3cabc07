"""The time keeper with a fake clock whose wall time jumps: sources, precedence, stamps that
never go backwards, holdover, and correction of events stamped before a trusted source."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gps import TIME_HOLDOVER_S, TrustedTime
from gateway.events import ClockRef, Event, EventSource, TimeSource, make_event_id
from gateway.timekeeping import BACKSTEP_HOLD_MAX_S, ClockState, Stamp, TimeKeeper
from tests.gateway.timekeeping.helpers import (
    BOOT_ID,
    RTC_RESET,
    START_MONO,
    JumpyClock,
    true_time,
)


class Ntp:
    """The injected NTP probe: what the kernel would say."""

    def __init__(self, synced: bool = False) -> None:
        self.synced = synced

    def __call__(self) -> bool:
        return self.synced


def state(tk: TimeKeeper) -> ClockState:
    """The keeper's state, read afresh (mypy would keep a narrowed property across calls)."""
    return tk.state


def keeper(clock: JumpyClock, ntp: Ntp | None = None) -> TimeKeeper:
    return TimeKeeper(clock, boot_id=BOOT_ID, ntp_synchronized=ntp)


def gps_at(monotonic: float, error_s: float = 0.0) -> TrustedTime:
    return TrustedTime(true_time(monotonic) + timedelta(seconds=error_s), monotonic)


def event_json(stamp: Stamp, device: str = "ibeacon:1") -> bytes:
    return Event(
        event_id=make_event_id("presence.enter", "gw-1", device, "door-3"),
        kind="presence.enter",
        gateway_id="gw-1",
        time=stamp.time,
        time_source=stamp.source,
        clock_ref=stamp.clock_ref,
        source=EventSource(device=device, via="hci0", zone="door-3"),
    ).to_json_bytes()


def test_unsynced_at_start_stamps_from_the_start_sample_with_a_clock_ref() -> None:
    clock = JumpyClock()
    tk = keeper(clock)
    assert state(tk) is ClockState.UNSYNCED
    stamp = tk.stamp(START_MONO + 5)
    assert stamp == Stamp(
        RTC_RESET + timedelta(seconds=5),
        TimeSource.UNSYNCED,
        ClockRef(boot_id=BOOT_ID, monotonic_s=START_MONO + 5),
    )


def test_a_jumping_wall_clock_never_reorders_unsynced_stamps() -> None:
    clock = JumpyClock()
    tk = keeper(clock, Ntp(synced=False))
    times = []
    for i, wall in enumerate([datetime(2031, 5, 5, tzinfo=UTC), RTC_RESET, datetime(1970, 1, 2)]):
        clock.advance(1.0)
        clock.set_wall(wall.replace(tzinfo=UTC))  # RTC reset, NTP step, a bad manual set
        tk.refresh(clock.monotonic())
        times.append(tk.stamp(clock.monotonic()).time)
        assert times[-1] == RTC_RESET + timedelta(seconds=i + 1)
    assert times == sorted(times)


def test_ntp_synchronized_uses_the_system_clock() -> None:
    clock = JumpyClock(wall=true_time(START_MONO))
    ntp = Ntp(synced=False)
    tk = keeper(clock, ntp)
    ntp.synced = True
    clock.advance(2)
    tk.refresh(clock.monotonic())
    assert state(tk) is ClockState.NTP
    assert tk.stamp(clock.monotonic() + 0.5) == Stamp(
        true_time(clock.monotonic() + 0.5), TimeSource.NTP, None
    )
    ntp.synced = False
    tk.refresh(clock.monotonic())
    assert state(tk) is ClockState.UNSYNCED
    # Free-running from the last trusted offset: continuous, but marked unsynced.
    stamp = tk.stamp(clock.monotonic() + 1)
    assert (stamp.time, stamp.source) == (true_time(clock.monotonic() + 1), TimeSource.UNSYNCED)


def test_a_small_step_back_is_held_so_stamps_never_go_backwards() -> None:
    clock = JumpyClock(wall=true_time(START_MONO))
    tk = keeper(clock, Ntp(synced=True))
    tk.refresh(clock.monotonic())
    before = tk.stamp(clock.monotonic())
    clock.set_wall(clock.now() - timedelta(seconds=1.0))  # NTP steps the clock back 1 s
    tk.refresh(clock.monotonic())
    held = [tk.stamp(clock.monotonic() + dt) for dt in (0.1, 0.5, 0.9)]
    assert all(s.time == before.time for s in held)
    moving = tk.stamp(clock.monotonic() + 1.5)
    assert moving.time == before.time + timedelta(seconds=0.5)
    assert tk.stats.steps_back == 0


def test_a_large_step_back_wins_and_is_counted() -> None:
    clock = JumpyClock(wall=datetime(2027, 1, 1, tzinfo=UTC))  # NTP from a wrong server
    ntp = Ntp(synced=True)
    tk = keeper(clock, ntp)
    tk.refresh(clock.monotonic())
    tk.stamp(clock.monotonic())
    clock.advance(1)
    tk.on_gps(gps_at(clock.monotonic()), clock.monotonic())  # GPS: it is really November 2026
    assert state(tk) is ClockState.GPS
    assert tk.stamp(clock.monotonic()).time == true_time(clock.monotonic())
    assert tk.stats.steps_back == 1
    assert (datetime(2027, 1, 1, tzinfo=UTC) - true_time(0)).total_seconds() > BACKSTEP_HOLD_MAX_S


def test_gps_beats_ntp_until_its_holdover_ends() -> None:
    clock = JumpyClock(wall=true_time(START_MONO) + timedelta(seconds=0.4))
    ntp = Ntp(synced=True)
    tk = keeper(clock, ntp)
    tk.refresh(clock.monotonic())
    assert tk.stamp(clock.monotonic()).time == true_time(clock.monotonic()) + timedelta(seconds=0.4)
    clock.advance(1)
    fix_mono = clock.monotonic()
    tk.on_gps(gps_at(fix_mono), fix_mono)
    assert state(tk) is ClockState.GPS
    clock.advance(1)
    # The NTP clock is 0.4 s ahead: GPS is right, and the earlier stamp holds time still.
    assert tk.stamp(clock.monotonic()).time >= true_time(clock.monotonic())
    clock.advance(10)
    assert tk.stamp(clock.monotonic()) == Stamp(true_time(clock.monotonic()), TimeSource.GPS, None)
    clock.advance(TIME_HOLDOVER_S - 11)
    tk.refresh(clock.monotonic())
    assert state(tk) is ClockState.GPS  # tunnel: still GPS time within the holdover
    clock.advance(2)
    tk.refresh(clock.monotonic())
    assert state(tk) is ClockState.NTP
    ntp.synced = False
    tk.refresh(clock.monotonic())
    assert state(tk) is ClockState.UNSYNCED


def test_gps_lost_and_implausible_gps_times() -> None:
    clock = JumpyClock()
    tk = keeper(clock)
    tk.on_gps(gps_at(clock.monotonic()), clock.monotonic())
    assert state(tk) is ClockState.GPS
    tk.on_gps(None, clock.monotonic())
    assert state(tk) is ClockState.UNSYNCED
    rollover = TrustedTime(true_time(clock.monotonic()) - timedelta(weeks=1024), clock.monotonic())
    tk.on_gps(rollover, clock.monotonic())
    assert (state(tk), tk.stats.gps_refused) == (ClockState.UNSYNCED, 1)
    naive = TrustedTime(true_time(clock.monotonic()).replace(tzinfo=None), clock.monotonic())
    tk.on_gps(naive, clock.monotonic())
    assert (state(tk), tk.stats.gps_refused) == (ClockState.UNSYNCED, 2)


def test_a_probe_that_raises_is_counted_as_not_synchronised() -> None:
    def broken() -> bool:
        raise OSError("adjtimex went away")

    tk = TimeKeeper(JumpyClock(), boot_id=BOOT_ID, ntp_synchronized=broken)
    tk.refresh(START_MONO)
    assert (state(tk), tk.stats.probe_failures) == (ClockState.UNSYNCED, 1)


def test_unsynced_events_are_corrected_once_gps_appears() -> None:
    clock = JumpyClock()
    tk = keeper(clock, Ntp())
    payloads = []
    for wall in (datetime(2031, 1, 1, tzinfo=UTC), RTC_RESET):
        clock.advance(3)
        clock.set_wall(wall)  # the wall clock jumps around between the events
        payloads.append(event_json(tk.stamp(clock.monotonic()), device=f"tag{wall.year}"))
    assert tk.correct_payload(payloads[0]) is payloads[0]  # nothing trusted yet
    clock.advance(60)
    tk.on_gps(gps_at(clock.monotonic()), clock.monotonic())
    fresh = tk.stamp(clock.monotonic())
    corrected = [tk.correct_payload(p) for p in payloads]
    events = [Event.model_validate_json(c) for c in corrected]  # still a valid event
    assert [e.time for e in events] == [true_time(START_MONO + 3), true_time(START_MONO + 6)]
    assert all(e.time_source is TimeSource.GPS and e.time_corrected for e in events)
    assert all(e.clock_ref is None for e in events)
    originals = [json.loads(p) for p in payloads]
    for original, event in zip(originals, events, strict=True):
        assert event.event_id == original["event_id"]  # the id never includes time
        assert event.source.model_dump() == original["source"]
    assert events[0].time < events[1].time < fresh.time
    assert tk.stats.corrected == 2
    # Idempotent: a corrected payload is synced now and is returned as it is.
    assert tk.correct_payload(corrected[0]) is corrected[0]


def test_correct_payload_leaves_everything_else_alone() -> None:
    clock = JumpyClock()
    tk = keeper(clock)
    unsynced = event_json(tk.stamp(START_MONO + 1))
    tk.on_gps(gps_at(START_MONO + 2), START_MONO + 2)
    synced = event_json(tk.stamp(START_MONO + 3))
    assert tk.correct_payload(synced) is synced
    other_boot = unsynced.replace(BOOT_ID.encode(), b"00000000-0000-0000-0000-000000000000")
    assert tk.correct_payload(other_boot) is other_boot
    nested = json.dumps(
        {"time": "x", "time_source": "ntp", "detail": {"time_source": "unsynced"}},
        separators=(",", ":"),
    ).encode()
    assert tk.correct_payload(nested) is nested
    broken = [
        b'{"time_source":"unsynced"',
        b'[{"time_source":"unsynced"}]',
        b'{"time":"t","time_source":"unsynced","clock_ref":null}',
        b'{"time":"t","time_source":"unsynced","clock_ref":{"boot_id":"%s","monotonic_s":true}}'
        % BOOT_ID.encode(),
        b'{"time":"t","time_source":"unsynced","clock_ref":{"boot_id":"%s","monotonic_s":1e999}}'
        % BOOT_ID.encode(),
        b'\xff\xfe"time_source":"unsynced"',
    ]
    for payload in broken:
        assert tk.correct_payload(payload) is payload
    assert tk.stats == tk.stats  # a snapshot, comparable
    assert (tk.stats.other_boot, tk.stats.bad_payloads, tk.stats.corrected) == (
        1,
        len(broken),
        0,
    )


@settings(max_examples=300)
@given(
    prefix=st.binary(max_size=40),
    suffix=st.binary(max_size=40),
    text=st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    ),
)
def test_fuzz_correct_payload_never_raises(prefix: bytes, suffix: bytes, text: object) -> None:
    tk = keeper(JumpyClock())
    tk.on_gps(gps_at(START_MONO), START_MONO)
    for payload in (
        prefix + b'"time_source":"unsynced"' + suffix,
        json.dumps({"time": text, "time_source": "unsynced", "clock_ref": text}).encode(),
        json.dumps(
            {"time": 1, "time_source": "unsynced", "clock_ref": {"boot_id": BOOT_ID, "x": text}}
        ).encode(),
    ):
        out = tk.correct_payload(payload)
        assert isinstance(out, bytes)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0.0, 30.0)),
        st.tuples(st.just("wall"), st.floats(-2.0, 2.0)),  # NTP keeps it within 2 s of true
        st.tuples(st.just("gps"), st.floats(-0.3, 0.3)),  # transmission-delay jitter
        st.tuples(st.just("ntp"), st.booleans()),
        st.tuples(st.just("gps-lost"), st.just(0.0)),
        st.tuples(st.just("stamp"), st.floats(0.0, 1.0)),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(ops=_ops)
def test_property_trusted_stamps_never_go_backwards(ops: list[tuple[str, object]]) -> None:
    clock = JumpyClock(wall=true_time(START_MONO))
    ntp = Ntp()
    tk = keeper(clock, ntp)
    trusted: list[datetime] = []
    unsynced: list[tuple[float, bytes]] = []
    for op, value in ops:
        if op == "advance":
            assert isinstance(value, float)
            clock.advance(value)
        elif op == "wall":
            assert isinstance(value, float)
            clock.set_wall(true_time(clock.monotonic()) + timedelta(seconds=value))
        elif op == "gps":
            assert isinstance(value, float)
            tk.on_gps(gps_at(clock.monotonic(), value), clock.monotonic())
        elif op == "ntp":
            assert isinstance(value, bool)
            ntp.synced = value
            tk.refresh(clock.monotonic())
        elif op == "gps-lost":
            tk.on_gps(None, clock.monotonic())
        else:
            assert isinstance(value, float)
            clock.advance(value)
            stamp = tk.stamp(clock.monotonic())
            if stamp.source is TimeSource.UNSYNCED:
                unsynced.append((clock.monotonic(), event_json(stamp)))
            else:
                trusted.append(stamp.time)
    assert trusted == sorted(trusted)
    assert tk.stats.steps_back == 0
    tk.on_gps(gps_at(clock.monotonic()), clock.monotonic())
    corrected = [Event.model_validate_json(tk.correct_payload(p)) for _, p in unsynced]
    # Corrected from the same trusted offset: in the order they happened, none lost.
    assert [e.time for e in corrected] == sorted(e.time for e in corrected)
    assert all(e.time_corrected for e in corrected)
    assert len(corrected) == len(unsynced)


def test_naive_times_from_a_clock_are_refused() -> None:
    class NaiveClock(JumpyClock):
        def now(self) -> datetime:
            return datetime(2026, 1, 1)

    with pytest.raises(ValueError, match="UTC-aware"):
        TimeKeeper(NaiveClock(), boot_id=BOOT_ID)
