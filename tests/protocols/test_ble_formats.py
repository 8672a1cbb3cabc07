"""BLE formats the shared vectors file does not cover, built from their published specs.

- AltBeacon: android-beacon-library AltBeaconTest.testRecognizeBeacon / BeaconParserTest
  (AltBeacon/android-beacon-library, src/test/java/org/altbeacon/beacon/), and the layout in
  github.com/AltBeacon/spec.
- Ruuvi E1: the four test cases (valid, maximum, minimum, invalid) of
  https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-e1; the spec's
  reserved bytes (shown as XX) are filled with 0x00 here.
- Ruuvi 5 invalid values: the "invalid values" case of
  https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2.
- SmartLabel: our own advert (docs/protocol.md, section 11).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.ble import (
    SMARTLABEL_COMPANY_ID,
    AdvertError,
    AdvertErrorReason,
    AltBeacon,
    IBeacon,
    Ruuvi5,
    RuuviE1,
    SmartLabelAdv,
    SmartLabelAdvFlags,
    build_smartlabel_adv,
    decode_adv_payload,
    decode_advertisement,
    decode_manufacturer,
    decode_service_data,
    service_uuid16,
)
from protocols.ble.samples import ALTBEACON_ADV, EDDYSTONE_TLM, IBEACON_MFR, RUUVI5_MFR


def test_altbeacon_from_android_beacon_library() -> None:
    (advert,) = decode_adv_payload(ALTBEACON_ADV)
    assert advert == AltBeacon(
        manufacturer_id=0x0118,
        id1="2f234454-cf6d-4a0f-adf2-f4911ba9ffa6",
        id2=1,
        id3=2,
        reference_rssi_dbm=-59,
        mfg_reserved=9,
    )


def test_altbeacon_under_any_company_id() -> None:
    data = ALTBEACON_ADV[7:]
    assert isinstance(decode_manufacturer(0x1234, data), AltBeacon)
    with pytest.raises(AdvertError) as exc:
        decode_manufacturer(0x1234, data[:-1])
    assert exc.value.reason is AdvertErrorReason.TOO_SHORT


E1_CASES = {
    "valid": (
        "E1170C5668C79E0065007004BD11CA00C90A0213E0AC000000DECDEE100000000000CBB8334C884F",
        RuuviE1(
            temperature_c=29.5,
            humidity_pct=55.3,
            pressure_pa=101102,
            pm1_0=10.1,
            pm2_5=11.2,
            pm4_0=121.3,
            pm10_0=455.4,
            co2_ppm=201,
            voc_index=20,
            nox_index=4,
            luminosity_lux=13027.0,
            measurement_sequence=14601710,
            mac="CB:B8:33:4C:88:4F",
        ),
    ),
    "maximum": (
        "E17FFF9C40FFFE27102710271027109C40FAFADC28F0000000FFFFFE3F0000000000CBB8334C884F",
        RuuviE1(
            temperature_c=163.835,
            humidity_pct=100.0,
            pressure_pa=115534,
            pm1_0=1000.0,
            pm2_5=1000.0,
            pm4_0=1000.0,
            pm10_0=1000.0,
            co2_ppm=40000,
            voc_index=500,
            nox_index=500,
            luminosity_lux=144284.0,
            measurement_sequence=16777214,
            mac="CB:B8:33:4C:88:4F",
        ),
    ),
    "minimum": (
        "E1800100000000000000000000000000000000000000000000000000000000000000CBB8334C884F",
        RuuviE1(
            temperature_c=-163.835,
            humidity_pct=0.0,
            pressure_pa=50000,
            pm1_0=0.0,
            pm2_5=0.0,
            pm4_0=0.0,
            pm10_0=0.0,
            co2_ppm=0,
            voc_index=0,
            nox_index=0,
            luminosity_lux=0.0,
            measurement_sequence=0,
            mac="CB:B8:33:4C:88:4F",
        ),
    ),
    "invalid": (
        "E18000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF000000FFFFFFFE0000000000FFFFFFFFFFFF",
        RuuviE1(
            temperature_c=None,
            humidity_pct=None,
            pressure_pa=None,
            pm1_0=None,
            pm2_5=None,
            pm4_0=None,
            pm10_0=None,
            co2_ppm=None,
            voc_index=None,
            nox_index=None,
            luminosity_lux=None,
            measurement_sequence=None,
            mac=None,
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(E1_CASES))
def test_ruuvi_e1_spec_cases(name: str) -> None:
    raw, expected = E1_CASES[name]
    assert decode_manufacturer(0x0499, bytes.fromhex(raw)) == expected


def test_ruuvi_e1_odd_voc_and_nox_take_their_low_bit_from_flags() -> None:
    # Flags 0xC1: bit 6 is the VOC index's low bit, bit 7 the NOx index's (data-format-e1 spec).
    raw = "E1170C5668C79E0065007004BD11CA00C9FAFB13E0AC000000DFFFFFC10000000000CBB8334C884F"
    advert = decode_manufacturer(0x0499, bytes.fromhex(raw))
    assert isinstance(advert, RuuviE1)
    assert (advert.voc_index, advert.nox_index) == (501, 503)


def test_ruuvi_5_not_available_values_are_none() -> None:
    raw = bytes.fromhex("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF")
    assert decode_manufacturer(0x0499, raw) == Ruuvi5(*([None] * 11))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", AdvertErrorReason.TOO_SHORT),
        (b"\x05\x00", AdvertErrorReason.TOO_SHORT),
        (bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F00"), "bad_length"),
        (b"\x06" + b"\x00" * 19, AdvertErrorReason.UNKNOWN_FORMAT),
        (bytes.fromhex("03291AFF1EFC18F94202CA0B53") + b"\x00", AdvertErrorReason.BAD_VALUE),
    ],
)
def test_ruuvi_errors(data: bytes, reason: AdvertErrorReason | str) -> None:
    with pytest.raises(AdvertError) as exc:
        decode_manufacturer(0x0499, data)
    assert exc.value.reason is AdvertErrorReason(reason)


def test_ibeacon_length_is_checked() -> None:
    good = IBEACON_MFR
    assert isinstance(decode_manufacturer(0x004C, good), IBeacon)
    with pytest.raises(AdvertError) as exc:
        decode_manufacturer(0x004C, good + b"\x00")
    assert exc.value.reason is AdvertErrorReason.BAD_LENGTH


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("10f8047777", AdvertErrorReason.BAD_VALUE),  # scheme 0x04 does not exist
        ("10f8037f", AdvertErrorReason.BAD_VALUE),  # 0x7f is reserved in URLs
        ("10f803" + "61" * 18, AdvertErrorReason.BAD_LENGTH),
        ("10f8", AdvertErrorReason.TOO_SHORT),
        ("2000", AdvertErrorReason.TOO_SHORT),
        ("20020b1813000000146700002ac4", AdvertErrorReason.BAD_VALUE),
        ("30f8" + "00" * 8, AdvertErrorReason.UNSUPPORTED),  # EID rotates by design
        ("", AdvertErrorReason.TOO_SHORT),
    ],
)
def test_eddystone_errors(frame: str, reason: AdvertErrorReason) -> None:
    with pytest.raises(AdvertError) as exc:
        decode_service_data("feaa", bytes.fromhex(frame))
    assert exc.value.reason is reason


def test_eddystone_uid_without_reserved_bytes_and_tlm_sentinels() -> None:
    uid = decode_service_data("FEAA", bytes.fromhex("00e31234567890123467890100000000000100"[:36]))
    assert uid.format == "eddystone-uid"
    tlm = decode_service_data("0xfeaa", bytes.fromhex("2000000080000000146700002ac4"))
    assert tlm.format == "eddystone-tlm"
    assert (tlm.battery_mv, tlm.temperature_c) == (None, None)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0000feaa-0000-1000-8000-00805f9b34fb", 0xFEAA),
        ("0000FEAA-0000-1000-8000-00805F9B34FB", 0xFEAA),
        ("feaa", 0xFEAA),
        ("0xFEAA", 0xFEAA),
        ("6e400001-b5a3-f393-e0a9-e50e24dcca9e", None),
    ],
)
def test_service_uuid_forms(text: str, expected: int | None) -> None:
    assert service_uuid16(text) == expected


def test_bad_service_uuid_is_a_typed_error() -> None:
    with pytest.raises(AdvertError) as exc:
        decode_service_data("not-a-uuid", b"\x00")
    assert exc.value.reason is AdvertErrorReason.BAD_VALUE
    with pytest.raises(AdvertError) as exc:
        decode_service_data("6e400001-b5a3-f393-e0a9-e50e24dcca9e", b"\x00")
    assert exc.value.reason is AdvertErrorReason.UNKNOWN_FORMAT


_flags = st.builds(SmartLabelAdvFlags, st.integers(0, 0xFF))


@given(
    label_id=st.integers(0, 2**64 - 1),
    battery_mv=st.none() | st.integers(0, 0xFFFE),
    temperature_c=st.none() | st.integers(-32767, 32767).map(lambda raw: raw / 100),
    flags=_flags,
    sequence=st.integers(0, 2**32 - 1),
)
def test_smartlabel_adv_round_trip(
    label_id: int,
    battery_mv: int | None,
    temperature_c: float | None,
    flags: SmartLabelAdvFlags,
    sequence: int,
) -> None:
    data = build_smartlabel_adv(label_id, battery_mv, temperature_c, flags, sequence)
    expected = SmartLabelAdv(label_id, battery_mv, temperature_c, flags, sequence)
    assert decode_manufacturer(SMARTLABEL_COMPANY_ID, data) == expected
    assert decode_advertisement({SMARTLABEL_COMPANY_ID: data}, {}) == [expected]


def test_smartlabel_adv_golden_bytes() -> None:
    # The worked example of docs/protocol.md, section 11.
    data = build_smartlabel_adv(
        0x0102030405060708,
        3000,
        -18.5,
        SmartLabelAdvFlags.SHOCK_LATCHED | SmartLabelAdvFlags.LOW_BATTERY,
        42,
    )
    assert data.hex() == "534c0101020304050607080bb8f8c6030000002a"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"temperature_c": 400.0}, AdvertErrorReason.BAD_VALUE),
        ({"battery_mv": 0xFFFF}, AdvertErrorReason.BAD_VALUE),
        ({"label_id": 2**64}, AdvertErrorReason.BAD_VALUE),
        ({"sequence": -1}, AdvertErrorReason.BAD_VALUE),
    ],
)
def test_smartlabel_adv_builder_rejects_unsendable_values(
    kwargs: dict[str, float], reason: AdvertErrorReason
) -> None:
    args: dict[str, object] = {
        "label_id": 1,
        "battery_mv": 3000,
        "temperature_c": 4.0,
        "flags": SmartLabelAdvFlags.NONE,
        "sequence": 1,
    }
    args.update(kwargs)
    with pytest.raises(AdvertError) as exc:
        build_smartlabel_adv(**args)  # type: ignore[arg-type]
    assert exc.value.reason is reason


def test_smartlabel_adv_other_version_and_foreign_test_ids() -> None:
    data = bytearray(build_smartlabel_adv(7, 3000, 4.0, SmartLabelAdvFlags.NONE, 1))
    data[2] = 2
    with pytest.raises(AdvertError) as exc:
        decode_manufacturer(SMARTLABEL_COMPANY_ID, bytes(data))
    assert exc.value.reason is AdvertErrorReason.UNSUPPORTED_VERSION
    # Someone else's test device on 0xFFFF without our magic is not ours: skipped, not an error.
    assert decode_advertisement({SMARTLABEL_COMPANY_ID: b"\x01\x02\x03"}, {}) == []


def test_decode_advertisement_mixes_records_and_raises_on_a_broken_known_one() -> None:
    ruuvi = RUUVI5_MFR
    tlm = EDDYSTONE_TLM
    adverts = decode_advertisement(
        {0x0499: ruuvi, 0x0006: b"\x01\x09\x20"},
        {"0000feaa-0000-1000-8000-00805f9b34fb": tlm, "0000fe9f-0000-1000-8000-00805f9b34fb": b""},
    )
    assert [a.format for a in adverts] == ["ruuvi-5", "eddystone-tlm"]
    with pytest.raises(AdvertError) as exc:
        decode_advertisement({0x0499: ruuvi[:-1]}, {})
    assert exc.value.reason is AdvertErrorReason.TOO_SHORT


def test_adv_payload_stops_at_padding_and_checks_record_sizes() -> None:
    assert decode_adv_payload(ALTBEACON_ADV + b"\x00" * 3)[0].format == "altbeacon"
    assert decode_adv_payload(b"") == []
    with pytest.raises(AdvertError) as exc:
        decode_adv_payload(bytes.fromhex("02ff4c"))
    assert exc.value.reason is AdvertErrorReason.TOO_SHORT
    with pytest.raises(AdvertError) as exc:
        decode_adv_payload(bytes.fromhex("0216aa"))
    assert exc.value.reason is AdvertErrorReason.TOO_SHORT
    with pytest.raises(AdvertError) as exc:
        decode_adv_payload(bytes.fromhex("0403aafe01"))
    assert exc.value.reason is AdvertErrorReason.BAD_LENGTH
    # A structure claiming more bytes than remain is trailing junk, not a record.
    assert [a.format for a in decode_adv_payload(ALTBEACON_ADV + b"\x05\xff")] == ["altbeacon"]


def test_adv_payload_service_data_with_32_and_128_bit_uuids() -> None:
    tlm = EDDYSTONE_TLM
    as_32 = bytes([1 + 4 + len(tlm), 0x20]) + bytes.fromhex("aafe0000") + tlm
    assert [a.format for a in decode_adv_payload(as_32)] == ["eddystone-tlm"]
    base_feaa = bytes.fromhex("0000feaa00001000800000805f9b34fb")[::-1]
    as_128 = bytes([1 + 16 + len(tlm), 0x21]) + base_feaa + tlm
    assert [a.format for a in decode_adv_payload(as_128)] == ["eddystone-tlm"]
    nordic_uart = bytes.fromhex("6e400001b5a3f393e0a9e50e24dcca9e")[::-1]
    assert decode_adv_payload(bytes([1 + 16 + 1, 0x21]) + nordic_uart + b"\x00") == []
