"""Hypothesis over generated native events of every kind: :func:`render` never raises, and
every EPCIS event it returns is valid against the official schema (URI formats checked) and
carries the eventID GS1's reference generator computes for it."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.epcis import document, render, sgln_uri
from gateway.events import (
    AlertType,
    BindingAction,
    BusinessDocument,
    Event,
    EventSource,
    ExcursionPhase,
    HandoffItemStatus,
    Party,
    Position,
    Quantities,
    Quantity,
    TimeSource,
)
from gateway.registry.gs1 import check_digit
from tests.gateway.epcis.checks import CREATED, reference_hash, schema_errors
from tests.gateway.events import samples

digits = st.text(string.digits, min_size=1, max_size=1)
#: GS1 AI encodable character set 82.
CSET82 = string.ascii_letters + string.digits + "!\"%&'()*+,-./:;<=>?_"


@st.composite
def sscc(draw: st.DrawFn) -> str:
    body = draw(st.text(string.digits, min_size=17, max_size=17))
    return f"https://id.gs1.org/00/{body}{check_digit(body)}"


@st.composite
def sgtin(draw: st.DrawFn) -> str:
    body = draw(st.text(string.digits, min_size=13, max_size=13))
    serial = draw(st.text(CSET82, min_size=1, max_size=20))
    return (
        f"urn:epc:id:sgtin:{body[1:8]}.{body[0]}{body[8:]}.{serial}"
        if draw(st.booleans()) and serial.isalnum()
        else f"https://id.gs1.org/01/{body}{check_digit(body)}/21/{_pct(serial)}"
    )


def _pct(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


@st.composite
def gln(draw: st.DrawFn, valid: bool = True) -> str:
    body = draw(st.text(string.digits, min_size=12, max_size=12))
    digit = check_digit(body) if valid else (check_digit(body) + 1) % 10
    return f"{body}{digit}"


giai = st.builds(
    lambda prefix, ref: f"https://id.gs1.org/8004/{prefix}{_pct(ref)}",
    st.text(string.digits, min_size=6, max_size=9),
    st.text(CSET82, min_size=1, max_size=15),
)
tag_id = st.sampled_from([samples.TAG, samples.LABEL, samples.STRAY, "eddystone:edd1:0badc0ffee01"])
#: Mostly EPCs (so that most events render), also tag ids and any text (which must not).
item = st.integers(0, 9).flatmap(
    lambda n: (
        [sscc(), sgtin(), giai, sscc(), sgtin(), giai, sscc(), tag_id, tag_id][n]
        if n < 9
        else st.text(min_size=1, max_size=40)
    )
)
name = st.text(min_size=1, max_size=40)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
anything = st.floats()
party = st.one_of(
    st.builds(Party, gln=gln(), name=st.none() | name),
    st.builds(Party, gln=gln(valid=False), name=st.none() | name),
    st.builds(Party, name=name),
)
document_type = st.one_of(
    st.sampled_from(["asn", "desadv", "bol", "po", "inv", "recadv"]),
    st.from_regex(r"\A[a-z][a-z0-9_-]{0,31}\Z"),
)
biz_document = st.builds(BusinessDocument, type=document_type, id=st.text(min_size=1, max_size=60))
position = st.none() | st.builds(
    Position, lat=st.floats(-90, 90), lon=st.floats(-180, 180), accuracy_m=st.none()
)


@st.composite
def envelope(draw: st.DrawFn) -> dict[str, Any]:
    """The fields every event has."""
    source = draw(st.sampled_from([TimeSource.GPS, TimeSource.NTP, TimeSource.RTC]))
    return {
        "event_id": draw(st.text(min_size=1, max_size=128)),
        "gateway_id": draw(name),
        "time": draw(times),
        "time_source": source,
        "position": draw(position),
        "source": EventSource(device=draw(st.one_of(tag_id, name))),
        "asset": draw(st.one_of(item, st.none())),
    }


@st.composite
def native_event(draw: st.DrawFn) -> Event:
    common = draw(envelope())
    kind = draw(st.sampled_from(sorted(samples_by_kind)))
    base = samples_by_kind[kind]
    update: dict[str, Any] = dict(common)
    if kind in ("presence.enter", "presence.exit"):
        update |= {"tag": draw(tag_id), "zone": draw(name)}
    elif kind == "handoff.item":
        update |= {"item": draw(item), "status": draw(st.sampled_from(list(HandoffItemStatus)))}
    elif kind == "handoff.report":
        update |= {
            "from_party": draw(party),
            "to_party": draw(party),
            "documents": tuple(draw(st.lists(biz_document, max_size=4))),
            "confirmed": tuple(draw(st.lists(item, max_size=5))),
            "unexpected": tuple(draw(st.lists(item, max_size=3))),
        }
    elif kind in ("delivery.evidence", "delivery.alert"):
        update |= {"item": draw(item), "route_id": draw(name)}
        if kind == "delivery.alert":
            update["alert"] = draw(st.sampled_from(list(AlertType)))
        else:
            update["left_at"] = draw(times)
    elif kind == "route.departure":
        update |= {"on_board": tuple(draw(st.lists(item, max_size=5)))}
    elif kind == "tag.binding":
        tag = draw(tag_id)
        update |= {
            "tag": tag,
            "source": EventSource(device=tag),
            "action": BindingAction.UNBIND if common["asset"] is None else BindingAction.BIND,
            "previous_asset": draw(st.one_of(item, st.none())),
            "command_id": draw(name),
        }
    elif kind == "condition.excursion":
        quantity = draw(st.sampled_from(list(Quantity)))
        update |= {
            "phase": draw(st.sampled_from(list(ExcursionPhase))),
            "profile": draw(name),
            "limit": samples.HIGH.model_copy(update={"quantity": quantity}),
            "start": draw(times),
            "end": draw(st.none() | times),
            "min": draw(anything),
            "max": draw(anything),
            "mean": draw(anything),
        }
    elif kind == "condition.shock":
        update |= {
            "profile": draw(st.none() | name),
            "peak_g": draw(st.floats(min_value=0)),
            "alarm": draw(st.booleans()),
        }
    elif kind == "telemetry.reading":
        values = draw(
            st.dictionaries(st.sampled_from(sorted(Quantities.model_fields)), finite, min_size=1)
        )
        ints = {"battery_mv", "movement_count", "voc_index", "nox_index"}
        update["values"] = Quantities.model_validate(
            {k: int(v) if k in ints else v for k, v in values.items()}
        )
    event = base.model_copy(update=update)
    # Every generated event is a valid native event: it goes through the model's validation.
    return type(base).model_validate(event.model_dump())


samples_by_kind: dict[str, Event] = {e.kind: e for e in samples.ALL_SAMPLES}
config: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.builds(
        lambda g, ext: {"read_point": sgln_uri(g, ext), "biz_location": sgln_uri(g)},
        gln(),
        st.text(CSET82, min_size=1, max_size=20),
    ),
    st.just({"vehicle": "https://id.gs1.org/8004/4012345VAN-0042"}),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=native_event(), options=config)
def test_render_never_raises_and_everything_it_returns_is_valid(
    event: Event, options: dict[str, str]
) -> None:
    rendering = render(event, **options)
    if rendering.events:
        assert schema_errors(document(list(rendering.events), created=CREATED)) == []
    for epcis_event in rendering.events:
        assert epcis_event["eventID"] == reference_hash(epcis_event)
    assert rendering == render(event, **options)  # deterministic
