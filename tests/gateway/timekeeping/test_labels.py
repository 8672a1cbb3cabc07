"""SmartLabel time in gateway time: through the time sync the gateway sent, relative to the
frame header for an unsynced label, and receive time (counted) for a label whose clock is off."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gps import TrustedTime
from gateway.events import TimeSource
from gateway.timekeeping import (
    LABEL_FRAME_MAX_AGE_S,
    ClockState,
    LabelTimeIssue,
    TimeKeeper,
)
from protocols.smartlabel import SYNCED_TIME_MIN_S
from protocols.smartlabel import TimeSource as LabelTimeSource
from tests.gateway.timekeeping.helpers import BOOT_ID, START_MONO, JumpyClock, true_time

READER = "/dev/serial/by-id/usb-smartlabel-reader-if00"
LABEL = 0x5A0102030405060A
BROADCAST = 0xFFFF_FFFF_FFFF_FFFF
YEAR_S = 365 * 86_400


def gps_keeper(clock: JumpyClock) -> TimeKeeper:
    tk = TimeKeeper(clock, boot_id=BOOT_ID)
    tk.on_gps(TrustedTime(true_time(clock.monotonic()), clock.monotonic()), clock.monotonic())
    assert tk.state is ClockState.GPS
    return tk


def test_label_time_maps_through_the_broadcast_time_sync() -> None:
    clock = JumpyClock()
    tk = gps_keeper(clock)
    sync_mono = clock.monotonic() + 0.25
    sync = tk.time_sync(READER, BROADCAST, sync_mono)
    assert (sync.utc, sync.source) == (true_time(sync_mono), LabelTimeSource.GPS)
    # The label set its clock from the sync and sends a frame 300 s later, received 0.3 s on.
    label_s = int(sync.utc.timestamp())
    header = label_s + 300
    received = sync_mono + 300.3
    got = tk.label_clock(
        READER, LABEL, header, frame_time=header, received=received, broadcast_id=BROADCAST
    )
    assert got.issue is None
    assert got.stamp.source is TimeSource.GPS
    # Label time is whole seconds: within a second of the true time of the frame.
    assert abs((got.stamp.time - true_time(sync_mono + 300)).total_seconds()) < 1
    # A history reading logged 2 h before the sync maps 2 h back.
    reading = tk.label_clock(
        READER,
        LABEL,
        label_s - 7200,
        frame_time=header,
        received=received,
        broadcast_id=BROADCAST,
    )
    assert reading.issue is None
    assert abs((reading.stamp.time - true_time(sync_mono - 7200)).total_seconds()) < 1


def test_a_sync_sent_under_ntp_maps_through_monotonic_time_once_gps_corrects_ntp() -> None:
    """The label's clock carries NTP's 2 s error; mapped through the gateway's monotonic reading
    of the sync, its readings get the better (GPS) time once GPS appears."""
    clock = JumpyClock(wall=true_time(START_MONO) + timedelta(seconds=2))
    tk = TimeKeeper(clock, boot_id=BOOT_ID, ntp_synchronized=lambda: True)
    tk.refresh(clock.monotonic())
    sync = tk.time_sync(READER, LABEL, clock.monotonic())
    assert sync.source is LabelTimeSource.NTP
    label_s = sync.utc.timestamp()  # the label's clock, 2 s ahead of true time
    clock.advance(100)
    tk.on_gps(TrustedTime(true_time(clock.monotonic()), clock.monotonic()), clock.monotonic())
    got = tk.label_clock(
        READER, LABEL, int(label_s) + 50, frame_time=int(label_s) + 99, received=clock.monotonic()
    )
    assert got.issue is None
    assert got.stamp.source is TimeSource.GPS
    assert abs((got.stamp.time - true_time(START_MONO + 50)).total_seconds()) < 1


def test_a_label_synced_before_a_gateway_restart_is_checked_against_trusted_time() -> None:
    clock = JumpyClock()
    tk = gps_keeper(clock)
    received = clock.monotonic() + 5
    now_s = int(true_time(received).timestamp())
    got = tk.label_clock(READER, LABEL, now_s - 900, frame_time=now_s - 1, received=received)
    assert got.issue is None
    assert abs((got.stamp.time - true_time(received - 900)).total_seconds()) < 1


def test_a_label_years_off_is_stamped_by_receive_time_and_counted() -> None:
    clock = JumpyClock()
    tk = gps_keeper(clock)
    received = clock.monotonic() + 5
    now_s = int(true_time(received).timestamp())
    for label_now in (now_s - 3 * YEAR_S, now_s + 4 * YEAR_S, now_s + 3600):
        got = tk.label_clock(READER, LABEL, label_now - 60, frame_time=label_now, received=received)
        assert got.issue is LabelTimeIssue.LABEL_CLOCK_OFF
        assert got.stamp.time == true_time(received)
    assert tk.stats.label_time_issues == {LabelTimeIssue.LABEL_CLOCK_OFF: 3}


def test_a_sync_that_never_arrived_does_not_vouch_for_the_label() -> None:
    clock = JumpyClock()
    tk = gps_keeper(clock)
    tk.time_sync(READER, LABEL, clock.monotonic())  # unplugged: the label never got it
    received = clock.monotonic() + 10
    stale = int(true_time(received).timestamp()) - int(LABEL_FRAME_MAX_AGE_S) - 3600
    got = tk.label_clock(READER, LABEL, stale, frame_time=stale, received=received)
    assert got.issue is LabelTimeIssue.LABEL_CLOCK_OFF
    assert got.stamp.time == true_time(received)


def test_an_unsynced_label_is_placed_relative_to_the_receive_time() -> None:
    clock = JumpyClock()
    tk = gps_keeper(clock)
    received = clock.monotonic() + 3
    got = tk.label_clock(READER, LABEL, 5100, frame_time=5400, received=received)
    assert got.issue is LabelTimeIssue.LABEL_UNSYNCED
    assert got.stamp.time == true_time(received - 300)
    before_sync = tk.label_clock(
        READER, LABEL, 5100, frame_time=int(true_time(received).timestamp()), received=received
    )
    assert before_sync.issue is LabelTimeIssue.UPTIME_BEFORE_SYNC
    assert before_sync.stamp.time == true_time(received)
    after_frame = tk.label_clock(READER, LABEL, 9000, frame_time=5400, received=received)
    assert after_frame.issue is LabelTimeIssue.READING_AFTER_FRAME
    assert after_frame.stamp.time == true_time(received)
    assert tk.stats.label_time_issues == {
        LabelTimeIssue.LABEL_UNSYNCED: 1,
        LabelTimeIssue.UPTIME_BEFORE_SYNC: 1,
        LabelTimeIssue.READING_AFTER_FRAME: 1,
    }


def test_label_times_while_the_gateway_is_unsynced_carry_a_clock_ref_and_are_corrected() -> None:
    clock = JumpyClock()
    tk = TimeKeeper(clock, boot_id=BOOT_ID)
    sync = tk.time_sync(READER, BROADCAST, clock.monotonic())
    assert sync.source is LabelTimeSource.UNSYNCED  # a label ignores it: not recorded
    received = clock.monotonic() + 20
    label_now = int(true_time(received).timestamp()) + 7  # another gateway set its clock
    got = tk.label_clock(READER, LABEL, label_now - 600, frame_time=label_now, received=received)
    assert got.issue is None
    assert got.stamp.source is TimeSource.UNSYNCED
    assert got.stamp.clock_ref is not None
    assert got.stamp.clock_ref.monotonic_s == received - 600
    tk.on_gps(TrustedTime(true_time(received), received), received)
    from gateway.events import Event
    from tests.gateway.timekeeping.test_keeper import event_json

    corrected = Event.model_validate_json(tk.correct_payload(event_json(got.stamp)))
    assert corrected.time == true_time(received - 600)
    assert corrected.time_source is TimeSource.GPS


@settings(max_examples=300)
@given(
    label_time=st.integers(0, 2**32 - 1),
    frame_time=st.integers(0, 2**32 - 1),
    delay=st.floats(0, 500),  # within the GPS holdover
    synced=st.booleans(),
)
def test_fuzz_label_clock_never_raises_and_never_stamps_after_receipt(
    label_time: int, frame_time: int, delay: float, synced: bool
) -> None:
    clock = JumpyClock()
    tk = gps_keeper(clock) if synced else TimeKeeper(clock, boot_id=BOOT_ID)
    if synced:
        tk.time_sync(READER, BROADCAST, clock.monotonic())
    received = clock.monotonic() + delay
    got = tk.label_clock(
        READER, LABEL, label_time, frame_time=frame_time, received=received, broadcast_id=BROADCAST
    )
    assert got.stamp.time <= tk.stamp(received).time
    assert (got.stamp.source is TimeSource.GPS) == synced
    if label_time < SYNCED_TIME_MIN_S:
        assert got.issue is not None
