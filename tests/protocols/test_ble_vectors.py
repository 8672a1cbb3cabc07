"""Every BLE decoder against every published vector in tests/fixtures/vectors/ (a verbatim copy).

Each vector carries its own ``source`` (repository, file and commit, or the published spec page);
the assertion message repeats it so that a failure names where the expected values come from.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocols import to_jsonable
from protocols.ble import (
    SKIPPABLE_REASONS,
    Advert,
    AdvertError,
    AdvertErrorReason,
    EddystoneUid,
    decode_adv_payload,
    decode_advertisement,
    decode_manufacturer,
    decode_service_data,
)
from tests.protocols.ble_vectors import load_vectors

_BLE_KEYS = (
    "ibeacon",
    "eddystone_uid",
    "eddystone_url",
    "eddystone_tlm",
    "ruuvi_df3_rawv1",
    "ruuvi_df5_rawv2",
)
_FORMAT_BY_KEY = {
    "ibeacon": "ibeacon",
    "eddystone_uid": "eddystone-uid",
    "eddystone_url": "eddystone-url",
    "eddystone_tlm": "eddystone-tlm",
    "ruuvi_df3_rawv1": "ruuvi-3",
    "ruuvi_df5_rawv2": "ruuvi-5",
}
_RUUVI_COMPANY_ID = 0x0499
# Keys in "expected" that describe the raw packet rather than a decoded field.
_RAW_ONLY = {"company_id", "frame_type", "sec_cnt_raw", "cypress_temperature_x100_int"}
_RAW_ONLY |= {"cypress_humidity_x100_int", "encrypted_data_hex", "salt", "mic", "plain_tlm"}


def _decode_record(key: str, vector: dict[str, Any]) -> Advert:
    """Decode the vector's ``hex`` the way its ``hex_kind`` says the bytes were captured."""
    raw = bytes.fromhex(vector["hex"])
    kind = vector["hex_kind"]
    if kind.startswith("manufacturer-specific data value including"):
        return decode_manufacturer(int.from_bytes(raw[:2], "little"), raw[2:])
    if kind.startswith("manufacturer-specific data value after company id 0x0499"):
        return decode_manufacturer(_RUUVI_COMPANY_ID, raw)
    if kind.startswith("service data for UUID 0xFEAA"):
        return decode_service_data("0000feaa-0000-1000-8000-00805f9b34fb", raw)
    if kind.startswith("full advertising data"):
        adverts = decode_adv_payload(raw)
        if not adverts:
            raise AdvertError(AdvertErrorReason.UNKNOWN_FORMAT, "no advert in payload")
        return adverts[0]
    raise AssertionError(f"unknown hex_kind {kind!r}")


@pytest.mark.parametrize("case", load_vectors(*_BLE_KEYS))
def test_vector(case: tuple[str, dict[str, Any]]) -> None:
    key, vector = case
    source = vector["source"]
    if not vector["valid"]:
        with pytest.raises(AdvertError) as exc:
            _decode_record(key, vector)
        # Every invalid vector in the file is "not this format" (wrong type byte, company id,
        # frame type, UUID list, or encrypted TLM): a scanner skips those silently.
        assert exc.value.reason in SKIPPABLE_REASONS, source
        return
    advert = _decode_record(key, vector)
    got = to_jsonable(advert)
    assert got["format"] == _FORMAT_BY_KEY[key], source
    for name, want in vector["expected"].items():
        if name in _RAW_ONLY:
            continue
        if isinstance(want, float):
            assert got[name] == pytest.approx(want, abs=1e-9), f"{name}: {source}"
        else:
            assert got[name] == want, f"{name}: {source}"


@pytest.mark.parametrize("case", load_vectors(*_BLE_KEYS))
def test_vector_through_whole_advertisement(case: tuple[str, dict[str, Any]]) -> None:
    """The same bytes inside a full advert (vector's adv_hex) or a bleak-style callback."""
    key, vector = case
    source = vector["source"]
    if "adv_hex" in vector:
        from_payload = decode_adv_payload(bytes.fromhex(vector["adv_hex"]))
        assert [a.format for a in from_payload] == (
            [_FORMAT_BY_KEY[key]] if vector["valid"] else []
        ), source
    raw = bytes.fromhex(vector["hex"])
    kind = vector["hex_kind"]
    if kind.startswith("full advertising data"):
        return
    if kind.startswith("service data"):
        adverts = decode_advertisement({}, {"0000feaa-0000-1000-8000-00805f9b34fb": raw})
    elif kind.startswith("manufacturer-specific data value including"):
        adverts = decode_advertisement({int.from_bytes(raw[:2], "little"): raw[2:]}, {})
    else:
        adverts = decode_advertisement({_RUUVI_COMPANY_ID: raw}, {})
    assert [a.format for a in adverts] == ([_FORMAT_BY_KEY[key]] if vector["valid"] else []), source


def test_invalid_vectors_fail_for_the_documented_reason() -> None:
    """Spot checks of the reason on the invalid vectors (sources in the vectors file)."""
    # ibeacon-ble tests/test_init.py: Apple data without 02 15 is another Apple advert.
    with pytest.raises(AdvertError) as exc:
        decode_manufacturer(0x004C, bytes.fromhex("1015426c7565436861726d426561636f6e730efe1355c5"))
    assert exc.value.reason is AdvertErrorReason.UNKNOWN_FORMAT
    # beacontools test_parser.py: Eddystone frame type 0x01 is undefined.
    with pytest.raises(AdvertError) as exc:
        decode_service_data("feaa", bytes.fromhex("01e3123456789012346789010000000000010000"))
    assert exc.value.reason is AdvertErrorReason.UNKNOWN_FORMAT
    # beacontools test_eddystone_tlm_enc: version 0x01 is encrypted TLM, not plain TLM.
    with pytest.raises(AdvertError) as exc:
        decode_service_data("feaa", bytes.fromhex("2001414141414141414141414141deadbeff"))
    assert exc.value.reason is AdvertErrorReason.UNSUPPORTED


def test_uid_json_shows_ids_as_hex() -> None:
    # beacontools test_eddystone_uid
    uid = decode_service_data("feaa", bytes.fromhex("00e3123456789012346789010000000000010000"))
    assert isinstance(uid, EddystoneUid)
    assert to_jsonable(uid)["namespace"] == "12345678901234678901"
    assert to_jsonable(uid)["instance"] == "000000000001"
