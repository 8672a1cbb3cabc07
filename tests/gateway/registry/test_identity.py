"""Tag ids from decoded adverts (real decoders on real payload bytes), the SmartLabel id, and
the tag id parser: canonical spelling, round trips, typed rejections, fuzz."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.registry import (
    TagId,
    TagIdError,
    TagIdErrorReason,
    TagScheme,
    parse_tag_id,
    smartlabel_tag_id,
    tag_id,
)
from protocols.ble import (
    AltBeacon,
    EddystoneUid,
    IBeacon,
    Ruuvi5,
    SmartLabelAdvFlags,
    build_smartlabel_adv,
    decode_manufacturer,
    decode_service_data,
)
from protocols.ble.samples import RUUVI3_MFR, RUUVI5_MFR

ADDRESS = "aa:bb:cc:dd:ee:0f"
IB_UUID = "F7826DA6-4FA2-4E98-8024-BC5B71E0893E"


def test_ibeacon() -> None:
    data = b"\x02\x15" + uuid.UUID(IB_UUID).bytes + (1).to_bytes(2, "big") + (42).to_bytes(2, "big")
    advert = decode_manufacturer(0x004C, data + b"\xc5")
    assert tag_id(advert, ADDRESS) == "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:42"


def test_altbeacon_under_any_company() -> None:
    id1 = uuid.UUID("2f234454-cf6d-4a0f-adf2-f4911ba9ffa6")
    data = (
        b"\xbe\xac" + id1.bytes + (65535).to_bytes(2, "big") + (0).to_bytes(2, "big") + b"\xc5\x00"
    )
    a = decode_manufacturer(0x0118, data)
    b = decode_manufacturer(0x1234, data)
    assert tag_id(a, ADDRESS) == tag_id(b, ADDRESS) == f"altbeacon:{id1}:65535:0"


def test_eddystone_uid_url_tlm() -> None:
    uid = (
        bytes.fromhex("00ec")
        + bytes.fromhex("EDD1EBEAC04E5DEFA017")
        + bytes.fromhex("0123456789AB")
    )
    assert (
        tag_id(decode_service_data("feaa", uid), ADDRESS)
        == "eddystone:edd1ebeac04e5defa017:0123456789ab"
    )
    assert tag_id(decode_service_data("feaa", uid + b"\x00\x00"), ADDRESS) == (
        "eddystone:edd1ebeac04e5defa017:0123456789ab"
    )
    url = bytes.fromhex("10ec03") + b"goo.gl/x"
    assert tag_id(decode_service_data("feaa", url), ADDRESS) is None
    tlm = bytes.fromhex("20000bb81000000003e800000064")
    assert tag_id(decode_service_data("feaa", tlm), ADDRESS) is None


def test_ruuvi_uses_the_payload_mac_and_else_the_address() -> None:
    rawv2 = RUUVI5_MFR
    assert tag_id(decode_manufacturer(0x0499, rawv2), ADDRESS) == "ruuvi:CB:B8:33:4C:88:4F"
    rawv1 = RUUVI3_MFR
    assert tag_id(decode_manufacturer(0x0499, rawv1), ADDRESS) == "ruuvi:AA:BB:CC:DD:EE:0F"
    # The MAC field all ones is "not available": the address names the tag.
    no_mac = rawv2[:-6] + b"\xff" * 6
    assert tag_id(decode_manufacturer(0x0499, no_mac), ADDRESS) == "ruuvi:AA:BB:CC:DD:EE:0F"
    # An address that is not a MAC (another platform's opaque handle) names nothing.
    assert (
        tag_id(decode_manufacturer(0x0499, rawv1), "C3F1E1A2-0000-4000-8000-00805F9B34FB") is None
    )


def test_smartlabel_advert_and_frames_share_the_id() -> None:
    data = build_smartlabel_adv(0xDEADBEEF, 2900, 4.5, SmartLabelAdvFlags.NONE, 7)
    advert = decode_manufacturer(0xFFFF, data)
    assert tag_id(advert, ADDRESS) == smartlabel_tag_id(0xDEADBEEF) == "smartlabel:00000000deadbeef"
    assert smartlabel_tag_id(2**64 - 1) == "smartlabel:ffffffffffffffff"
    for bad in (-1, 2**64):
        with pytest.raises(TagIdError) as info:
            smartlabel_tag_id(bad)
        assert info.value.reason is TagIdErrorReason.OUT_OF_RANGE


_u16 = st.integers(0, 65535)


@given(
    kind=st.sampled_from(["ibeacon", "altbeacon", "eddystone", "ruuvi", "smartlabel"]),
    raw=st.binary(min_size=16, max_size=16),
    a=_u16,
    b=_u16,
    label=st.integers(0, 2**64 - 1),
)
def test_derived_ids_are_canonical(kind: str, raw: bytes, a: int, b: int, label: int) -> None:
    """Whatever the fields, the id :func:`tag_id` derives parses back to itself."""
    if kind == "ibeacon":
        advert: object = IBeacon(str(uuid.UUID(bytes=raw)), a, b, -59)
    elif kind == "altbeacon":
        advert = AltBeacon(0x0118, str(uuid.UUID(bytes=raw)), a, b, -59, 0)
    elif kind == "eddystone":
        advert = EddystoneUid(-20, raw[:10], raw[10:])
    elif kind == "ruuvi":
        mac = ":".join(f"{x:02X}" for x in raw[:6])
        advert = Ruuvi5(None, None, None, None, None, None, None, None, None, None, mac)
    else:
        advert = decode_manufacturer(
            0xFFFF, build_smartlabel_adv(label, None, None, SmartLabelAdvFlags.NONE, 0)
        )
    derived = tag_id(advert, ADDRESS)  # type: ignore[arg-type]
    assert derived is not None
    parsed = parse_tag_id(derived)
    assert parsed == TagId(TagScheme(kind), derived)
    assert str(parsed) == derived


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (f"ibeacon:{IB_UUID}:1:42", "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:42"),
        (f"IBeacon:{IB_UUID}:0:65535", "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:0:65535"),
        (f"altbeacon:{IB_UUID}:7:8", "altbeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:7:8"),
        (
            "eddystone:EDD1EBEAC04E5DEFA017:0123456789AB",
            "eddystone:edd1ebeac04e5defa017:0123456789ab",
        ),
        ("ruuvi:cb:b8:33:4c:88:4f", "ruuvi:CB:B8:33:4C:88:4F"),
        ("smartlabel:00000000DEADBEEF", "smartlabel:00000000deadbeef"),
    ],
)
def test_parse_normalises(text: str, canonical: str) -> None:
    assert parse_tag_id(text).text == canonical
    assert parse_tag_id(canonical).text == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", TagIdErrorReason.UNKNOWN_SCHEME),
        ("f7826da6", TagIdErrorReason.UNKNOWN_SCHEME),
        ("beacon:1", TagIdErrorReason.UNKNOWN_SCHEME),
        ("ibeacon", TagIdErrorReason.BAD_SYNTAX),
        ("ibeacon:", TagIdErrorReason.BAD_SYNTAX),
        (f"ibeacon:{IB_UUID}:1", TagIdErrorReason.BAD_SYNTAX),
        (f"ibeacon:{IB_UUID}:01:2", TagIdErrorReason.BAD_SYNTAX),
        (f"ibeacon:{IB_UUID}:-1:2", TagIdErrorReason.BAD_SYNTAX),
        (f"ibeacon:{IB_UUID}:65536:2", TagIdErrorReason.OUT_OF_RANGE),
        (f"altbeacon:{IB_UUID}:1:99999", TagIdErrorReason.OUT_OF_RANGE),
        (f"ibeacon:{IB_UUID.replace('-', '')}:1:2", TagIdErrorReason.BAD_SYNTAX),
        ("eddystone:edd1ebeac04e5defa01:0123456789ab", TagIdErrorReason.BAD_SYNTAX),
        ("eddystone:edd1ebeac04e5defa017", TagIdErrorReason.BAD_SYNTAX),
        ("ruuvi:CB-B8-33-4C-88-4F", TagIdErrorReason.BAD_SYNTAX),
        ("ruuvi:CB:B8:33:4C:88", TagIdErrorReason.BAD_SYNTAX),
        ("smartlabel:deadbeef", TagIdErrorReason.BAD_SYNTAX),
        ("smartlabel:00000000deadbeeg", TagIdErrorReason.BAD_SYNTAX),
        (" smartlabel:00000000deadbeef", TagIdErrorReason.UNKNOWN_SCHEME),
        ("smartlabel:00000000deadbeef\n", TagIdErrorReason.BAD_SYNTAX),
        ("smartlabel:" + "0" * 200, TagIdErrorReason.BAD_SYNTAX),
        ("smartlabel:٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠١", TagIdErrorReason.BAD_SYNTAX),
    ],
)
def test_parse_rejects_with_a_reason(text: str, reason: TagIdErrorReason) -> None:
    with pytest.raises(TagIdError) as info:
        parse_tag_id(text)
    assert info.value.reason is reason
    assert isinstance(info.value, ValueError)  # so pydantic validators turn it into a field error
    if reason is TagIdErrorReason.BAD_SYNTAX and len(text) < 100:
        assert "expected" in str(info.value)


@given(st.text(max_size=80) | st.from_regex(r"(ibeacon|ruuvi|smartlabel|eddystone):.{0,40}"))
def test_parse_never_raises_anything_else(text: str) -> None:
    try:
        parsed = parse_tag_id(text)
    except TagIdError:
        return
    assert parse_tag_id(parsed.text) == parsed
