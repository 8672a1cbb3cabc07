"""chronyd's cmdmon TRACKING request and reply, on bytes recorded from a real chronyd 4.3.

The replies were recorded from ``chronyd -x`` (clock control disabled) on loopback: one
following an NTP server (stratum 2), one with no source at all, one serving its own clock
(``local stratum 10``), and its refusal of a request of protocol version 5. The request was
recorded from ``chronyc tracking``. Fuzzing: any datagram is a tracking report or a
:class:`ChronyError`, nothing else.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.chrony import (
    LOCAL_REFERENCE_ID,
    TRACKING_PACKET_BYTES,
    ChronyError,
    ChronyRejectReason,
    ChronyTracking,
    LeapStatus,
    build_tracking_reply,
    build_tracking_request,
    decode_float,
    decode_tracking_reply,
    encode_float,
)
from protocols.errors import ProtocolError
from tests.protocols.chrony_vectors import (
    BAD_VERSION,
    CHRONYC_REQUEST,
    LOCAL,
    SEQUENCE,
    SYNCED,
    UNSYNCED,
)


def test_request_is_byte_for_byte_chronycs() -> None:
    assert build_tracking_request(0x87521F63) == CHRONYC_REQUEST
    assert len(build_tracking_request(1)) == TRACKING_PACKET_BYTES == 104


def test_synced_reply_decodes_as_chronyc_printed_it() -> None:
    tracking = decode_tracking_reply(SYNCED, SEQUENCE)
    assert tracking.ref_id == 0x7F000001
    assert tracking.address == "127.0.0.1"
    assert tracking.reference_name == "127.0.0.1"
    assert tracking.stratum == 2
    assert tracking.leap_status is LeapStatus.NORMAL
    assert tracking.ref_time_ns == 1_796_320_143_635_920_681
    assert tracking.current_correction_s == pytest.approx(-5.776e-7, rel=1e-3)
    # chronyc: "System time : 0.000000578 seconds fast of NTP time".
    assert tracking.system_offset_s == pytest.approx(5.776e-7, rel=1e-3)
    assert tracking.root_delay_s == pytest.approx(2.191e-6, rel=1e-3)
    assert tracking.root_dispersion_s == pytest.approx(1.5175e-6, rel=1e-3)
    assert tracking.max_error_s == pytest.approx(5.776e-7 + 1.5175e-6 + 2.191e-6 / 2, rel=1e-3)
    assert tracking.synchronized


def test_no_source_and_local_clock_are_not_synchronised() -> None:
    unsynced = decode_tracking_reply(UNSYNCED, SEQUENCE)
    assert (unsynced.ref_id, unsynced.stratum) == (0, 0)
    assert unsynced.leap_status is LeapStatus.UNSYNCHRONISED
    assert (unsynced.root_delay_s, unsynced.root_dispersion_s) == (1.0, 1.0)
    assert not unsynced.synchronized
    local = decode_tracking_reply(LOCAL, SEQUENCE)
    assert local.ref_id == LOCAL_REFERENCE_ID
    assert (local.stratum, local.leap_status) == (10, LeapStatus.NORMAL)
    assert not local.synchronized


@pytest.mark.parametrize("recorded", [SYNCED, UNSYNCED, LOCAL])
def test_builder_writes_the_bytes_chronyd_sent(recorded: bytes) -> None:
    assert build_tracking_reply(decode_tracking_reply(recorded, SEQUENCE), SEQUENCE) == recorded


def test_refusal_carries_chronyds_status() -> None:
    with pytest.raises(ChronyError) as caught:
        decode_tracking_reply(BAD_VERSION, 7)
    assert caught.value.reason is ChronyRejectReason.REFUSED
    assert caught.value.status == 18


@pytest.mark.parametrize(
    ("datagram", "sequence", "reason"),
    [
        (SYNCED[:27], SEQUENCE, ChronyRejectReason.TOO_SHORT),
        (SYNCED[:-1], SEQUENCE, ChronyRejectReason.TOO_SHORT),
        (b"\x05" + SYNCED[1:], SEQUENCE, ChronyRejectReason.BAD_HEADER),
        (SYNCED[:1] + b"\x01" + SYNCED[2:], SEQUENCE, ChronyRejectReason.BAD_HEADER),
        (SYNCED, SEQUENCE + 1, ChronyRejectReason.NOT_OUR_REPLY),
        (SYNCED[:5] + b"\x22" + SYNCED[6:], SEQUENCE, ChronyRejectReason.NOT_OUR_REPLY),
        (SYNCED[:7] + b"\x06" + SYNCED[8:], SEQUENCE, ChronyRejectReason.NOT_OUR_REPLY),
        (SYNCED[:54] + b"\x00\x04" + SYNCED[56:], SEQUENCE, ChronyRejectReason.BAD_VALUE),
        (SYNCED[:48] + b"\x00\x09" + SYNCED[50:], SEQUENCE, ChronyRejectReason.BAD_VALUE),
        (SYNCED[:64] + b"\xff\xff\xff\xff" + SYNCED[68:], SEQUENCE, ChronyRejectReason.BAD_VALUE),
    ],
    ids=[
        "no-header",
        "truncated",
        "version-5",
        "a-request",
        "other-sequence",
        "other-command",
        "other-reply-type",
        "leap-status-4",
        "address-family-9",
        "nanoseconds-overflow",
    ],
)
def test_bad_replies_are_typed(datagram: bytes, sequence: int, reason: ChronyRejectReason) -> None:
    with pytest.raises(ChronyError) as caught:
        decode_tracking_reply(datagram, sequence)
    assert caught.value.reason is reason
    assert isinstance(caught.value, ProtocolError)


def test_float_format_matches_chronyds() -> None:
    # Words from the recorded reply: root delay and root dispersion of the unsynced chronyd.
    assert decode_float(0x04800000) == 1.0
    assert encode_float(1.0) == 0x04800000
    assert encode_float(0.0) == 0
    assert encode_float(math.nan) == 0
    assert decode_float(encode_float(1e300)) == pytest.approx(2.0**62, rel=1e-6)
    assert decode_float(encode_float(-1e300)) == -(2.0**62)


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_float_round_trip_keeps_24_bits(value: float) -> None:
    back = decode_float(encode_float(value))
    if abs(value) < 2.0**-65:  # below the smallest exponent: fewer bits, down to zero
        assert abs(back - value) <= 2.0**-87
    else:
        assert back == pytest.approx(value, rel=2.0**-23)


def _decode_or_typed_error(datagram: bytes, sequence: int) -> ChronyTracking | None:
    try:
        tracking = decode_tracking_reply(datagram, sequence)
    except ChronyError as exc:
        reason = exc.reason
        assert isinstance(reason, ChronyRejectReason)
        return None
    assert isinstance(tracking.synchronized, bool)
    assert math.isfinite(tracking.max_error_s)
    assert isinstance(tracking.reference_name, str)
    return tracking


@settings(max_examples=400)
@given(st.binary(max_size=2 * TRACKING_PACKET_BYTES), st.integers(0, 2**32 - 1))
def test_fuzz_any_datagram_is_a_report_or_a_typed_error(datagram: bytes, sequence: int) -> None:
    _decode_or_typed_error(datagram, sequence)


@settings(max_examples=400)
@given(
    st.sampled_from([SYNCED, UNSYNCED, LOCAL]),
    st.lists(st.tuples(st.integers(0, TRACKING_PACKET_BYTES - 1), st.integers(0, 255)), max_size=8),
    st.integers(0, TRACKING_PACKET_BYTES + 8),
)
def test_fuzz_corrupted_recordings(
    recorded: bytes, edits: list[tuple[int, int]], length: int
) -> None:
    datagram = bytearray(recorded + bytes(8))
    for index, value in edits:
        datagram[index] = value
    _decode_or_typed_error(bytes(datagram[:length]), SEQUENCE)


@given(
    st.builds(
        ChronyTracking,
        ref_id=st.integers(0, 2**32 - 1),
        address=st.one_of(st.none(), st.ip_addresses().map(str)),
        stratum=st.integers(0, 16),
        leap_status=st.sampled_from(LeapStatus),
        ref_time_ns=st.integers(0, 2**40 * 1_000_000_000),
        current_correction_s=st.floats(-1e6, 1e6),
        last_offset_s=st.floats(-1e6, 1e6),
        rms_offset_s=st.floats(0, 1e6),
        frequency_ppm=st.floats(-500, 500),
        residual_frequency_ppm=st.floats(-500, 500),
        skew_ppm=st.floats(0, 1e3),
        root_delay_s=st.floats(0, 100),
        root_dispersion_s=st.floats(0, 100),
        update_interval_s=st.floats(0, 1e5),
    ),
    st.integers(0, 2**32 - 1),
)
def test_built_replies_decode_to_what_was_built(tracking: ChronyTracking, sequence: int) -> None:
    back = decode_tracking_reply(build_tracking_reply(tracking, sequence), sequence)
    assert replace(back, current_correction_s=0.0, root_delay_s=0.0) == replace(
        tracking,
        current_correction_s=0.0,
        root_delay_s=0.0,
        last_offset_s=back.last_offset_s,
        rms_offset_s=back.rms_offset_s,
        frequency_ppm=back.frequency_ppm,
        residual_frequency_ppm=back.residual_frequency_ppm,
        skew_ppm=back.skew_ppm,
        root_dispersion_s=back.root_dispersion_s,
        update_interval_s=back.update_interval_s,
    )
    assert back.current_correction_s == pytest.approx(
        tracking.current_correction_s, rel=2.0**-23, abs=1e-20
    )
    assert back.root_delay_s == pytest.approx(tracking.root_delay_s, rel=2.0**-23, abs=1e-20)
