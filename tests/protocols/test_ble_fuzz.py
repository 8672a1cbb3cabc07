"""Arbitrary bytes into every BLE decoder: adverts or typed AdvertErrors, never another error."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ble import (
    SMARTLABEL_COMPANY_ID,
    Advert,
    AdvertError,
    AdvertErrorReason,
    decode_adv_payload,
    decode_advertisement,
    decode_manufacturer,
    decode_service_data,
)
from protocols.errors import ProtocolError

# Company ids we decode, plus a foreign one; each with the prefixes that reach each decoder.
_COMPANY_IDS = st.sampled_from([0x004C, 0x0499, SMARTLABEL_COMPANY_ID, 0x0118, 0x0006])
_PREFIXES = st.sampled_from([b"", b"\x02\x15", b"\xbe\xac", b"SL\x01", b"\x03", b"\x05", b"\xe1"])
_EDDYSTONE_PREFIXES = st.sampled_from([b"", b"\x00", b"\x10", b"\x20", b"\x20\x00", b"\x30"])
_EXAMPLES = 300


_FORMATS = {
    "ibeacon",
    "altbeacon",
    "eddystone-uid",
    "eddystone-url",
    "eddystone-tlm",
    "ruuvi-3",
    "ruuvi-5",
    "ruuvi-e1",
    "smartlabel-adv",
}


def test_advert_errors_are_protocol_errors() -> None:
    assert issubclass(AdvertError, ProtocolError)


def _only_protocol_errors(call: Callable[[], Advert | list[Advert]]) -> None:
    error: AdvertError | None = None
    try:
        result = call()
    except AdvertError as exc:  # the one error a decoder may raise: a ProtocolError with a reason
        error = exc
    if error is not None:
        assert isinstance(error.reason, AdvertErrorReason)
        assert error.detail  # the log line says what was wrong, not just the reason
        assert error.format is None or error.format in _FORMATS | {"ruuvi", "eddystone"}
        return
    for advert in result if isinstance(result, list) else [result]:
        assert advert.format in _FORMATS


@settings(max_examples=_EXAMPLES)
@given(company_id=_COMPANY_IDS, prefix=_PREFIXES, tail=st.binary(max_size=48))
def test_manufacturer_decoders(company_id: int, prefix: bytes, tail: bytes) -> None:
    _only_protocol_errors(lambda: decode_manufacturer(company_id, prefix + tail))


@settings(max_examples=_EXAMPLES)
@given(prefix=_EDDYSTONE_PREFIXES, tail=st.binary(max_size=32))
def test_service_data_decoders(prefix: bytes, tail: bytes) -> None:
    _only_protocol_errors(lambda: decode_service_data("feaa", prefix + tail))


@settings(max_examples=_EXAMPLES)
@given(uuid=st.text(max_size=40), data=st.binary(max_size=8))
def test_service_uuid_strings(uuid: str, data: bytes) -> None:
    _only_protocol_errors(lambda: decode_service_data(uuid, data))


@settings(max_examples=_EXAMPLES)
@given(payload=st.binary(max_size=62))
def test_raw_payloads(payload: bytes) -> None:
    _only_protocol_errors(lambda: decode_adv_payload(payload))


@settings(max_examples=_EXAMPLES)
@given(
    manufacturer=st.dictionaries(_COMPANY_IDS, st.binary(max_size=40), max_size=3),
    service=st.dictionaries(st.sampled_from(["feaa", "fe9f", "180f"]), st.binary(max_size=24)),
)
def test_whole_advertisements(manufacturer: dict[int, bytes], service: dict[str, bytes]) -> None:
    _only_protocol_errors(lambda: decode_advertisement(manufacturer, service))
