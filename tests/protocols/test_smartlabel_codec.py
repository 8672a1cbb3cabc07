"""SmartLabel ``decode`` / ``build``: golden bytes, every reject reason, round trips.

The golden frames here are assembled independently of the codec, with ``struct.pack`` straight
from the byte tables of docs/protocol.md, so a layout mistake in the construct tables cannot
hide behind a round trip.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.smartlabel import (
    HISTORY_MAX_READINGS,
    LABEL_TO_GATEWAY,
    Ack,
    Environment,
    GpsFix,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    LabelConfig,
    Message,
    Nack,
    NackReason,
    RejectReason,
    Shock,
    Status,
    TimeSource,
    TimeSync,
    build,
    build_body,
)
from protocols.smartlabel.codec import decode
from protocols.smartlabel.errors import BuildError, FrameError
from protocols.smartlabel.messages import GATEWAY_TO_LABEL
from protocols.smartlabel.wire import MAX_BODY_BYTES, MessageType
from tests.protocols.smartlabel_strategies import STRATEGIES, messages

LABEL = 0x0123_4567_89AB_CDEF
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _frame(msg_type: int, payload: bytes, *, version: int = 1, seq: int = 7) -> bytes:
    """A frame body by hand: header, payload, CRC-16/IBM-3740 little-endian."""
    body = struct.pack("<BBQII", version, msg_type, LABEL, seq, T0) + payload
    return body + struct.pack("<H", crc_hqx(body, 0xFFFF))


def _wire(body: bytes) -> bytes:
    return bytes(cobs.encode(body)) + b"\x00"


def test_every_message_class_has_a_strategy_and_a_direction() -> None:
    assert set(STRATEGIES) == set(LABEL_TO_GATEWAY) | set(GATEWAY_TO_LABEL)
    assert not set(LABEL_TO_GATEWAY) & set(GATEWAY_TO_LABEL)
    assert {cls.msg_type for cls in STRATEGIES} == set(MessageType)
    assert all(up.msg_type < 0x80 for up in LABEL_TO_GATEWAY)
    assert all(down.msg_type >= 0x80 for down in GATEWAY_TO_LABEL)
    assert len({cls.format for cls in STRATEGIES}) == len(STRATEGIES)


def test_environment_golden_bytes() -> None:
    body = _frame(0x02, struct.pack("<hH", -1234, 5678))
    msg = Environment(LABEL, 7, T0, -12.34, 56.78)
    assert build_body(msg) == body
    assert build(msg) == _wire(body)
    assert decode(body) == msg


def test_gps_golden_bytes_with_sentinels() -> None:
    payload = struct.pack(
        "<iiiHHHBI", 525_200_066, -134_049_540, -0x8000_0000, 0xFFFF, 27_150, 90, 0xFF, T0 - 2
    )
    body = _frame(0x01, payload)
    msg = GpsFix(LABEL, 7, T0, 52.5200066, -13.404954, None, None, 271.5, 0.9, None, T0 - 2)
    assert build_body(msg) == body
    assert decode(body) == msg


def test_shock_golden_bytes_carry_a_60_g_drop() -> None:
    # 60 g does not fit 16 bits of mg: the peaks are 32-bit on the wire (docs/protocol.md 6.3).
    body = _frame(0x03, struct.pack("<iiiHH", 4_500, -3_000, 60_000, 12, 2_000))
    msg = Shock(LABEL, 7, T0, 4_500, -3_000, 60_000, 12, 2_000)
    assert build_body(msg) == body
    assert decode(body) == msg


def test_status_and_history_golden_bytes() -> None:
    status = _frame(0x04, struct.pack("<HBBBHHI", 2950, 1, 4, 2, 0b1001, 3, 86_400))
    assert decode(status) == Status(LABEL, 7, T0, 2950, "1.4.2", 0b1001, 3, 86_400)
    readings = struct.pack("<IhHIhH", T0 - 600, 412, 8000, T0 - 300, -0x8000, 0xFFFF)
    history = _frame(0x05, b"\x02" + readings)
    assert decode(history) == HistoryBatch(
        LABEL,
        7,
        T0,
        (HistoryReading(T0 - 600, 4.12, 80.0), HistoryReading(T0 - 300, None, None)),
    )


def test_downlink_golden_bytes() -> None:
    assert build_body(Ack(LABEL, 7, T0, 41)) == _frame(0x81, struct.pack("<I", 41))
    assert build_body(Nack(LABEL, 7, T0, 41, NackReason.BUSY)) == _frame(
        0x82, struct.pack("<IB", 41, 1)
    )
    sync = TimeSync(LABEL, 7, T0, T0 * 1000 + 250, TimeSource.GPS)
    assert build_body(sync) == _frame(0x83, struct.pack("<QB", T0 * 1000 + 250, 3))
    config = LabelConfig(LABEL, 7, T0, 12, 300, 3600, 2.0, 8.0, None, 2500)
    assert build_body(config) == _frame(
        0x84, struct.pack("<HHHhhHH", 12, 300, 3600, 200, 800, 0xFFFF, 2500)
    )


def test_heartbeat_is_header_and_crc_only() -> None:
    body = build_body(Heartbeat(LABEL, 7, T0))
    assert len(body) == 20
    assert body == _frame(0x06, b"")


def _reason(frame: bytes) -> RejectReason:
    with pytest.raises(FrameError) as info:
        decode(frame)
    return info.value.reason


def test_reject_reasons() -> None:
    good = _frame(0x02, struct.pack("<hH", 100, 200))
    assert _reason(good[:19]) is RejectReason.TRUNCATED
    assert _reason(b"") is RejectReason.TRUNCATED
    corrupt = bytearray(good)
    corrupt[19] ^= 0x10
    assert _reason(bytes(corrupt)) is RejectReason.BAD_CRC
    assert (
        _reason(_frame(0x02, struct.pack("<hH", 1, 2), version=2)) is RejectReason.UNKNOWN_VERSION
    )
    assert _reason(_frame(0x7F, b"")) is RejectReason.UNKNOWN_TYPE
    assert _reason(_frame(0x02, struct.pack("<hHB", 1, 2, 3))) is RejectReason.BAD_LENGTH
    assert _reason(_frame(0x02, b"\x01")) is RejectReason.BAD_LENGTH
    assert _reason(_frame(0x05, b"\x03" + bytes(16))) is RejectReason.BAD_LENGTH
    assert _reason(_frame(0x05, b"\x00")) is RejectReason.BAD_VALUE
    assert _reason(_frame(0x82, struct.pack("<IB", 1, 99))) is RejectReason.BAD_VALUE
    assert _reason(_frame(0x83, struct.pack("<QB", 1, 4))) is RejectReason.BAD_VALUE
    lat_91 = struct.pack("<iiiHHHBI", 910_000_000, 0, 0, 0, 0, 0, 0, 0)
    assert _reason(_frame(0x01, lat_91)) is RejectReason.BAD_VALUE
    heading_360 = struct.pack("<iiiHHHBI", 0, 0, 0, 0, 36_000, 0, 0, 0)
    assert _reason(_frame(0x01, heading_360)) is RejectReason.BAD_VALUE
    assert _reason(bytes(MAX_BODY_BYTES + 1)) is RejectReason.TOO_LONG


def test_frame_error_is_a_protocol_error_with_data() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(b"\x01\x02")
    assert isinstance(info.value, FrameError)
    assert info.value.reason is RejectReason.TRUNCATED
    assert "20" in info.value.detail


def test_largest_history_batch_fits_the_maximum_frame() -> None:
    readings = tuple(HistoryReading(T0 + i, 1.0, 2.0) for i in range(HISTORY_MAX_READINGS))
    msg = HistoryBatch(LABEL, 1, T0, readings)
    body = build_body(msg)
    assert len(body) <= MAX_BODY_BYTES
    assert decode(body) == msg
    with pytest.raises(BuildError):
        build(HistoryBatch(LABEL, 1, T0, (*readings, readings[0])))
    with pytest.raises(BuildError):
        build(HistoryBatch(LABEL, 1, T0, ()))


@pytest.mark.parametrize(
    "msg",
    [
        Environment(LABEL, 1, T0, 400.0, 1.0),  # beyond int16 centi-degrees
        Environment(LABEL, 1, T0, -327.68, 1.0),  # the "not available" code itself
        Environment(LABEL, -1, T0, 1.0, 1.0),  # negative sequence number
        Environment(1 << 64, 1, T0, 1.0, 1.0),  # label id wider than 64 bits
        Status(LABEL, 1, T0, 3000, "1.4", 0, 0, 0),
        Status(LABEL, 1, T0, 3000, "1.4.256", 0, 0, 0),
        GpsFix(LABEL, 1, T0, 91.0, 0.0, None, None, None, None, None, T0),
    ],
)
def test_build_rejects_values_outside_the_wire_range(msg: Message) -> None:
    with pytest.raises(BuildError) as info:
        build(msg)
    assert info.value.message_format == msg.format


def test_build_rejects_a_foreign_object() -> None:
    with pytest.raises(BuildError):
        build(HistoryReading(T0, 1.0, 2.0))  # type: ignore[arg-type]


def test_build_quantises_to_the_wire_resolution() -> None:
    msg = Environment(LABEL, 1, T0, 21.456, 40.004)
    decoded = decode(build_body(msg))
    assert isinstance(decoded, Environment)
    assert decoded.temperature_c == 21.46
    assert decoded.humidity_pct == 40.0


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.format)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_every_message_type(cls: type, data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[cls])
    body = build_body(msg)
    assert decode(body) == msg
    wire = build(msg)
    assert wire.endswith(b"\x00")
    assert b"\x00" not in wire[:-1]
    assert bytes(cobs.decode(wire[:-1])) == body


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=MAX_BODY_BYTES + 8))
def test_fuzz_decode_raises_only_frame_errors(frame: bytes) -> None:
    try:
        msg: Message | None = decode(frame)
    except FrameError as exc:
        msg, reason = None, exc.reason
    if msg is None:
        assert isinstance(reason, RejectReason)
    else:
        assert build_body(msg) == frame  # anything accepted is exactly what build would send


@settings(max_examples=200, deadline=None)
@given(msg=messages, position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_fuzz_decode_of_valid_frames_with_one_byte_changed(
    msg: Message, position: int, value: int
) -> None:
    """Behind a valid CRC the header and payload checks still hold: re-sign the mutated body."""
    body = bytearray(build_body(msg))
    body[position % (len(body) - 2)] = value
    body[-2:] = crc_hqx(body[:-2], 0xFFFF).to_bytes(2, "little")
    reason = None
    try:
        decode(bytes(body))
    except FrameError as exc:
        reason = exc.reason
    assert reason in {
        None,
        RejectReason.UNKNOWN_VERSION,
        RejectReason.UNKNOWN_TYPE,
        RejectReason.BAD_LENGTH,
        RejectReason.BAD_VALUE,
    }
