"""The event models: JSON round trips for every kind, strict parsing with typed errors, UTC-only
times, no unknown fields, immutability, and ``model_construct`` giving the same wire form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.errors import GatewayError
from gateway.events import (
    EVENT_TYPES,
    ClockRef,
    Event,
    EventError,
    EventErrorReason,
    EventSource,
    ExitReason,
    Observation,
    Party,
    Position,
    PresenceEnter,
    PresenceExit,
    Quantities,
    TelemetryReading,
    TimeSource,
    parse_event,
    parse_message,
)
from tests.gateway.events import samples
from tests.gateway.events.samples import ALL_SAMPLES


def _ids(event: Event) -> str:
    return f"{event.kind}-{event.event_id[:6]}"


def test_samples_cover_every_kind() -> None:
    assert {s.kind for s in ALL_SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=_ids)
def test_round_trip_through_json(event: Event) -> None:
    wire = event.to_json_bytes()
    parsed = parse_event(wire)
    assert type(parsed) is type(event)
    assert parsed == event
    assert parsed.to_json_bytes() == wire
    # str input works too, and parse_message agrees.
    assert parse_event(wire.decode()) == event
    assert parse_message(wire) == event


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=_ids)
def test_model_construct_gives_the_same_wire_form(event: Event) -> None:
    """The pipeline may skip validation for values it computed itself: same bytes out."""
    cls = type(event)
    fields = {name: getattr(event, name) for name in cls.model_fields}
    constructed = cls.model_construct(**fields)
    assert constructed.to_json_bytes() == event.to_json_bytes()
    # ... and ``kind`` need not be passed: its default is the literal.
    del fields["kind"]
    assert cls.model_construct(**fields).kind == event.kind


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=_ids)
def test_wire_form_has_every_envelope_field(event: Event) -> None:
    body = json.loads(event.to_json_bytes())
    assert list(body)[:10] == [
        "event_id",
        "kind",
        "gateway_id",
        "time",
        "time_source",
        "clock_ref",
        "time_corrected",
        "position",
        "source",
        "asset",
    ]
    assert body["time"].endswith("Z")


def test_absent_quantities_are_left_out_not_null() -> None:
    body = json.loads(samples.telemetry_reading().to_json_bytes())
    assert body["values"] == {"temperature_c": 5.42, "humidity_pct": 61.0}
    assert body["position"] is None  # the envelope keeps its nulls


def _body(event: Event) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(event.to_json_bytes())
    return body


@pytest.mark.parametrize(
    "naive_or_offset",
    ["2026-11-24T06:00:00", "2026-11-24T07:00:00+01:00", "2026-11-24T01:00:00-05:00"],
)
@pytest.mark.parametrize("field", ["time", "first_seen", "last_seen"])
def test_only_utc_times_are_accepted(field: str, naive_or_offset: str) -> None:
    body = _body(samples.presence_enter())
    body[field] = naive_or_offset
    with pytest.raises(EventError) as info:
        parse_event(json.dumps(body))
    assert info.value.reason is EventErrorReason.INVALID
    assert info.value.kind == "presence.enter"
    assert field in info.value.detail


def test_naive_datetime_is_refused_in_python_too() -> None:
    event = samples.presence_enter()
    fields = {n: getattr(event, n) for n in PresenceEnter.model_fields}
    fields["time"] = datetime(2026, 11, 24, 6, 0)
    with pytest.raises(ValidationError, match="UTC"):
        PresenceEnter(**fields)
    fields["time"] = datetime(2026, 11, 24, 7, 0, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(ValidationError, match="UTC"):
        PresenceEnter(**fields)


def test_zero_offset_spellings_are_utc() -> None:
    body = _body(samples.presence_enter())
    for spelling in ("2026-11-24T06:00:04.2+00:00", "2026-11-24T06:00:04.200Z"):
        body["time"] = spelling
        assert parse_event(json.dumps(body)).time == datetime(
            2026, 11, 24, 6, 0, 4, 200000, tzinfo=UTC
        )


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=_ids)
def test_unknown_fields_are_refused_at_the_top(event: Event) -> None:
    body = _body(event)
    body["colour"] = "red"
    with pytest.raises(EventError) as info:
        parse_event(json.dumps(body))
    assert info.value.reason is EventErrorReason.INVALID
    assert "colour" in info.value.detail


@pytest.mark.parametrize(
    ("event", "path"),
    [
        (samples.presence_enter(), ("source",)),
        (samples.presence_enter(), ("position",)),
        (samples.telemetry_reading(), ("values",)),
        (samples.handoff_report(), ("from_party",)),
        (samples.handoff_report(), ("evidence", 0)),
        (samples.condition_excursion(), ("limit",)),
        (samples.telemetry_reading_ruuvi_unsynced(), ("clock_ref",)),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else v.kind,
)
def test_unknown_fields_are_refused_inside(event: Event, path: tuple[str | int, ...]) -> None:
    body = _body(event)
    inner: Any = body
    for step in path:
        inner = inner[step]
    inner["unit"] = "furlongs"
    with pytest.raises(EventError, match="unit") as info:
        parse_event(json.dumps(body))
    assert info.value.reason is EventErrorReason.INVALID


def test_events_are_frozen() -> None:
    event = samples.presence_enter()
    with pytest.raises(ValidationError, match="frozen"):
        event.sightings = 6
    with pytest.raises(ValidationError, match="frozen"):
        event.source.zone = "door-4"
    assert hash(event) == hash(samples.presence_enter())


def test_parsing_is_strict() -> None:
    body = _body(samples.presence_enter())
    body["sightings"] = 5.0  # a count is an integer on the wire
    with pytest.raises(EventError, match="sightings"):
        parse_event(json.dumps(body))
    body = _body(samples.presence_enter())
    body["time"] = 1795500004  # epoch seconds are not a time here
    with pytest.raises(EventError, match="time"):
        parse_event(json.dumps(body))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", EventErrorReason.MALFORMED_JSON),
        (b"\xff\xfe", EventErrorReason.MALFORMED_JSON),
        (b"", EventErrorReason.MALFORMED_JSON),
        (b"[]", EventErrorReason.NOT_AN_OBJECT),
        (b'"presence.enter"', EventErrorReason.NOT_AN_OBJECT),
        (b"{}", EventErrorReason.UNKNOWN_KIND),
        (b'{"kind": "presence.linger"}', EventErrorReason.UNKNOWN_KIND),
        (b'{"kind": 7}', EventErrorReason.UNKNOWN_KIND),
        (b'{"kind": "presence.enter"}', EventErrorReason.INVALID),
    ],
)
def test_bad_input_gets_a_typed_reason(data: bytes, reason: EventErrorReason) -> None:
    with pytest.raises(EventError) as info:
        parse_event(data)
    assert info.value.reason is reason
    assert isinstance(info.value, GatewayError)
    assert str(info.value).startswith(reason.value)


def test_unknown_kind_names_the_kind() -> None:
    with pytest.raises(EventError) as info:
        parse_event(b'{"kind": "presence.linger", "event_id": "x"}')
    assert info.value.kind == "presence.linger"


def test_parse_event_refuses_the_envelope_less_kinds_parse_message_reads() -> None:
    status = {
        "kind": "gateway.status",
        "gateway_id": "dock-3",
        "state": "online",
        "version": "0.1.0",
        "config_hash": "c9e3daf1c48a0920",
        "clock_state": "ntp",
        "outbox_depth": 3,
        "time": "2026-11-24T06:00:00Z",
        "reason": None,
    }
    with pytest.raises(EventError) as info:
        parse_event(json.dumps(status))
    assert info.value.reason is EventErrorReason.UNKNOWN_KIND
    assert parse_message(json.dumps(status)).model_dump(mode="json") == status


def test_a_reading_has_at_least_one_quantity() -> None:
    with pytest.raises(ValidationError, match="at least one quantity"):
        Quantities()
    body = _body(samples.telemetry_reading())
    body["values"] = {}
    with pytest.raises(EventError, match="at least one quantity"):
        parse_event(json.dumps(body))


def test_party_needs_a_gln_or_a_name() -> None:
    with pytest.raises(ValidationError, match="gln, a name or both"):
        Party()
    with pytest.raises(ValidationError, match="gln"):
        Party(gln="40123450000")  # 11 digits
    assert Party(gln="4012345000009").name is None


def test_position_range_is_checked() -> None:
    with pytest.raises(ValidationError):
        Position(lat=91.0, lon=0.0)
    body = _body(samples.telemetry_position())
    body["lon"] = -180.5
    with pytest.raises(EventError, match="lon"):
        parse_event(json.dumps(body))


# -- property tests: the hot kinds with arbitrary content, and arbitrary bytes -----------------

_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
_utc = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_rssi = st.floats(-127, 20, allow_nan=False)
_opt_float = st.none() | st.floats(allow_nan=False, allow_infinity=False)
_position = st.none() | st.builds(
    Position,
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    alt_m=_opt_float,
    accuracy_m=st.none() | st.floats(0, 1e6),
)
_clock_ref = st.builds(ClockRef, boot_id=_text, monotonic_s=st.floats(0, 1e9, allow_nan=False))


@st.composite
def _envelope(draw: st.DrawFn) -> dict[str, Any]:
    source = draw(st.sampled_from(TimeSource))
    return {
        "gateway_id": draw(_text),
        "time": draw(_utc),
        "time_source": source,
        "clock_ref": draw(_clock_ref) if source is TimeSource.UNSYNCED else None,
        "time_corrected": draw(st.booleans()),
        "position": draw(_position),
        "asset": draw(st.none() | _text),
    }


@st.composite
def _presence(draw: st.DrawFn) -> Event:
    env = draw(_envelope())
    tag, zone = draw(_text), draw(_text)
    first = draw(_utc)
    dwell = draw(st.floats(0, 1e6))
    common = {
        **env,
        "source": EventSource(device=tag, via=draw(st.none() | _text), zone=zone),
        "zone": zone,
        "tag": tag,
        "first_seen": first,
        "last_seen": draw(_utc),
        "sightings": draw(st.integers(1, 2**40)),
        "rssi_max_dbm": draw(_rssi),
        "rssi_mean_dbm": draw(_rssi),
        "dwell_s": dwell,
    }
    gw = env["gateway_id"]
    if draw(st.booleans()):
        return PresenceEnter(
            event_id=PresenceEnter.make_id(gw, tag=tag, zone=zone, first_seen=first), **common
        )
    return PresenceExit(
        event_id=PresenceExit.make_id(gw, tag=tag, zone=zone, first_seen=first),
        reason=draw(st.sampled_from(ExitReason)),
        enter_event_id=PresenceEnter.make_id(gw, tag=tag, zone=zone, first_seen=first),
        **common,
    )


_quantity_values: dict[str, st.SearchStrategy[Any]] = {
    name: (
        st.none() | st.integers(-(2**31), 2**31) if info.annotation == (int | None) else _opt_float
    )
    for name, info in Quantities.model_fields.items()
}


@st.composite
def _reading(draw: st.DrawFn) -> Event:
    env = draw(_envelope())
    device = draw(_text)
    observed = draw(_clock_ref)
    values = {k: draw(v) for k, v in _quantity_values.items()}
    values[draw(st.sampled_from(sorted(values)))] = draw(st.integers(-1000, 1000))
    return TelemetryReading(
        event_id=TelemetryReading.make_id(env["gateway_id"], Observation(device, observed)),
        source=EventSource(device=device),
        values=Quantities(**values),
        **env,
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(_presence(), _reading()))
def test_arbitrary_hot_events_round_trip(event: Event) -> None:
    assert parse_event(event.to_json_bytes()) == event


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_raises_only_event_error(data: bytes | str) -> None:
    reason: EventErrorReason | None = None
    try:
        parse_event(data)
    except EventError as e:
        reason = e.reason
    assert reason is None or reason in EventErrorReason


_SAMPLE_BODIES = [json.loads(s.to_json_bytes()) for s in ALL_SAMPLES]
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(_SAMPLE_BODIES), st.data())
def test_mutated_events_raise_only_event_error(body: dict[str, Any], data: st.DataObject) -> None:
    """A valid event with one field replaced by any JSON value, or removed: either it still
    validates or it is refused with a typed error; never anything else."""
    mutated = dict(body)
    key = data.draw(st.sampled_from(sorted(mutated)))
    if data.draw(st.booleans()):
        del mutated[key]
    else:
        mutated[key] = data.draw(_json_values)
    try:
        event: Event | None = parse_event(json.dumps(mutated))
        reason = None
    except EventError as e:
        event, reason = None, e.reason
    if event is None:
        assert reason in (EventErrorReason.INVALID, EventErrorReason.UNKNOWN_KIND)
    else:
        assert event.kind == body["kind"]
