"""The custody claim summaries neighbouring doors exchange: round trip, and refusal of anything
a neighbour (or anyone with write access to the site topic) could send that is not claims."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.custody import Claim
from gateway.pipeline.claims import MAX_CLAIMS, ClaimError, decode_claims, encode_claims

CLAIMS = [
    Claim("door-d3", "PCL-0001", -71.5, -62, 40, expected=True),
    Claim("door-d3", "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:99", -80.0, -70, 12),
]


def test_a_summary_round_trips() -> None:
    assert decode_claims(json.loads(encode_claims(CLAIMS))) == CLAIMS


@pytest.mark.parametrize(
    "data",
    [
        {"door": "d"},
        "claims",
        [{"door": "d", "item": "i", "level_dbm": "loud", "peak_dbm": -60, "sightings": 1}],
        [{"door": "d", "item": "i", "level_dbm": float("inf"), "peak_dbm": -60, "sightings": 1}],
        [{"door": "", "item": "i", "level_dbm": -70, "peak_dbm": -60, "sightings": 1}],
        [{"door": "d", "item": "i", "level_dbm": -70, "peak_dbm": -60, "sightings": -1}],
        [{"door": "d", "item": "i", "level_dbm": -70, "peak_dbm": -60, "sightings": 1}]
        * (MAX_CLAIMS + 1),
    ],
)
def test_what_is_not_a_summary_is_refused(data: object) -> None:
    with pytest.raises(ClaimError):
        decode_claims(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
        max_leaves=20,
    )
)
def test_anything_parsed_either_decodes_or_is_refused_typed(data: object) -> None:
    try:
        claims = decode_claims(data)
    except ClaimError:
        return
    assert all(isinstance(c, Claim) for c in claims)
