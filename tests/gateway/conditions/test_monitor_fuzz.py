"""Whatever readings arrive (impossible values, any order, any subject), the monitor answers
with well-formed results and never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.conditions import (
    ConditionMonitor,
    ExcursionPhase,
    ExcursionResult,
    Quantity,
    SensorFaultResult,
    ShockResult,
    WarningResult,
)

_times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_values = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-30, 40)
_event = st.one_of(
    st.tuples(
        st.just("reading"),
        st.sampled_from(["a", "b", "unassigned"]),
        st.sampled_from(list(Quantity)),
        _values,
        _times,
    ),
    st.tuples(
        st.just("shock"),
        st.sampled_from(["a", "b"]),
        st.tuples(_values, _values, _values),
        st.none() | st.floats(0, 1000),
        _times,
    ),
)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(_event, max_size=60))
def test_any_input_gives_well_formed_results(events: list[tuple[object, ...]]) -> None:
    m = ConditionMonitor(assignments={"a": "pharma-2-8", "b": "parcel"})
    opened: set[str] = set()
    for kind, subject, x, y, when in events:
        assert isinstance(subject, str)
        assert isinstance(when, datetime)
        if kind == "reading":
            assert isinstance(x, Quantity)
            assert isinstance(y, float)
            results = m.observe(subject, x, y, when)
        else:
            assert isinstance(x, tuple)
            assert y is None or isinstance(y, float)
            results = m.observe_shock(subject, when, x, y)
        for r in results:
            assert isinstance(r, ExcursionResult | WarningResult | ShockResult | SensorFaultResult)
            assert len(r.result_id) == 32
            if isinstance(r, ExcursionResult):
                assert r.time_beyond_s >= 0
                assert r.min <= r.max
                if r.phase is ExcursionPhase.OPEN:
                    assert r.excursion_id not in opened
                    opened.add(r.excursion_id)
                else:
                    assert r.excursion_id in opened
    snapshot = m.snapshot()
    json.dumps(snapshot, allow_nan=False)  # a JSON value a state store can write
    restored = ConditionMonitor(assignments={"a": "pharma-2-8", "b": "parcel"})
    restored.restore(snapshot)
    assert restored.snapshot() == snapshot
