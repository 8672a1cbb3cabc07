"""GS1 keys as EPC URNs, cross-checked against the reference hash generator's own URN to
Digital Link normaliser (which recomputes the check digit) and against our parser (whose
Digital Link grammar is the biip library's): SSCC, SGTIN, GIAI, GRAI, SGLN, every company
prefix length."""

from __future__ import annotations

import re
import string
from pathlib import Path
from urllib.parse import unquote

import pytest
from epcis_event_hash_generator.dl_normaliser import normaliser
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.epcis import EpcisError, epc_urn, sgln_uri
from gateway.registry import parse_gs1_key
from gateway.registry.gs1 import Gs1KeyKind, check_digit
from tests.gateway.epcis.test_fuzz import CSET82, _pct, giai, gln, sgtin, sscc
from tests.gateway.events import samples


@st.composite
def grai(draw: st.DrawFn) -> str:
    body = draw(st.text(string.digits, min_size=12, max_size=12))
    serial = draw(st.text(CSET82, min_size=1, max_size=16))
    return f"https://id.gs1.org/8003/0{body}{check_digit(body)}{_pct(serial)}"


sgln = st.builds(
    lambda g, ext: sgln_uri(g, ext),
    gln(),
    st.none() | st.text(CSET82, min_size=1, max_size=20).filter(lambda e: e != "0"),
)
keys = st.one_of(sscc(), sgtin(), giai, grai(), sgln)


@settings(max_examples=400, deadline=None)
@given(key=keys, prefix=st.integers(6, 12))
def test_every_urn_is_the_reference_normalisers_digital_link(key: str, prefix: int) -> None:
    parsed = parse_gs1_key(key)
    if parsed.kind is Gs1KeyKind.GIAI and not (
        len(parsed.value) > prefix and parsed.value[:prefix].isdigit()
    ):
        with pytest.raises(EpcisError):  # no asset reference after a prefix of that length
            epc_urn(parsed.uri, prefix)
        return
    urn = epc_urn(parsed.uri, prefix)
    assert urn.startswith("urn:epc:id:")
    assert parse_gs1_key(urn).uri == parsed.uri
    if parsed.kind is Gs1KeyKind.GRAI and prefix == 12:
        return  # the reference's pattern wants three dots after a 12-digit prefix: its bug
    # The reference writes some characters of set 82 unescaped (";"): the same URI.
    reference = normaliser(urn)
    assert reference is not None, urn
    assert unquote(reference) == unquote(parsed.uri)


def test_known_urns() -> None:
    assert epc_urn(samples.ASSET, 7) == "urn:epc:id:sscc:4012345.3000000001"
    assert epc_urn(sgln_uri("4012345000009", "door-3"), 7) == "urn:epc:id:sgln:4012345.00000.door-3"
    assert epc_urn(sgln_uri("4012345000009"), 7) == "urn:epc:id:sgln:4012345.00000.0"
    assert (
        epc_urn("https://id.gs1.org/8004/4012345VAN-0042", 7) == "urn:epc:id:giai:4012345.VAN-0042"
    )
    sgtin = "https://id.gs1.org/01/09521234543213/21/A%2Fb12"
    assert epc_urn(sgtin, 7) == "urn:epc:id:sgtin:9521234.054321.A%2Fb12"
    with pytest.raises(EpcisError):
        epc_urn("https://id.gs1.org/01/09521234543213", 7)  # a product, not one thing
    with pytest.raises(EpcisError):
        epc_urn(samples.ASSET, 5)
    with pytest.raises(EpcisError):
        epc_urn("https://id.gs1.org/00/340123450000000018", 7)  # wrong check digit


def test_the_identifier_table_in_the_docs_is_right() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "epcis.md").read_text(encoding="utf-8")
    rows = re.findall(r"\| `(https://id\.gs1\.org/[^`]+)` \| `(urn:epc:id:[^`]+)` \|", text)
    assert len(rows) == 5
    for uri, urn in rows:
        assert parse_gs1_key(uri).uri == uri
        assert parse_gs1_key(urn).uri == uri
        assert epc_urn(uri, 7) == urn  # every example uses the 7-digit prefix 4012345 / 9521234
