"""NMEA sentences into position fixes, on real receiver output.

Sentences: the u-blox 8 / M8 receiver description's GGA / RMC / VTG / GSA examples, and the
classic GGA / RMC pair from the NMEA reference at gpsinformation.org (123519 UTC, 48 07.038 N).
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import to_jsonable
from protocols.gps import (
    FixQuality,
    GpsError,
    GpsRejectReason,
    PositionFix,
    build_nmea_fix,
    decode_nmea,
)

UBLOX_GGA = b"$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B\r\n"
UBLOX_RMC = b"$GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A*57\r\n"
UBLOX_VTG = b"$GPVTG,77.52,T,,M,0.004,N,0.008,K,A*06\r\n"
UBLOX_GSA = b"$GPGSA,A,3,23,29,07,08,09,18,26,28,,,,,1.94,1.18,1.54*0D\r\n"
CLASSIC_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
CLASSIC_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
UTC = datetime.UTC


def test_gga() -> None:
    fix = decode_nmea(UBLOX_GGA)
    assert fix.format == "nmea-gga"
    assert fix.time is None  # GGA has no date
    assert fix.time_of_day == datetime.time(9, 27, 25, tzinfo=UTC)
    assert fix.lat == pytest.approx(47 + 17.11399 / 60)
    assert fix.lon == pytest.approx(8 + 33.91590 / 60)
    assert (fix.alt_m, fix.fix, fix.num_sats, fix.hdop) == (499.6, FixQuality.GPS, 8, 1.01)


def test_rmc_has_the_date_and_speed_in_metres_per_second() -> None:
    fix = decode_nmea(CLASSIC_RMC)
    assert fix.format == "nmea-rmc"
    assert fix.time == datetime.datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert fix.lat == pytest.approx(48 + 7.038 / 60)
    assert fix.lon == pytest.approx(11 + 31 / 60)
    assert fix.speed_mps == pytest.approx(22.4 * 1852 / 3600, abs=1e-3)
    assert fix.heading_deg == 84.4
    assert fix.fix is FixQuality.GPS


def test_vtg_and_gsa() -> None:
    vtg = decode_nmea(UBLOX_VTG)
    assert (vtg.format, vtg.heading_deg, vtg.fix) == ("nmea-vtg", 77.52, FixQuality.GPS)
    assert vtg.speed_mps == pytest.approx(0.008 / 3.6, abs=1e-3)
    gsa = decode_nmea(UBLOX_GSA)
    assert (gsa.format, gsa.fix, gsa.num_sats, gsa.hdop) == ("nmea-gsa", FixQuality.FIX_3D, 8, 1.18)


def test_southern_and_western_hemispheres_are_negative() -> None:
    fix = decode_nmea("$GPGGA,092725.00,4717.11399,S,00833.91590,W,2,08,1.01,499.6,M,48.0,M,,*57")
    assert fix.lat == pytest.approx(-(47 + 17.11399 / 60))
    assert fix.lon == pytest.approx(-(8 + 33.91590 / 60))
    assert fix.fix is FixQuality.DGPS


def test_no_fix_sentences_give_none_values() -> None:
    rmc = decode_nmea("$GPRMC,,V,,,,,,,,,,N*53")
    assert rmc == PositionFix(format="nmea-rmc", fix=FixQuality.NONE)
    gga = decode_nmea("$GPGGA,,,,,,0,00,99.99,,,,,,*48")
    assert (gga.lat, gga.time_of_day, gga.fix) == (None, None, FixQuality.NONE)


def test_json_form_of_a_position() -> None:
    got = to_jsonable(decode_nmea(CLASSIC_RMC))
    assert list(got)[:2] == ["format", "time"]
    assert got["format"] == "nmea-rmc"
    assert got["time"] == "1994-03-23T12:35:19Z"
    assert got["fix"] == "gps"
    assert got["alt_m"] is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (CLASSIC_GGA[:-2] + "48", GpsRejectReason.BAD_CHECKSUM),
        (CLASSIC_GGA.replace("545.4", "545.5"), GpsRejectReason.BAD_CHECKSUM),
        (
            "$GPTXT,01,01,02,ANTSTATUS=OK*3B",
            GpsRejectReason.UNSUPPORTED_MESSAGE,
        ),
        ("GPGGA,123519", GpsRejectReason.MALFORMED),
        ("$GPGGA,123519,4807.038", GpsRejectReason.MALFORMED),
        ("", GpsRejectReason.MALFORMED),
    ],
)
def test_bad_sentences(line: str, reason: GpsRejectReason) -> None:
    with pytest.raises(GpsError) as exc:
        decode_nmea(line)
    assert exc.value.reason is reason


_fixes = st.builds(
    PositionFix,
    format=st.just("sim"),
    time=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1),
        max_value=datetime.datetime(2068, 12, 31),
        timezones=st.just(UTC),
    ).map(lambda t: t.replace(microsecond=t.microsecond // 10_000 * 10_000)),
    lat=st.floats(-89.9, 89.9),
    lon=st.floats(-179.9, 179.9),
    alt_m=st.none() | st.integers(-400, 9000).map(lambda dm: dm / 10),
    speed_mps=st.none() | st.floats(0, 80),
    heading_deg=st.none() | st.integers(0, 35999).map(lambda c: c / 100),
    fix=st.sampled_from([FixQuality.FIX_3D, FixQuality.DGPS, FixQuality.RTK_FIXED]),
    num_sats=st.integers(4, 12),
    hdop=st.none() | st.integers(5, 500).map(lambda c: c / 100),
)


@settings(max_examples=60)
@given(fix=_fixes)
def test_build_then_decode_round_trip(fix: PositionFix) -> None:
    lines = build_nmea_fix(fix).splitlines(keepends=True)
    gga, rmc, vtg, gsa = (decode_nmea(line) for line in lines)
    # NMEA carries 1e-5 arc minutes (under 2 cm) and 0.001 knot.
    assert gga.lat == pytest.approx(fix.lat, abs=1e-6)
    assert gga.lon == pytest.approx(fix.lon, abs=1e-6)
    assert gga.alt_m == fix.alt_m
    assert gga.num_sats == fix.num_sats == gsa.num_sats
    assert gga.hdop == fix.hdop
    assert rmc.time == fix.time
    assert rmc.heading_deg == vtg.heading_deg == fix.heading_deg
    if fix.speed_mps is None:
        assert rmc.speed_mps is None
    else:
        assert rmc.speed_mps == pytest.approx(fix.speed_mps, abs=2e-3)
    assert gsa.fix is FixQuality.FIX_3D
    assert fix.fix is not None
    assert rmc.fix in {FixQuality.GPS, fix.fix}


@settings(max_examples=300)
@given(body=st.binary(max_size=90))
def test_fuzz_decode_nmea(body: bytes) -> None:
    for line in (body, b"$GP" + body, b"$GPGGA," + body):
        reason: GpsRejectReason | None = None
        try:
            fix = decode_nmea(line)
        except GpsError as exc:  # the only error allowed out of a decoder
            reason = exc.reason
        if reason is None:
            assert fix.format.startswith("nmea-")
        else:
            assert isinstance(reason, GpsRejectReason)
