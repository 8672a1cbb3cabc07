"""SmartLabel framing: the splitter and the stream decoder on golden and broken streams.

Covers the published COBS and CRC vectors (``cobs`` and ``crc`` keys of the vectors file,
tests/fixtures/vectors/beacons-and-framing.json; sources cited per vector in
that file: Wikipedia's COBS encoding examples and the CRC RevEng catalogue), input whole, split
at every offset and byte by byte, garbage and dropped bytes, every reject reason counted, and a
fuzz of arbitrary byte streams with bounded buffering.
"""

from __future__ import annotations

import random
import struct
from binascii import crc_hqx
from collections import Counter
from typing import Any

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.smartlabel import (
    Ack,
    Environment,
    FrameRejected,
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
    StreamDecoder,
    TimeSource,
    TimeSync,
    build,
    build_body,
)
from protocols.smartlabel.framing import Splitter
from protocols.smartlabel.wire import CRC_CHECK_VALUE, MAX_ENCODED_BYTES, crc16
from tests.protocols.ble_vectors import vectors
from tests.protocols.smartlabel_strategies import messages

LABEL = 0x5A00_0000_0000_0042
T0 = 1_767_225_600

GOLDEN: tuple[Message, ...] = (
    GpsFix(LABEL, 1, T0, 52.5200066, 13.404954, 34.5, 12.34, 271.5, 0.9, 9, T0 - 1),
    Environment(LABEL, 2, T0 + 1, 4.25, 81.5),
    Shock(LABEL, 3, T0 + 2, 2400, -300, 61_000, 35, 2000),
    Status(LABEL, 4, T0 + 3, 2950, "1.4.2", 0b1000, 3, 86_400),
    HistoryBatch(LABEL, 5, T0 + 4, (HistoryReading(T0 - 300, 5.5, None),) * 3),
    Heartbeat(LABEL, 6, T0 + 5),
    Ack(LABEL, 1, T0, 5),
    Nack(LABEL, 2, T0, 6, NackReason.BUSY),
    TimeSync(0xFFFF_FFFF_FFFF_FFFF, 3, T0, T0 * 1000, TimeSource.NTP),
    LabelConfig(LABEL, 4, T0, 9, 300, 3600, 2.0, 8.0, None, 2500),
)
STREAM = b"".join(build(m) for m in GOLDEN)


def _vectors(key: str) -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in vectors(key)]


def _messages(items: list[Message | FrameRejected]) -> list[Message]:
    return [i for i in items if not isinstance(i, FrameRejected)]


def _rejects(items: list[Message | FrameRejected]) -> list[FrameRejected]:
    return [i for i in items if isinstance(i, FrameRejected)]


# -- published vectors ------------------------------------------------------------------------


def test_crc_is_crc16_ibm_3740() -> None:
    assert crc16(b"123456789") == CRC_CHECK_VALUE == 0x29B1


@pytest.mark.parametrize("vector", _vectors("crc"))
def test_crc_vectors(vector: dict[str, Any]) -> None:
    """Our CRC matches the catalogue entry it is named after, and only that family's check."""
    data = bytes.fromhex(vector["hex"])
    check = int(vector["expected"]["check"], 16)
    if vector["name"] == "CRC-16/IBM-3740":
        assert "CRC-16/CCITT-FALSE" in vector["aliases"]
        assert crc16(data) == check
    elif vector["expected"]["width"] == 16:
        assert crc16(data) != check


@pytest.mark.parametrize("vector", _vectors("cobs"))
def test_cobs_vectors_through_the_splitter(vector: dict[str, Any]) -> None:
    """Each vector is one encoded frame with its delimiter: whole and byte by byte."""
    wire = bytes.fromhex(vector["hex"])
    splitter = Splitter()
    whole = splitter.feed(wire)
    if vector["valid"]:
        body = bytes.fromhex(vector["expected"]["decoded_hex"])
        assert whole == _feed_bytewise(wire) == [body]
        assert bytes(cobs.encode(body)) + b"\x00" == wire
    else:
        assert whole == _feed_bytewise(wire) == []
        assert splitter.rejected[RejectReason.BAD_COBS] >= 1


def _feed_bytewise(wire: bytes) -> list[bytes]:
    splitter = Splitter()
    return [frame for i in range(len(wire)) for frame in splitter.feed(wire[i : i + 1])]


# -- golden streams ---------------------------------------------------------------------------


def test_golden_stream_whole() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(STREAM) == list(GOLDEN)
    assert sum(decoder.rejected.values()) == 0
    assert decoder.buffered == 0


def test_golden_stream_split_at_every_offset() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = StreamDecoder()
        assert decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) == list(GOLDEN), cut


def test_golden_stream_byte_by_byte() -> None:
    decoder = StreamDecoder()
    out: list[Message | FrameRejected] = []
    for i in range(len(STREAM)):
        out += decoder.feed(STREAM[i : i + 1])
    assert out == list(GOLDEN)


def test_golden_stream_in_random_pieces() -> None:
    rng = random.Random(7)
    for _ in range(50):
        decoder = StreamDecoder()
        out: list[Message | FrameRejected] = []
        pos = 0
        while pos < len(STREAM):
            step = rng.randrange(1, 64)
            out += decoder.feed(STREAM[pos : pos + step])
            pos += step
        assert out == list(GOLDEN)


def test_empty_frames_are_idle_filler() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(b"\x00\x00" + STREAM.replace(b"\x00", b"\x00\x00\x00")) == list(GOLDEN)
    assert sum(decoder.rejected.values()) == 0


def test_garbage_before_a_delimiter_is_one_reject_then_resync() -> None:
    rng = random.Random(11)
    for _ in range(100):
        garbage = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 300)))
        decoder = StreamDecoder()
        out = decoder.feed(garbage + b"\x00" + STREAM)
        assert _messages(out) == list(GOLDEN)
        assert len(_rejects(out)) == 1
        assert sum(decoder.rejected.values()) == 1


def test_garbage_glued_to_a_frame_loses_only_that_frame() -> None:
    """No delimiter between garbage and the first frame: that frame is lost, the rest decode."""
    decoder = StreamDecoder()
    out = decoder.feed(b"\x17\x42\x99" + STREAM)
    assert _messages(out) == list(GOLDEN[1:])
    assert len(_rejects(out)) == 1


def test_a_dropped_byte_loses_only_its_frame() -> None:
    frames = [build(m) for m in GOLDEN]
    for k, frame in enumerate(frames):
        for drop in range(len(frame) - 1):  # any byte but the delimiter
            damaged = frame[:drop] + frame[drop + 1 :]
            stream = b"".join(frames[:k]) + damaged + b"".join(frames[k + 1 :])
            decoder = StreamDecoder()
            out = decoder.feed(stream)
            assert _messages(out) == list(GOLDEN[:k] + GOLDEN[k + 1 :]), (k, drop)
            assert len(_rejects(out)) == 1


def test_a_dropped_delimiter_loses_the_two_frames_it_separated() -> None:
    frames = [build(m) for m in GOLDEN]
    for k in range(len(frames) - 1):
        merged = frames[k][:-1] + frames[k + 1]
        stream = b"".join(frames[:k]) + merged + b"".join(frames[k + 2 :])
        decoder = StreamDecoder()
        out = decoder.feed(stream)
        assert _messages(out) == list(GOLDEN[:k] + GOLDEN[k + 2 :]), k
        assert len(_rejects(out)) == 1
        assert sum(decoder.rejected.values()) == 1


def _signed(body: bytes) -> bytes:
    return body + struct.pack("<H", crc_hqx(body, 0xFFFF))


def _wire(body: bytes) -> bytes:
    return bytes(cobs.encode(body)) + b"\x00"


def test_every_reject_reason_is_counted_and_the_stream_goes_on() -> None:
    env = build_body(Environment(LABEL, 9, T0, 1.0, 2.0))
    header = env[:18]
    corrupt = bytearray(env)
    corrupt[18] ^= 0x01
    broken = {
        RejectReason.BAD_COBS: b"\x05\x01\x02\x00",
        RejectReason.TOO_LONG: b"\x01" * (MAX_ENCODED_BYTES + 1) + b"\x00",
        RejectReason.TRUNCATED: _wire(env[:12]),
        RejectReason.BAD_CRC: _wire(bytes(corrupt)),
        RejectReason.UNKNOWN_VERSION: _wire(_signed(b"\x02" + env[1:-2])),
        RejectReason.UNKNOWN_TYPE: _wire(_signed(header[:1] + b"\x42" + header[2:])),
        RejectReason.BAD_LENGTH: _wire(_signed(env[:-2] + b"\x00")),
        RejectReason.BAD_VALUE: _wire(_signed(header[:1] + b"\x82" + header[2:] + b"\0\0\0\0\x09")),
    }
    assert set(broken) == set(RejectReason)
    stream = b"".join(bad + build(GOLDEN[i % len(GOLDEN)]) for i, bad in enumerate(broken.values()))
    expected = [GOLDEN[i % len(GOLDEN)] for i in range(len(broken))]
    for step in (len(stream), 1, 7):
        decoder = StreamDecoder()
        out: list[Message | FrameRejected] = []
        for pos in range(0, len(stream), step):
            out += decoder.feed(stream[pos : pos + step])
        assert _messages(out) == expected
        assert [r.reason for r in _rejects(out)] == list(broken)
        assert dict(decoder.rejected) == dict.fromkeys(broken, 1)


def test_too_long_keeps_memory_bounded_and_an_excerpt() -> None:
    splitter = Splitter()
    noise = bytes(range(1, 256)) * 40  # ~10 KiB without a delimiter
    for i in range(0, len(noise), 100):
        assert splitter.feed(noise[i : i + 100]) == []
        assert splitter.buffered <= MAX_ENCODED_BYTES
    items = splitter.feed_items(b"\x00" + build(GOLDEN[1]))
    assert len(items) == 2
    reject, frame = items
    assert isinstance(reject, FrameRejected)
    assert reject.reason is RejectReason.TOO_LONG
    assert str(len(noise)) in reject.detail
    assert noise.startswith(reject.raw)
    assert 0 < len(reject.raw) <= 64
    assert frame == build_body(GOLDEN[1])
    assert splitter.rejected == Counter({RejectReason.TOO_LONG: 1})
    assert splitter.buffered == 0


def test_longest_valid_frame_passes_the_splitter() -> None:
    readings = tuple(HistoryReading(T0 + i, 0.01, 0.02) for i in range(125))
    msg = HistoryBatch(LABEL, 1, T0, readings)
    decoder = StreamDecoder()
    assert decoder.feed(build(msg)) == [msg]
    assert len(build(msg)) - 1 <= MAX_ENCODED_BYTES


# -- fuzz -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=1500), max_size=8))
def test_fuzz_stream_decoder_on_arbitrary_bytes(chunks: list[bytes]) -> None:
    decoder = StreamDecoder()
    splitter = Splitter()
    rejects = 0
    for chunk in chunks:
        out = decoder.feed(chunk)
        splitter.feed(chunk)
        rejects += len(_rejects(out))
        assert all(isinstance(i, FrameRejected | Message) for i in out)
        assert decoder.buffered <= MAX_ENCODED_BYTES
        assert splitter.buffered <= MAX_ENCODED_BYTES
    assert sum(decoder.rejected.values()) == rejects


@settings(max_examples=100, deadline=None)
@given(
    garbage=st.binary(max_size=3000),
    good=st.lists(messages, min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 200), max_size=20),
)
def test_fuzz_resync_after_arbitrary_garbage(
    garbage: bytes, good: list[Message], cuts: list[int]
) -> None:
    """Whatever came before, a delimiter and then valid frames decode exactly."""
    stream = garbage + b"\x00" + b"".join(build(m) for m in good)
    decoder = StreamDecoder()
    out: list[Message | FrameRejected] = []
    pos = 0
    for cut in cuts:
        out += decoder.feed(stream[pos : pos + cut])
        pos += cut
    out += decoder.feed(stream[pos:])
    assert _messages(out)[-len(good) :] == good
