"""What a run found, computed from its event log alone.

:func:`summarize` takes the records of a captured log and returns a JSON-able summary: each
handoff (gateway, door, confirmed / missing / unexpected), each excursion (item, quantity, start
and end in scenario seconds, duration, MKT), each shock, each delivery (right or wrong stop),
departures, left-on-board and misload alerts, the events per kind, and each gateway's last
status. Pure: no I/O, no clock; scenario seconds count from the ``start`` given (the scenario's
t = 0), else from the earliest event time in the log.

Counting: ``published`` is every copy of an event the broker carried (a re-send after a lost
connection counts again), ``delivered`` the distinct events (by ``event_id``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from gateway.report.log import Record
from gateway.report.names import item_name

__all__ = [
    "EPCIS_KIND",
    "Event",
    "describe_event",
    "events_of",
    "expand_payload",
    "parse_time",
    "summarize",
]

Event = dict[str, Any]

#: The kind under which an EPCIS document (no ``kind`` of its own) is counted.
EPCIS_KIND: Final = "epcis.document"
_PHASE_ORDER: Final = {"open": 0, "update": 1, "close": 2}


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.utcoffset() is not None else None


def expand_payload(payload: Any) -> list[Event]:
    """The events in one payload: a single event, a batch, or an EPCIS document (counted as one
    event of kind :data:`EPCIS_KIND`, identified by the EPCIS event ids it holds)."""
    items = payload if isinstance(payload, list) else [payload]
    out: list[Event] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "EPCISDocument":
            body = item.get("epcisBody")
            events = body.get("eventList", []) if isinstance(body, dict) else []
            events = [e for e in events if isinstance(e, dict)]
            ids = sorted(str(e.get("eventID")) for e in events)
            times = sorted(
                str(e["eventTime"]) for e in events if isinstance(e.get("eventTime"), str)
            )
            out.append(
                {
                    "kind": EPCIS_KIND,
                    "event_id": "epcis:" + ",".join(ids),
                    "time": times[0] if times else None,
                    "epcis_types": sorted({str(e.get("type")) for e in events}),
                    "epcis_events": len(events),
                }
            )
        elif isinstance(item.get("kind"), str):
            out.append(item)
    return out


def events_of(records: Iterable[Record]) -> Iterator[Event]:
    """Every event copy in the log, in log order (status messages included, commands not)."""
    for record in records:
        topic = record.topic
        if topic is not None and "/events/" not in topic and not topic.endswith("/status"):
            continue
        yield from expand_payload(record.payload)


def commands_of(records: Iterable[Record]) -> Iterator[tuple[str, str, Any]]:
    """(gateway id, command name, payload) of every platform command the log holds."""
    for record in records:
        topic = record.topic
        if topic is None or "/cmd/" not in topic:
            continue
        head, _, name = topic.partition("/cmd/")
        yield head.rsplit("/", 1)[-1], name.replace("/", "."), record.payload


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(value: object) -> str | None:
    return item_name(value) if isinstance(value, str) else None


def _names(values: object) -> list[str]:
    if not isinstance(values, list):
        return []
    return sorted(item_name(v) for v in values if isinstance(v, str))


def _subject(event: Event) -> str:
    asset = event.get("asset")
    if isinstance(asset, str):
        return item_name(asset)
    source = event.get("source")
    device = source.get("device") if isinstance(source, dict) else None
    return str(device)


class _Clock:
    def __init__(self, start: datetime | None) -> None:
        self.start = start

    def s(self, text: object) -> float | None:
        when = parse_time(text)
        if when is None or self.start is None:
            return None
        return round((when - self.start).total_seconds(), 1)


def _key(event: Event) -> str:
    """An event's identity: its id, or (status messages have none) its whole content."""
    event_id = event.get("event_id")
    if isinstance(event_id, str):
        return event_id
    return json.dumps(event, sort_keys=True, default=str)


def _round(value: object, digits: int = 2) -> object:
    return round(value, digits) if isinstance(value, float) else value


def _unique(events: Sequence[Event]) -> list[Event]:
    seen: set[str] = set()
    out: list[Event] = []
    for e in events:
        key = _key(e)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def summarize(records: Sequence[Record], start: datetime | None = None) -> dict[str, Any]:
    """The summary of a captured log (see the module's docstring)."""
    copies = list(events_of(records))
    if start is None:
        times = [t for t in (parse_time(e.get("time")) for e in copies) if t is not None]
        start = min(times) if times else None
    clock = _Clock(start)
    by_kind: dict[str, list[Event]] = defaultdict(list)
    for e in copies:
        by_kind[str(e["kind"])].append(e)
    unique = {kind: _unique(events) for kind, events in by_kind.items()}
    return {
        "start": None if start is None else start.isoformat(),
        "handoffs": _handoffs(unique, list(commands_of(records))),
        "excursions": _excursions(unique.get("condition.excursion", []), clock),
        "shocks": [
            {
                "gateway": e.get("gateway_id"),
                "item": _subject(e),
                "t_s": clock.s(e.get("time")),
                "peak_g": _round(e.get("peak_g")),
                "alarm": bool(e.get("alarm")),
            }
            for e in unique.get("condition.shock", [])
        ],
        "deliveries": _deliveries(unique, clock),
        "departures": [
            {
                "gateway": e.get("gateway_id"),
                "route": e.get("route_id"),
                "t_s": clock.s(e.get("time")),
                "missing": _names(e.get("missing")),
                "misloaded": _names(e.get("misloaded")),
            }
            for e in unique.get("route.departure", [])
        ],
        "alerts": _alerts(unique.get("delivery.alert", []), clock),
        "events": {
            kind: {"published": len(by_kind[kind]), "delivered": len(unique[kind])}
            for kind in sorted(by_kind)
        },
        "gateways": _gateways(by_kind.get("gateway.status", [])),
        "commands": _commands(records),
    }


def _handoffs(unique: dict[str, list[Event]], commands: list[tuple[str, str, Any]]) -> list[Any]:
    reports = {
        (e.get("gateway_id"), e.get("session_id")): e for e in unique.get("handoff.report", [])
    }
    live: dict[tuple[object, object], list[Event]] = defaultdict(list)
    for e in unique.get("handoff.item", []):
        live[(e.get("gateway_id"), e.get("session_id"))].append(e)
    sessions: list[tuple[Any, Any]] = []
    opened: dict[tuple[object, object], Any] = {}
    for gw, name, payload in commands:
        if name == "handoff.open" and isinstance(payload, dict):
            key = (gw, payload.get("session_id"))
            if key not in opened:
                opened[key] = payload
                sessions.append(key)
    sessions += [k for k in reports if k not in opened]
    sessions += [k for k in live if k not in opened and k not in reports]
    out = []
    for key in sessions:
        report = reports.get(key)
        items = live.get(key, [])
        if report is not None:
            out.append(
                {
                    "gateway": key[0],
                    "door": report.get("door"),
                    "session_id": key[1],
                    "reported": True,
                    "close_reason": report.get("close_reason"),
                    "expected": len(report.get("expected") or []),
                    "confirmed": _names(report.get("confirmed")),
                    "missing": _names(report.get("missing")),
                    "unexpected": _names(report.get("unexpected")),
                    "confirmed_live": sum(1 for e in items if e.get("status") == "confirmed"),
                }
            )
            continue
        plan = opened.get(key, {})
        door = plan.get("door") if isinstance(plan, dict) else None
        out.append(
            {
                "gateway": key[0],
                "door": door if door is not None else next((e.get("door") for e in items), None),
                "session_id": key[1],
                "reported": False,
                "close_reason": None,
                "expected": len(plan.get("expected") or []) if isinstance(plan, dict) else 0,
                "confirmed": sorted(
                    {item_name(str(e.get("item"))) for e in items if e.get("status") == "confirmed"}
                ),
                "missing": [],
                "unexpected": sorted(
                    {
                        item_name(str(e.get("item")))
                        for e in items
                        if e.get("status") == "unexpected"
                    }
                ),
                "confirmed_live": sum(1 for e in items if e.get("status") == "confirmed"),
            }
        )
    return out


def _excursions(events: list[Event], clock: _Clock) -> list[Any]:
    latest: dict[str, Event] = {}
    for e in events:
        key = str(e.get("excursion_id"))
        rank = (int(e.get("revision") or 0), _PHASE_ORDER.get(str(e.get("phase")), 0))
        old = latest.get(key)
        if old is None or rank >= (
            int(old.get("revision") or 0),
            _PHASE_ORDER.get(str(old.get("phase")), 0),
        ):
            latest[key] = e
    out = []
    for e in latest.values():
        if e.get("close_reason") == "superseded":
            continue  # a corrected excursion replaces it
        limit = _dict(e.get("limit"))
        start_s, end_s = clock.s(e.get("start")), clock.s(e.get("end"))
        out.append(
            {
                "gateway": e.get("gateway_id"),
                "item": _subject(e),
                "profile": e.get("profile"),
                "quantity": limit.get("quantity"),
                "bound": limit.get("bound"),
                "limit": limit.get("value"),
                "rule": _dict(e.get("rule")).get("type"),
                "start_s": start_s,
                "end_s": end_s,
                "duration_s": None
                if start_s is None or end_s is None
                else round(end_s - start_s, 1),
                "time_beyond_s": e.get("time_beyond_s"),
                "max": _round(e.get("max")),
                "min": _round(e.get("min")),
                "mkt_c": _round(e.get("mkt_c")),
                "closed": e.get("phase") == "close",
                "close_reason": e.get("close_reason"),
            }
        )
    out.sort(key=lambda x: (str(x["item"]), x["start_s"] or 0.0, str(x["rule"])))
    return out


def _deliveries(unique: dict[str, list[Event]], clock: _Clock) -> list[Any]:
    out = [
        {
            "gateway": e.get("gateway_id"),
            "item": _name(e.get("item")),
            "stop": e.get("stop_id"),
            "intended_stop": e.get("stop_id"),
            "right_stop": True,
            "t_s": clock.s(e.get("left_at") or e.get("time")),
        }
        for e in unique.get("delivery.evidence", [])
    ]
    out += [
        {
            "gateway": e.get("gateway_id"),
            "item": _name(e.get("item")),
            "stop": e.get("actual_stop_id"),
            "intended_stop": e.get("intended_stop_id"),
            "right_stop": False,
            "t_s": clock.s(e.get("time")),
        }
        for e in unique.get("delivery.alert", [])
        if e.get("alert") == "misdelivery"
    ]
    out.sort(key=lambda x: (x["t_s"] if x["t_s"] is not None else 0.0, str(x["item"])))
    return out


def _alerts(events: list[Event], clock: _Clock) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"left_on_board": [], "misload": [], "misdelivery": []}
    for e in events:
        alert = str(e.get("alert"))
        entry = {
            "gateway": e.get("gateway_id"),
            "item": _name(e.get("item")),
            "stop": e.get("actual_stop_id"),
            "intended_stop": e.get("intended_stop_id"),
            "t_s": clock.s(e.get("time")),
        }
        out.setdefault(alert, []).append(entry)
    return out


def _gateways(statuses: list[Event]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in statuses:
        gw = str(e.get("gateway_id"))
        entry = out.setdefault(gw, {"births": 0})
        if e.get("state") == "online":
            entry["births"] += 1
        entry["state"] = e.get("state")
        entry["reason"] = e.get("reason")
        entry["clock_state"] = e.get("clock_state")
        entry["outbox_depth"] = e.get("outbox_depth")
    return dict(sorted(out.items()))


def _commands(records: Sequence[Record]) -> dict[str, Any]:
    sent: Counter[str] = Counter()
    for _, name, _ in commands_of(records):
        sent[name] += 1
    ok = 0
    failed: list[Any] = []
    for record in records:
        if record.topic is None or "/result/" not in record.topic:
            continue
        answer = record.payload
        if isinstance(answer, dict) and answer.get("ok"):
            ok += 1
        elif isinstance(answer, dict):
            failed.append(
                {
                    "command": answer.get("command"),
                    "id": answer.get("id"),
                    "error": answer.get("error"),
                }
            )
    return {"sent": dict(sorted(sent.items())), "ok": ok, "failed": failed}


def describe_event(event: Event) -> str | None:
    """One short line for a notable event (progress display), None for routine ones."""
    kind = event.get("kind")
    gw = event.get("gateway_id")
    if kind == "handoff.item":
        return (
            f"{gw}: {item_name(str(event.get('item')))} {event.get('status')} at "
            f"{event.get('door')} ({event.get('confirmed_count')}/{event.get('expected_count')})"
        )
    if kind == "handoff.report":
        return (
            f"{gw}: handoff {event.get('session_id')} reported: "
            f"{len(event.get('confirmed') or [])} confirmed, {len(event.get('missing') or [])} "
            f"missing, {len(event.get('unexpected') or [])} unexpected"
        )
    if kind == "condition.excursion":
        limit = _dict(event.get("limit"))
        return (
            f"{gw}: excursion {event.get('phase')} on {_subject(event)} "
            f"({limit.get('quantity')} {limit.get('bound')} {limit.get('value')}, "
            f"max {_round(event.get('max'))})"
        )
    if kind == "condition.shock":
        return f"{gw}: shock {_round(event.get('peak_g'), 1)} g on {_subject(event)}"
    if kind == "delivery.evidence":
        return f"{gw}: {_name(event.get('item'))} delivered at {event.get('stop_id')}"
    if kind == "delivery.alert":
        return (
            f"{gw}: ALERT {event.get('alert')} {_name(event.get('item'))} "
            f"(at {event.get('actual_stop_id')}, for {event.get('intended_stop_id')})"
        )
    if kind == "route.departure":
        return (
            f"{gw}: route {event.get('route_id')} departed, "
            f"{len(event.get('missing') or [])} missing, "
            f"{len(event.get('misloaded') or [])} misloaded"
        )
    return None
