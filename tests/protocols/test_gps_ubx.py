"""UBX NAV-PVT frames (built with pyubx2, as a u-blox receiver sends them) into position fixes."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyubx2 import GET, UBXMessage

from protocols.gps import (
    FixQuality,
    GpsError,
    GpsRejectReason,
    PositionFix,
    build_ubx_nav_pvt,
    decode_ubx,
)

UTC = datetime.UTC


def _nav_pvt(**fields: object) -> bytes:
    base: dict[str, object] = {
        "iTOW": 432_000_000,
        "year": 2026,
        "month": 11,
        "day": 24,
        "hour": 1,
        "min": 2,
        "second": 3,
        "nano": 250_000_000,
        "validDate": 1,
        "validTime": 1,
        "fullyResolved": 1,
        "fixType": 3,
        "gnssFixOk": 1,
        "numSV": 11,
        "lat": 53.5511,
        "lon": 9.9937,
        "height": 52_000,
        "hMSL": 8_000,
        "gSpeed": 13_890,
        "headMot": 87.25,
        "pDOP": 1.3,
    }
    base.update(fields)
    return bytes(UBXMessage("NAV", "NAV-PVT", GET, **base).serialize())


def test_nav_pvt() -> None:
    fix = decode_ubx(_nav_pvt())
    assert fix == PositionFix(
        format="ubx-nav-pvt",
        time=datetime.datetime(2026, 11, 24, 1, 2, 3, 250_000, tzinfo=UTC),
        time_of_day=datetime.time(1, 2, 3, 250_000, tzinfo=UTC),
        lat=53.5511,
        lon=9.9937,
        alt_m=8.0,
        speed_mps=13.89,
        heading_deg=87.25,
        fix=FixQuality.FIX_3D,
        num_sats=11,
        hdop=None,
    )


@pytest.mark.parametrize(
    ("fields", "quality"),
    [
        ({"fixType": 2}, FixQuality.FIX_2D),
        ({"fixType": 1}, FixQuality.DEAD_RECKONING),
        ({"diffSoln": 1}, FixQuality.DGPS),
        ({"diffSoln": 1, "carrSoln": 1}, FixQuality.RTK_FLOAT),
        ({"diffSoln": 1, "carrSoln": 2}, FixQuality.RTK_FIXED),
        ({"gnssFixOk": 0}, FixQuality.NONE),
    ],
)
def test_fix_quality(fields: dict[str, int], quality: FixQuality) -> None:
    assert decode_ubx(_nav_pvt(**fields)).fix is quality


def test_no_fix_has_no_position_and_unknown_time_is_none() -> None:
    fix = decode_ubx(_nav_pvt(fixType=0, gnssFixOk=0, validDate=0))
    assert (fix.lat, fix.lon, fix.alt_m, fix.time, fix.fix) == (None, None, None, None, "none")


def test_bad_checksum_and_other_messages() -> None:
    frame = bytearray(_nav_pvt())
    frame[20] ^= 0x01
    with pytest.raises(GpsError) as exc:
        decode_ubx(bytes(frame))
    assert exc.value.reason is GpsRejectReason.BAD_CHECKSUM
    ack = bytes(UBXMessage("ACK", "ACK-ACK", GET, clsID=6, msgID=1).serialize())
    with pytest.raises(GpsError) as exc:
        decode_ubx(ack)
    assert exc.value.reason is GpsRejectReason.UNSUPPORTED_MESSAGE
    with pytest.raises(GpsError) as exc:
        decode_ubx(_nav_pvt()[:-3])
    assert exc.value.reason is GpsRejectReason.MALFORMED


@settings(max_examples=60)
@given(
    when=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1),
        max_value=datetime.datetime(2099, 12, 31),
        timezones=st.just(UTC),
    ),
    lat=st.integers(-900_000_000, 900_000_000).map(lambda raw: raw / 1e7),
    lon=st.integers(-1_800_000_000, 1_800_000_000).map(lambda raw: raw / 1e7),
    alt_mm=st.integers(-400_000, 9_000_000),
    speed_mm_s=st.integers(0, 100_000),
    heading=st.integers(0, 35_999).map(lambda c: c / 100),
    quality=st.sampled_from([FixQuality.FIX_2D, FixQuality.FIX_3D, FixQuality.RTK_FIXED]),
    num_sats=st.integers(0, 40),
)
def test_build_then_decode_round_trip(
    when: datetime.datetime,
    lat: float,
    lon: float,
    alt_mm: int,
    speed_mm_s: int,
    heading: float,
    quality: FixQuality,
    num_sats: int,
) -> None:
    fix = PositionFix(
        format="ubx-nav-pvt",
        time=when,
        time_of_day=when.timetz(),
        lat=lat,
        lon=lon,
        alt_m=alt_mm / 1000,
        speed_mps=speed_mm_s / 1000,
        heading_deg=heading,
        fix=quality,
        num_sats=num_sats,
    )
    assert decode_ubx(build_ubx_nav_pvt(fix)) == fix


@settings(max_examples=300)
@given(
    payload=st.binary(max_size=120) | st.binary(min_size=92, max_size=92),
    class_id=st.sampled_from([b"\x01\x07", b"\x05\x01"]),
)
def test_fuzz_decode_ubx(payload: bytes, class_id: bytes) -> None:
    from pyubx2 import calc_checksum

    body = class_id + len(payload).to_bytes(2, "little") + payload
    for frame in (b"\xb5\x62" + body + calc_checksum(body), b"\xb5\x62" + body + b"\x00\x00"):
        reason: GpsRejectReason | None = None
        try:
            fix = decode_ubx(frame)
        except GpsError as exc:  # the only error allowed out of a decoder
            reason = exc.reason
        if reason is None:
            assert fix.format == "ubx-nav-pvt"
        else:
            assert isinstance(reason, GpsRejectReason)
