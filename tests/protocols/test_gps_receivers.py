"""What real receivers send besides GGA / RMC / VTG / GSA: GLL and GSV every second, NMEA 2.x
VTG without the mode field, and u-blox timing receivers' time-only NAV-PVT (fix type 5).

None of it may count as an error, split an epoch, or make ``tagrelay decode gps`` fail. The
sentences are shaped like a u-blox M8 / a SiRF-era NMEA 2.x receiver's 1 Hz output; their
checksums are computed by pynmeagps, the UBX frames are built by pyubx2.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pynmeagps import calc_checksum
from pyubx2 import GET, UBXMessage

from protocols import to_jsonable
from protocols.gps import (
    FixAssembler,
    FixQuality,
    GpsRejected,
    GpsStreamDecoder,
    PositionFix,
    SatelliteInView,
    decode_nmea,
    decode_ubx,
)

UTC = datetime.UTC
REPO_ROOT = Path(__file__).resolve().parents[2]


def _s(content: str) -> bytes:
    """One sentence with its checksum, CR LF terminated."""
    return f"${content}*{calc_checksum(content)}\r\n".encode()


# One u-blox M8 epoch (NMEA 4.x: mode fields present, GN talker for the combined solution).
def _ublox_epoch(hhmmss: str) -> list[bytes]:
    return [
        _s(f"GNRMC,{hhmmss}.00,A,5232.64013,N,01324.29710,E,0.012,,241126,,,A"),
        _s("GNVTG,,T,,M,0.012,N,0.022,K,A"),
        _s(f"GNGGA,{hhmmss}.00,5232.64013,N,01324.29710,E,1,09,0.92,34.5,M,44.9,M,,"),
        _s("GNGSA,A,3,05,13,15,18,20,23,24,,,,,,1.71,0.92,1.44"),
        _s("GNGSA,A,3,71,72,,,,,,,,,,,1.71,0.92,1.44"),
        _s("GPGSV,3,1,10,05,62,285,37,13,30,053,31,15,52,111,40,18,36,159,33"),
        _s("GPGSV,3,2,10,20,16,225,28,23,13,318,25,24,79,092,42,29,03,020,"),
        _s("GPGSV,3,3,10,30,,,19,46,29,148,"),
        _s("GLGSV,1,1,02,71,41,066,35,72,58,331,38"),
        _s(f"GNGLL,5232.64013,N,01324.29710,E,{hhmmss}.00,A,A"),
    ]


# One NMEA 2.x epoch (older SiRF / MTK style): no mode fields anywhere, VTG with units only.
def _nmea2_epoch(hhmmss: str) -> list[bytes]:
    return [
        _s(f"GPGGA,{hhmmss},4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,"),
        _s("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"),
        _s(f"GPRMC,{hhmmss},A,4807.0380,N,01131.0000,E,022.4,084.4,241126,003.1,W"),
        _s("GPVTG,084.4,T,087.5,M,022.4,N,041.5,K"),
        _s(f"GPGLL,4807.0380,N,01131.0000,E,{hhmmss},A"),
        _s("GPGSV,2,1,08,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45"),
        _s("GPGSV,2,2,08,04,11,120,,05,55,211,40,09,61,045,44,24,33,290,38"),
    ]


def _nav_pvt(**fields: object) -> bytes:
    base: dict[str, object] = {
        "iTOW": 432_000_000,
        "year": 2026,
        "month": 11,
        "day": 24,
        "hour": 6,
        "min": 0,
        "second": 1,
        "nano": 0,
        "validDate": 1,
        "validTime": 1,
        "fullyResolved": 1,
        "fixType": 5,  # time only: a timing receiver in fixed-position mode
        "gnssFixOk": 1,
        "numSV": 12,
        "lat": 0.0,
        "lon": 0.0,
    }
    base.update(fields)
    return bytes(UBXMessage("NAV", "NAV-PVT", GET, **base).serialize())


UBLOX = b"".join(_ublox_epoch("060000") + _ublox_epoch("060001") + _ublox_epoch("060002"))
NMEA2 = b"".join(_nmea2_epoch("123519") + _nmea2_epoch("123520") + _nmea2_epoch("123521"))
TIME_ONLY = _nav_pvt()


def test_gll_is_a_position_with_or_without_the_mode_field() -> None:
    gll = decode_nmea(_s("GNGLL,5232.64013,N,01324.29710,E,060000.00,A,A"))
    assert gll.format == "nmea-gll"
    assert gll.lat == pytest.approx(52 + 32.64013 / 60)
    assert gll.lon == pytest.approx(13 + 24.29710 / 60)
    assert gll.time_of_day == datetime.time(6, 0, 0, tzinfo=UTC)
    assert gll.fix is FixQuality.GPS
    old = decode_nmea(_s("GPGLL,4916.45,S,12311.12,W,225444,A"))
    assert old.lat == pytest.approx(-(49 + 16.45 / 60))
    assert old.fix is FixQuality.GPS
    assert old.lon == pytest.approx(-(123 + 11.12 / 60))
    assert decode_nmea(_s("GPGLL,,,,,225444,V,N")).fix is FixQuality.NONE
    assert decode_nmea(_s("GPGLL,4916.45,N,12311.12,W,225444,A,D")).fix is FixQuality.DGPS


def test_gsv_lists_the_satellites_in_view() -> None:
    gsv = decode_nmea(_s("GPGSV,3,2,10,20,16,225,28,23,13,318,25,24,79,092,42,29,03,020,"))
    assert (gsv.format, gsv.sats_in_view) == ("nmea-gsv", 10)
    assert gsv.satellites == (
        SatelliteInView(20, 16, 225, 28),
        SatelliteInView(23, 13, 318, 25),
        SatelliteInView(24, 79, 92, 42),
        SatelliteInView(29, 3, 20, None),  # in view, not tracked: no C/N0
    )
    assert (gsv.lat, gsv.lon, gsv.time, gsv.fix) == (None, None, None, None)
    short = decode_nmea(_s("GPGSV,3,3,10,30,,,19,46,29,148,"))
    assert short.satellites == (
        SatelliteInView(30, None, None, 19),
        SatelliteInView(46, 29, 148, None),
    )
    assert decode_nmea(_s("GPGSV,1,1,00")).satellites == ()
    # NMEA 4.11 appends the signal id: still decoded.
    nmea411 = decode_nmea(_s("GAGSV,1,1,02,04,45,120,40,09,12,300,33,7"))
    assert (nmea411.sats_in_view, len(nmea411.satellites or ())) == (2, 2)
    got = to_jsonable(gsv)
    assert got["satellites"] == [
        {"svid": 20, "elevation_deg": 16, "azimuth_deg": 225, "cno_dbhz": 28},
        {"svid": 23, "elevation_deg": 13, "azimuth_deg": 318, "cno_dbhz": 25},
        {"svid": 24, "elevation_deg": 79, "azimuth_deg": 92, "cno_dbhz": 42},
        {"svid": 29, "elevation_deg": 3, "azimuth_deg": 20, "cno_dbhz": None},
    ]


def test_nmea_2_vtg_without_the_mode_field() -> None:
    vtg = decode_nmea(_s("GPVTG,084.4,T,087.5,M,022.4,N,041.5,K"))
    assert vtg.format == "nmea-vtg"
    assert vtg.heading_deg == 84.4
    assert vtg.speed_mps == pytest.approx(41.5 / 3.6, abs=1e-3)
    assert vtg.fix is None  # no mode field: VTG says nothing about the fix
    still = decode_nmea(_s("GPVTG,,T,,M,0.000,N,0.000,K"))
    assert (still.heading_deg, still.speed_mps) == (None, 0.0)


def test_time_only_nav_pvt_is_a_valid_time_without_a_position() -> None:
    fix = decode_ubx(TIME_ONLY)
    assert fix.fix is FixQuality.TIME_ONLY
    assert fix.time == datetime.datetime(2026, 11, 24, 6, 0, 1, tzinfo=UTC)
    assert (fix.lat, fix.lon, fix.alt_m) == (None, None, None)
    assert to_jsonable(fix)["fix"] == "time-only"
    # Without gnssFixOk the receiver does not vouch for anything.
    assert decode_ubx(_nav_pvt(gnssFixOk=0)).fix is FixQuality.NONE


def _run_stream(chunks: list[bytes]) -> tuple[GpsStreamDecoder, list[PositionFix]]:
    decoder = GpsStreamDecoder()
    assembler = FixAssembler()
    merged: list[PositionFix] = []
    for chunk in chunks:
        for item in decoder.feed(chunk):
            assert not isinstance(item, GpsRejected), item
            merged += assembler.feed(item)
    merged += assembler.flush()
    return decoder, merged


@pytest.mark.parametrize(
    ("stream", "expected_seconds"),
    [(UBLOX, [0, 1, 2]), (NMEA2, [19, 20, 21])],
    ids=["ublox-nmea4", "nmea2"],
)
def test_a_receivers_full_output_is_one_fix_per_epoch_and_no_error(
    stream: bytes, expected_seconds: list[int]
) -> None:
    for chunks in ([stream], [stream[i : i + 1] for i in range(len(stream))]):
        decoder, merged = _run_stream(chunks)
        assert dict(decoder.rejected) == {}
        assert dict(decoder.unsupported) == {}
        assert decoder.skipped_bytes == 0
        # GSV (several per epoch, no time) neither splits nor completes an epoch.
        assert [f.time.second if f.time else None for f in merged] == expected_seconds
        for fix in merged:
            assert fix.format == "nmea-fix"
            assert fix.lat is not None
            assert fix.lon is not None
            assert fix.fix in {FixQuality.FIX_3D, FixQuality.GPS}
            assert fix.speed_mps is not None
            assert fix.num_sats is not None


def test_split_at_every_offset_with_time_only_ubx_interleaved() -> None:
    stream = b"".join(_ublox_epoch("060000")) + TIME_ONLY + b"".join(_ublox_epoch("060001"))
    for cut in range(len(stream) + 1):
        _decoder, merged = _run_stream([stream[:cut], stream[cut:]])
        # UBX fixes are complete and pass straight through; the first NMEA epoch is known to be
        # complete only when the next one starts.
        assert [f.format for f in merged] == ["ubx-nav-pvt", "nmea-fix", "nmea-fix"], cut
        assert merged[0].fix is FixQuality.TIME_ONLY
        assert [f.time_of_day for f in merged[1:]] == [
            datetime.time(6, 0, 0, tzinfo=UTC),
            datetime.time(6, 0, 1, tzinfo=UTC),
        ]


def test_gll_alone_is_enough_for_a_position() -> None:
    """A receiver configured to send only GLL + RMC-less output still yields positions."""
    decoder, merged = _run_stream(
        [
            _s("GPGLL,4807.0380,N,01131.0000,E,123519,A"),
            _s("GPGLL,4807.0390,N,01131.0000,E,123520,A"),
        ]
    )
    assert [f.time_of_day for f in merged] == [
        datetime.time(12, 35, 19, tzinfo=UTC),
        datetime.time(12, 35, 20, tzinfo=UTC),
    ]
    assert merged[1].lat == pytest.approx(48 + 7.039 / 60)
    assert decoder.rejected == {}


@settings(max_examples=100)
@given(
    order=st.permutations(_ublox_epoch("060000")),
    noise=st.binary(max_size=20).filter(lambda b: b"$" not in b and b"\xb5" not in b),
)
def test_fuzz_any_order_and_noise_never_raises(order: list[bytes], noise: bytes) -> None:
    decoder = GpsStreamDecoder()
    assembler = FixAssembler()
    for sentence in order:
        for item in decoder.feed(noise + sentence):
            if isinstance(item, PositionFix):
                assembler.feed(item)
    assert len(assembler.flush()) <= 1
    assert dict(decoder.unsupported) == {}


def test_decode_gps_cli_in_a_real_process() -> None:
    lines = [s.decode().strip() for s in _ublox_epoch("060000") + _nmea2_epoch("123519")]
    lines.append(TIME_ONLY.hex())
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "decode", "gps", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["format"] for o in out] == [
        "nmea-rmc",
        "nmea-vtg",
        "nmea-gga",
        "nmea-gsa",
        "nmea-gsa",
        "nmea-gsv",
        "nmea-gsv",
        "nmea-gsv",
        "nmea-gsv",
        "nmea-gll",
        "nmea-gga",
        "nmea-gsa",
        "nmea-rmc",
        "nmea-vtg",
        "nmea-gll",
        "nmea-gsv",
        "nmea-gsv",
        "ubx-nav-pvt",
    ]
    assert out[5]["sats_in_view"] == 10
    assert out[-1]["fix"] == "time-only"
    assert out[-1]["time"] == "2026-11-24T06:00:01Z"
    assert out[-1]["lat"] is None
