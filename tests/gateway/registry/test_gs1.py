"""GS1 keys: check digits (property tests), Digital Link and EPC URN parsing and the
canonical form, the asset rule, and fuzzing for typed errors only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.registry import (
    Gs1Error,
    Gs1ErrorReason,
    Gs1Key,
    Gs1KeyKind,
    canonical_asset_uri,
    check_digit,
    parse_gs1_key,
)

SSCC = "340123450000000017"  # the example
GTIN = "09521234543213"
GLN = "9521234543213"


def with_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit written out independently of the code under test."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def test_check_digit_known_values() -> None:
    assert check_digit("34012345000000001") == 7
    assert check_digit("0952123454321") == 3
    assert check_digit("10614141234567890") == 8  # TDS SSCC example
    with pytest.raises(Gs1Error) as info:
        check_digit("12a")
    assert info.value.reason is Gs1ErrorReason.BAD_CHARACTER


# -- property tests: valid keys pass, any single-digit change fails --------------------------

_KEYS: dict[str, tuple[int, Callable[[str], str]]] = {
    "sscc": (17, lambda v: f"https://id.gs1.org/00/{v}"),
    "gtin14": (13, lambda v: f"https://id.gs1.org/01/{v}/21/X1"),
    "gtin13": (12, lambda v: f"https://id.gs1.org/01/{v}/21/X1"),
    "gtin8": (7, lambda v: f"https://id.gs1.org/01/{v}/21/X1"),
    "gln": (12, lambda v: f"https://id.gs1.org/414/{v}"),
    "grai": (12, lambda v: f"https://id.gs1.org/8003/0{v}S1"),
}


@st.composite
def _valid(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(sorted(_KEYS)))
    body = draw(st.text("0123456789", min_size=_KEYS[kind][0], max_size=_KEYS[kind][0]))
    return kind, with_check_digit(body)


@given(_valid())
def test_valid_keys_pass(case: tuple[str, str]) -> None:
    kind, digits = case
    key = parse_gs1_key(_KEYS[kind][1](digits))
    assert digits in key.value
    assert parse_gs1_key(key.uri) == key


@given(_valid(), st.data())
def test_any_single_digit_change_fails_with_the_expected_digit(
    case: tuple[str, str], data: st.DataObject
) -> None:
    kind, digits = case
    pos = data.draw(st.integers(0, len(digits) - 1))
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != digits[pos]]))
    changed = digits[:pos] + new + digits[pos + 1 :]
    with pytest.raises(Gs1Error) as info:
        parse_gs1_key(_KEYS[kind][1](changed))
    assert info.value.reason is Gs1ErrorReason.BAD_CHECK_DIGIT
    expected = int(with_check_digit(changed[:-1])[-1])
    assert info.value.expected_check_digit == expected
    assert f"expected {expected}" in str(info.value)


# -- Digital Link --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "uri", "kind"),
    [
        (f"https://id.gs1.org/00/{SSCC}", f"https://id.gs1.org/00/{SSCC}", Gs1KeyKind.SSCC),
        (f"HTTP://Example.COM/00/{SSCC}", f"https://id.gs1.org/00/{SSCC}", Gs1KeyKind.SSCC),
        (f"https://id.gs1.org/00/{SSCC[:-1]}%37", f"https://id.gs1.org/00/{SSCC}", Gs1KeyKind.SSCC),
        (
            f"https://brand.example/a/b/00/{SSCC}?17=261231&utm=x#frag",
            f"https://id.gs1.org/00/{SSCC}",
            Gs1KeyKind.SSCC,
        ),
        (
            f"https://id.gs1.org/01/{GTIN}/21/ABC%2F1",
            f"https://id.gs1.org/01/{GTIN}/21/ABC%2F1",
            Gs1KeyKind.SGTIN,
        ),
        (
            "https://id.gs1.org/01/9521234543213/10/LOT7/21/12",
            f"https://id.gs1.org/01/{GTIN}/21/12",
            Gs1KeyKind.SGTIN,
        ),
        (
            f"https://id.gs1.org/01/{GTIN}/21/%41b%21",
            f"https://id.gs1.org/01/{GTIN}/21/Ab%21",
            Gs1KeyKind.SGTIN,
        ),
        (
            "https://id.gs1.org/8004/0952123456ABC-1",
            "https://id.gs1.org/8004/0952123456ABC-1",
            Gs1KeyKind.GIAI,
        ),
        (
            "https://id.gs1.org/8003/09521234543213CAGE7",
            "https://id.gs1.org/8003/09521234543213CAGE7",
            Gs1KeyKind.GRAI,
        ),
        (f"https://id.gs1.org/01/{GTIN}", f"https://id.gs1.org/01/{GTIN}", Gs1KeyKind.GTIN),
        (f"https://id.gs1.org/414/{GLN}", f"https://id.gs1.org/414/{GLN}", Gs1KeyKind.GLN),
        (
            f"https://id.gs1.org/414/{GLN}/254/DOOR-3",
            f"https://id.gs1.org/414/{GLN}/254/DOOR-3",
            Gs1KeyKind.GLN,
        ),
    ],
)
def test_digital_link_normalised(text: str, uri: str, kind: Gs1KeyKind) -> None:
    key = parse_gs1_key(text)
    assert (key.uri, key.kind) == (uri, kind)
    assert parse_gs1_key(key.uri) == key


@pytest.mark.parametrize(
    ("urn", "uri"),
    [
        # Examples of the GS1 EPC Tag Data Standard.
        ("urn:epc:id:sscc:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        (
            "urn:epc:id:sgtin:0614141.812345.6789",
            "https://id.gs1.org/01/80614141123458/21/6789",
        ),
        (
            "urn:epc:id:sgtin:0614141.812345.A%2FB%25",
            "https://id.gs1.org/01/80614141123458/21/A%2FB%25",
        ),
        ("urn:epc:id:giai:0614141.12345400", "https://id.gs1.org/8004/061414112345400"),
        ("urn:epc:id:giai:0614141.A.B", "https://id.gs1.org/8004/0614141A.B"),
        ("urn:epc:id:sgtin:0614141.812345.1.2", "https://id.gs1.org/01/80614141123458/21/1.2"),
        ("urn:epc:id:grai:0614141.12345.400", "https://id.gs1.org/8003/00614141123452400"),
        ("URN:EPC:ID:SSCC:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        ("urn:epc:id:sgln:0614141.12345.0", "https://id.gs1.org/414/0614141123452"),
        ("urn:epc:id:sgln:0614141.12345.400", "https://id.gs1.org/414/0614141123452/254/400"),
    ],
)
def test_epc_urns_become_digital_links(urn: str, uri: str) -> None:
    assert parse_gs1_key(urn).uri == uri


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", Gs1ErrorReason.BAD_SYNTAX),
        ("340123450000000017", Gs1ErrorReason.BAD_SYNTAX),
        ("ftp://id.gs1.org/00/340123450000000017", Gs1ErrorReason.BAD_SYNTAX),
        ("https://id.gs1.org/", Gs1ErrorReason.BAD_SYNTAX),
        ("https://id.gs1.org/00/34012345000000001", Gs1ErrorReason.BAD_LENGTH),
        ("https://id.gs1.org/00/3401234500000000170", Gs1ErrorReason.BAD_LENGTH),
        ("https://id.gs1.org/00/34012345000000001x", Gs1ErrorReason.BAD_CHARACTER),
        ("https://id.gs1.org/00/340123450000000018", Gs1ErrorReason.BAD_CHECK_DIGIT),
        ("https://id.gs1.org/01/09521234543214/21/1", Gs1ErrorReason.BAD_CHECK_DIGIT),
        ("https://id.gs1.org/01/0952123454321/21/1", Gs1ErrorReason.BAD_CHECK_DIGIT),
        ("https://id.gs1.org/01/09521234543213/21/" + "x" * 21, Gs1ErrorReason.BAD_SYNTAX),
        ("https://id.gs1.org/01/09521234543213/21/a%20b", Gs1ErrorReason.BAD_SYNTAX),
        ("https://id.gs1.org/01/09521234543213/21", Gs1ErrorReason.BAD_SYNTAX),
        ("https://id.gs1.org/8004/12ab", Gs1ErrorReason.BAD_SYNTAX),
        ("https://id.gs1.org/8004/0952123456AB%C3%A9", Gs1ErrorReason.BAD_CHARACTER),
        ("https://id.gs1.org/8004/0952123456" + "A" * 21, Gs1ErrorReason.BAD_LENGTH),
        ("https://id.gs1.org/8003/19521234543213", Gs1ErrorReason.BAD_SYNTAX),
        ("https://id.gs1.org/8003/09521234543214", Gs1ErrorReason.BAD_CHECK_DIGIT),
        ("https://id.gs1.org/414/9521234543214", Gs1ErrorReason.BAD_CHECK_DIGIT),
        ("https://id.gs1.org/253/4601234567893", Gs1ErrorReason.UNSUPPORTED_KEY),
        ("urn:epc:id:sscc:0614141.123456789", Gs1ErrorReason.BAD_LENGTH),
        ("urn:epc:id:sscc:06141.123456789012", Gs1ErrorReason.BAD_LENGTH),
        ("urn:epc:id:sgtin:0614141.812345", Gs1ErrorReason.BAD_SYNTAX),
        ("urn:epc:id:gid:95100000.12345.400", Gs1ErrorReason.BAD_SYNTAX),
        ("urn:epc:id:giai:0614141.a b", Gs1ErrorReason.BAD_CHARACTER),
        ("urn:epc:id:sgtin:0614141.812345.%FF", Gs1ErrorReason.BAD_CHARACTER),
    ],
)
def test_rejected_with_reason(text: str, reason: Gs1ErrorReason) -> None:
    with pytest.raises(Gs1Error) as info:
        parse_gs1_key(text)
    assert info.value.reason is reason, str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_check_digit_message_names_the_expected_digit() -> None:
    with pytest.raises(Gs1Error) as info:
        canonical_asset_uri("https://id.gs1.org/00/340123450000000018")
    assert info.value.expected_check_digit == 7
    assert "check digit is 8, expected 7" in str(info.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (f"https://id.gs1.org/01/{GTIN}", "add its serial"),
        ("https://id.gs1.org/8003/09521234543213", "asset type"),
        (f"https://id.gs1.org/414/{GLN}", "party or a location"),
    ],
)
def test_keys_that_name_no_single_thing_are_no_assets(text: str, words: str) -> None:
    with pytest.raises(Gs1Error) as info:
        canonical_asset_uri(text)
    assert info.value.reason is Gs1ErrorReason.UNSUPPORTED_KEY
    assert words in str(info.value)


def test_asset_kinds() -> None:
    for text in (
        f"https://id.gs1.org/00/{SSCC}",
        f"https://id.gs1.org/01/{GTIN}/21/1",
        "https://id.gs1.org/8004/0952123456ABC",
        "https://id.gs1.org/8003/09521234543213CAGE7",
    ):
        assert canonical_asset_uri(text) == text
    assert parse_gs1_key("https://id.gs1.org/8003/09521234543213CAGE7").grai_serial == "CAGE7"
    assert Gs1Key(Gs1KeyKind.SSCC, SSCC).grai_serial is None


_CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


@given(
    gtin=st.text("0123456789", min_size=13, max_size=13),
    serial=st.text(_CSET82, min_size=1, max_size=20),
)
def test_any_set82_serial_round_trips(gtin: str, serial: str) -> None:
    key = parse_gs1_key(f"urn:epc:id:sgtin:{gtin[:7]}.{gtin[7:]}.{serial.replace('%', '%25')}")
    assert key.kind is Gs1KeyKind.SGTIN
    assert key.qualifier == serial
    assert parse_gs1_key(key.uri) == key
    assert canonical_asset_uri(key.uri) == key.uri


@given(
    st.text(max_size=120)
    | st.from_regex(r"https?://[a-z.]{0,12}(/[0-9A-Za-z%]{0,20}){0,6}(\?.{0,20})?")
    | st.from_regex(r"urn:epc:id:(sscc|sgtin|giai|grai|sgln):[0-9.%A-Za-z]{0,40}")
)
def test_fuzz_only_typed_errors(text: str) -> None:
    try:
        key = parse_gs1_key(text)
    except Gs1Error:
        return
    assert parse_gs1_key(key.uri) == key
