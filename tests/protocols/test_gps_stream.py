"""A mixed NMEA + UBX byte stream: whole, split at every offset, byte by byte, with garbage and
corrupt messages; and the assembler merging one epoch's sentences into one fix."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pynmeagps import calc_checksum

from protocols.gps import (
    MAX_NMEA_LINE_BYTES,
    MAX_UBX_PAYLOAD_BYTES,
    FixAssembler,
    FixQuality,
    GpsRejected,
    GpsRejectReason,
    GpsStreamDecoder,
    PositionFix,
    build_nmea_fix,
    build_ubx_nav_pvt,
    decode_nmea,
)

UTC = datetime.UTC
# u-blox 8 / M8 receiver description examples (see test_gps_nmea.py).
UBLOX_GSV = b"$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74\r\n"
UBLOX_TXT = b"$GPTXT,01,01,02,ANTSTATUS=OK*3B\r\n"
UBLOX_GGA = b"$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B\r\n"
BAD_GGA = UBLOX_GGA.replace(b"*5B", b"*5C")

FIX = PositionFix(
    format="sim",
    time=datetime.datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC),
    lat=53.5511,
    lon=9.9937,
    alt_m=8.0,
    speed_mps=13.89,
    heading_deg=87.25,
    fix=FixQuality.FIX_3D,
    num_sats=11,
    hdop=0.8,
)
NMEA = build_nmea_fix(FIX)
UBX = build_ubx_nav_pvt(FIX)
STREAM = NMEA + UBX + UBLOX_GSV + UBLOX_TXT + UBLOX_GGA
EXPECTED_FORMATS = [
    "nmea-gga",
    "nmea-rmc",
    "nmea-vtg",
    "nmea-gsa",
    "ubx-nav-pvt",
    "nmea-gsv",
    "nmea-gga",
]


def _formats(results: list[PositionFix | GpsRejected]) -> list[str]:
    return [r.format if isinstance(r, PositionFix) else r.reason.value for r in results]


def test_whole_stream() -> None:
    decoder = GpsStreamDecoder()
    assert _formats(decoder.feed(STREAM)) == EXPECTED_FORMATS
    assert decoder.unsupported == {"sentence TXT": 1}
    assert dict(decoder.rejected) == {}
    assert decoder.pending == b""


def test_split_at_every_offset() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = GpsStreamDecoder()
        results = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert _formats(results) == EXPECTED_FORMATS, cut


def test_byte_by_byte() -> None:
    decoder = GpsStreamDecoder()
    results: list[PositionFix | GpsRejected] = []
    for i in range(len(STREAM)):
        results += decoder.feed(STREAM[i : i + 1])
    assert _formats(results) == EXPECTED_FORMATS
    assert decoder.skipped_bytes == 0


def test_garbage_before_and_between_messages_is_skipped() -> None:
    decoder = GpsStreamDecoder()
    garbage = b"\x00\xff\xb5noise\r\n"
    results = decoder.feed(garbage + NMEA + garbage + UBX + garbage)
    assert _formats(results) == EXPECTED_FORMATS[:5]
    assert decoder.skipped_bytes == 3 * len(garbage)


def test_bad_checksums_are_rejected_counted_and_the_stream_goes_on() -> None:
    decoder = GpsStreamDecoder()
    bad_ubx = bytearray(UBX)
    bad_ubx[30] ^= 0xFF
    results = decoder.feed(BAD_GGA + bytes(bad_ubx) + UBLOX_GGA + UBX)
    fixes = [r for r in results if isinstance(r, PositionFix)]
    assert [f.format for f in fixes] == ["nmea-gga", "ubx-nav-pvt"]
    rejected = [r for r in results if isinstance(r, GpsRejected)]
    assert rejected[0] == GpsRejected(GpsRejectReason.BAD_CHECKSUM, rejected[0].detail, BAD_GGA)
    assert decoder.rejected[GpsRejectReason.BAD_CHECKSUM] == 2


def test_a_sentence_cut_by_a_dropped_line_end_resyncs_on_the_next_one() -> None:
    decoder = GpsStreamDecoder()
    cut = UBLOX_GGA[:30]
    results = decoder.feed(cut + UBX + UBLOX_GGA)
    assert _formats(results) == ["malformed", "ubx-nav-pvt", "nmea-gga"]
    assert decoder.rejected == {GpsRejectReason.MALFORMED: 1}


def test_overlong_line_and_oversized_ubx_length_are_bounded() -> None:
    decoder = GpsStreamDecoder()
    results = decoder.feed(b"$" + b"A" * (MAX_NMEA_LINE_BYTES + 10))
    assert _formats(results) == ["too_long"]
    assert len(decoder.pending) <= MAX_NMEA_LINE_BYTES
    decoder = GpsStreamDecoder()
    huge = b"\xb5\x62\x01\x07" + (MAX_UBX_PAYLOAD_BYTES + 1).to_bytes(2, "little")
    assert _formats(decoder.feed(huge + UBLOX_GGA)) == ["too_long", "nmea-gga"]


@settings(max_examples=200)
@given(chunks=st.lists(st.binary(max_size=64), max_size=20))
def test_fuzz_stream_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    decoder = GpsStreamDecoder()
    for chunk in chunks:
        for result in decoder.feed(chunk):
            assert isinstance(result, PositionFix | GpsRejected)
        bound = max(MAX_NMEA_LINE_BYTES, MAX_UBX_PAYLOAD_BYTES + 8)
        assert len(decoder.pending) <= bound
    # Whatever state the noise left, a bounded amount of line noise resynchronises the decoder.
    decoder.feed(b"\n" * (MAX_UBX_PAYLOAD_BYTES + 8))
    assert _formats(decoder.feed(UBX)) == ["ubx-nav-pvt"]


@settings(max_examples=100)
@given(
    garbage=st.binary(max_size=40).filter(lambda b: b"$" not in b and b"\xb5" not in b),
    at=st.integers(0, len(STREAM)),
)
def test_fuzz_garbage_inserted_anywhere_loses_at_most_one_message(garbage: bytes, at: int) -> None:
    decoder = GpsStreamDecoder()
    results = decoder.feed(STREAM[:at] + garbage + STREAM[at:])
    # Garbage inside a UBX length field can make the decoder wait for a (bounded) payload;
    # line noise after it lets it find the frame is bad and rescan what it held back.
    results += decoder.feed(b"\n" * (MAX_UBX_PAYLOAD_BYTES + 8))
    fixes = [r.format for r in results if isinstance(r, PositionFix)]
    assert len(fixes) >= len(EXPECTED_FORMATS) - 1


def _sentence(content: str) -> str:
    """A sentence with its checksum, computed by pynmeagps."""
    return f"${content}*{calc_checksum(content)}"


def _epoch(when: datetime.datetime) -> list[PositionFix]:
    sentences = build_nmea_fix(dataclasses.replace(FIX, time=when)).splitlines()
    return [decode_nmea(line) for line in sentences]


def test_assembler_merges_an_epoch_into_one_complete_fix() -> None:
    assembler = FixAssembler()
    t0 = datetime.datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
    out: list[PositionFix] = []
    for sentence in _epoch(t0):
        out += assembler.feed(sentence)
    # The first epoch's end is only known when the next one starts (or on flush).
    assert out == []
    t1 = t0 + datetime.timedelta(seconds=1)
    for sentence in _epoch(t1):
        out += assembler.feed(sentence)
    first, second = out  # the second epoch completes as soon as its GSA arrives
    assert first.format == "nmea-fix"
    assert first.time == t0
    assert second.time == t1
    assert (first.lat, first.lon, first.alt_m) == (FIX.lat, FIX.lon, FIX.alt_m)
    assert first.speed_mps == pytest.approx(FIX.speed_mps, abs=2e-3)
    assert (first.heading_deg, first.num_sats, first.hdop) == (87.25, 11, 0.8)
    assert first.fix is FixQuality.FIX_3D  # GGA says "gps", GSA says 3D
    assert assembler.flush() == []


def test_assembler_keeps_dgps_over_3d_and_merges_multi_gnss_gsa() -> None:
    assembler = FixAssembler()
    gga = decode_nmea(_sentence("GPGGA,092725.00,4717.11399,N,00833.91590,E,2,08,1.0,499.6,M,,M,,"))
    gsa_gps = decode_nmea(_sentence("GNGSA,A,3,23,29,07,08,09,18,26,28,,,,,1.94,1.18,1.54"))
    gsa_glo = decode_nmea(_sentence("GNGSA,A,3,65,66,,,,,,,,,,,1.94,1.18,1.54"))
    for part in (gga, gsa_gps, gsa_glo):
        assert assembler.feed(part) == []
    (merged,) = assembler.flush()
    assert merged.fix is FixQuality.DGPS
    assert merged.num_sats == 8  # GGA's count of satellites in use wins over the GSA lists
    assert merged.time is None  # no RMC, so no date


def test_assembler_passes_ubx_and_flags_no_fix() -> None:
    assembler = FixAssembler()
    from protocols.gps import decode_ubx

    ubx = decode_ubx(UBX)
    assert assembler.feed(ubx) == [ubx]
    assembler.feed(decode_nmea(b"$GPRMC,,V,,,,,,,,,,N*53"))
    (merged,) = assembler.flush()
    assert merged.fix is FixQuality.NONE


_EPOCH_STARTS = [datetime.datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC) for s in range(3)]
_parts = st.sampled_from(
    [fix for when in _EPOCH_STARTS for fix in _epoch(when)]
    + [decode_nmea(b"$GPRMC,,V,,,,,,,,,,N*53")]
)


@settings(max_examples=100)
@given(parts=st.lists(_parts, max_size=30))
def test_fuzz_assembler_any_order_of_sentences(parts: list[PositionFix]) -> None:
    assembler = FixAssembler()
    out: list[PositionFix] = []
    for part in parts:
        out += assembler.feed(part)
    out += assembler.flush()
    assert all(fix.format == "nmea-fix" for fix in out)
    assert len(out) <= len(parts)
    assert bool(out) == bool(parts)
    assert assembler.flush() == []
