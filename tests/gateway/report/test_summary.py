"""The run summary from crafted event logs: every class of finding, missing kinds, duplicates,
batches, EPCIS documents, the three log shapes, and the comparison with a scenario's truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gateway.report import (
    Record,
    asset_uri,
    compare_with_truth,
    parse_log,
    summarize,
    summary_lines,
)
from simulator.world import load_scenario

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
P = "tagrelay/v1"


def at(t_s: float) -> str:
    return datetime.fromtimestamp(START.timestamp() + t_s, UTC).isoformat()


def ev(
    kind: str, n: int, gw: str = "gw-door-03", t_s: float = 0.0, **fields: Any
) -> dict[str, Any]:
    return {"event_id": f"{kind}-{n}", "kind": kind, "gateway_id": gw, "time": at(t_s), **fields}


def rec(payload: Any, gw: str = "gw-door-03", path: str = "events/x") -> Record:
    return Record(f"{P}/{gw}/{path}", payload, None)


def test_a_log_without_any_finding_gives_empty_classes() -> None:
    summary = summarize([], START)
    assert summary["handoffs"] == []
    assert summary["excursions"] == []
    assert summary["shocks"] == []
    assert summary["deliveries"] == []
    assert summary["departures"] == []
    assert summary["alerts"] == {"left_on_board": [], "misload": [], "misdelivery": []}
    assert summary["events"] == {}
    assert summary["commands"] == {"sent": {}, "ok": 0, "failed": []}
    assert list(summary_lines(summary))  # renders without a finding


def test_handoff_report_names_items_by_their_scenario_ids() -> None:
    a, b, c = (asset_uri(i) for i in ("PCL-1", "PCL-2", "PCL-3"))
    report = ev(
        "handoff.report", 1, t_s=400, session_id="S1", door="door-d3", close_reason="window_end",
        expected=[a, b], confirmed=[a], missing=[b], unexpected=[c],
    )  # fmt: skip
    item = ev(
        "handoff.item", 2, t_s=300, session_id="S1", door="door-d3", item=a, status="confirmed"
    )
    summary = summarize([rec(item), rec(report), rec(report)], START)
    (h,) = summary["handoffs"]
    assert h == {
        "gateway": "gw-door-03", "door": "door-d3", "session_id": "S1", "reported": True,
        "close_reason": "window_end", "expected": 2, "confirmed": ["PCL-1"],
        "missing": ["PCL-2"], "unexpected": ["PCL-3"], "confirmed_live": 1,
    }  # fmt: skip
    # A report delivered twice is published twice and delivered once.
    assert summary["events"]["handoff.report"] == {"published": 2, "delivered": 1}


def test_an_opened_session_without_a_report_shows_its_live_items() -> None:
    a = asset_uri("PCL-1")
    open_cmd = Record(f"{P}/gw-door-03/cmd/handoff/open", {"id": "o", "session_id": "S9",
                      "door": "door-d3", "expected": [a, asset_uri("PCL-2")]})  # fmt: skip
    item = ev("handoff.item", 1, session_id="S9", door="door-d3", item=a, status="confirmed")
    (h,) = summarize([open_cmd, rec(item)], START)["handoffs"]
    assert h["reported"] is False
    assert h["expected"] == 2
    assert h["confirmed"] == ["PCL-1"]


def test_excursion_latest_revision_in_scenario_seconds_and_superseded_dropped() -> None:
    pallet = asset_uri("PAL-1")
    limit = {"quantity": "temperature_c", "bound": "high", "value": 8.0}
    common: dict[str, Any] = {"asset": pallet, "limit": limit, "profile": "pharma-2-8"}
    common["rule"] = {"type": "instant"}
    opened = ev("condition.excursion", 1, t_s=790, excursion_id="X", phase="open", revision=0,
                start=at(781.5), end=None, **common)  # fmt: skip
    closed = ev("condition.excursion", 2, t_s=1330, excursion_id="X", phase="close", revision=2,
                start=at(781.5), end=at(1319.0), max=11.4, mkt_c=6.2, close_reason="returned",
                **common)  # fmt: skip
    old = ev("condition.excursion", 3, t_s=900, excursion_id="Y", phase="close", revision=1,
             start=at(700), end=at(800), close_reason="superseded", **common)  # fmt: skip
    (x,) = summarize([rec(closed), rec(opened), rec(old)], START)["excursions"]
    assert x["item"] == "PAL-1"
    assert (x["start_s"], x["end_s"], x["duration_s"]) == (781.5, 1319.0, 537.5)
    assert x["closed"] is True
    assert x["mkt_c"] == 6.2
    assert x["limit"] == 8.0


def test_batches_zlib_free_epcis_documents_and_other_topics() -> None:
    batch = [ev("telemetry.reading", n, values={"temperature_c": 4.0}) for n in range(3)]
    doc = {
        "type": "EPCISDocument",
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventID": "ni:///sha-256;ab?ver=CBV2.0",
                    "eventTime": at(5),
                }
            ]
        },
    }
    status = {
        "kind": "gateway.status",
        "gateway_id": "gw-door-03",
        "state": "offline",
        "reason": "shutdown",
        "outbox_depth": 0,
        "clock_state": "ntp",
    }
    claims = Record(f"{P}/site/x/claims/gw-door-03", {"claims": []})
    summary = summarize(
        [rec(batch), rec(batch[:1]), rec(doc, path="events/epcis/document"),
         Record(f"{P}/gw-door-03/status", status), claims],
        START,
    )  # fmt: skip
    assert summary["events"]["telemetry.reading"] == {"published": 4, "delivered": 3}
    assert summary["events"]["epcis.document"] == {"published": 1, "delivered": 1}
    assert summary["gateways"]["gw-door-03"]["state"] == "offline"
    assert summary["gateways"]["gw-door-03"]["births"] == 0
    assert "site" not in json.dumps(summary["events"])


def test_deliveries_right_and_wrong_stops_departures_and_alerts() -> None:
    gw = "gw-van-17"
    evidence = ev("delivery.evidence", 1, gw, 600, item=asset_uri("P1"), stop_id="S01",
                  left_at=at(590), route_id="R")  # fmt: skip
    wrong = ev("delivery.alert", 2, gw, 900, alert="misdelivery", item=asset_uri("P2"),
               actual_stop_id="S06", intended_stop_id="S07", route_id="R")  # fmt: skip
    lob = ev("delivery.alert", 3, gw, 1000, alert="left_on_board", item=asset_uri("P3"),
             actual_stop_id="S02", intended_stop_id="S02", route_id="R")  # fmt: skip
    misload = ev("delivery.alert", 4, gw, 100, alert="misload", item=asset_uri("P4"),
                 actual_stop_id=None, intended_stop_id=None, route_id="R")  # fmt: skip
    departure = ev("route.departure", 5, gw, 90, route_id="R", missing=[asset_uri("P5")],
                   misloaded=[asset_uri("P4")])  # fmt: skip
    summary = summarize([rec(e, gw) for e in (evidence, wrong, lob, misload, departure)], START)
    assert [(d["item"], d["stop"], d["right_stop"]) for d in summary["deliveries"]] == [
        ("P1", "S01", True),
        ("P2", "S06", False),
    ]
    assert summary["deliveries"][0]["t_s"] == 590.0
    assert [(a["item"], a["stop"]) for a in summary["alerts"]["left_on_board"]] == [("P3", "S02")]
    assert [a["item"] for a in summary["alerts"]["misload"]] == ["P4"]
    assert summary["departures"][0]["missing"] == ["P5"]
    lines = "\n".join(summary_lines(summary))
    assert "WRONG STOP: P2 left at S06 (for S07)" in lines
    assert "left on board: P3 at S02" in lines


def test_without_a_start_time_zero_is_the_first_event() -> None:
    shock = ev("condition.shock", 1, t_s=332, asset=asset_uri("PCL-7"), peak_g=60.2, alarm=False)
    first = ev("presence.enter", 2, t_s=300)
    summary = summarize([rec(first), rec(shock)])
    assert summary["shocks"][0]["t_s"] == 32.0
    assert summary["shocks"][0]["item"] == "PCL-7"


def test_the_three_log_shapes_and_unreadable_lines() -> None:
    event = ev("condition.shock", 1, asset=asset_uri("PCL-7"), peak_g=9.0, alarm=False)
    lines = [
        json.dumps({"topic": f"{P}/gw/events/condition/shock", "payload": event, "received": "x"}),
        json.dumps({"row_id": 1, "event_id": "e", "kind": "condition.shock", "payload": event}),
        json.dumps(event),
        json.dumps([event]),
        "not json",
        json.dumps({"something": "else"}),
        "",
    ]
    log = parse_log(lines)
    assert len(log.records) == 4
    assert log.unreadable == 2
    summary = summarize(log.records, START)
    assert summary["events"]["condition.shock"] == {"published": 4, "delivered": 1}


def cross_dock_summary(confirmed: list[str], missing: list[str]) -> dict[str, Any]:
    scenario = load_scenario("cross-dock")
    (truth,) = scenario.ground_truth.handoffs
    report = ev(
        "handoff.report", 1, t_s=1560, session_id="S", door="door-d3", close_reason="window_end",
        expected=[asset_uri(i) for i in truth.expected],
        confirmed=[asset_uri(i) for i in confirmed], missing=[asset_uri(i) for i in missing],
        unexpected=[asset_uri("PCL-0099")],
    )  # fmt: skip
    limit = {"quantity": "temperature_c", "bound": "high", "value": 8.0}
    excursion = ev(
        "condition.excursion", 2, t_s=1330, excursion_id="X", phase="close", revision=3,
        asset=asset_uri("PAL-0001"), limit=limit, profile="pharma-2-8", rule={"type": "instant"},
        start=at(790), end=at(1310), close_reason="returned",
    )  # fmt: skip
    shock = ev("condition.shock", 3, t_s=333, asset=asset_uri("PCL-0007"), peak_g=60.2, alarm=True)
    return summarize([rec(report), rec(excursion), rec(shock)], START)


def test_truth_agrees_with_a_correct_run_and_names_what_differs() -> None:
    scenario = load_scenario("cross-dock")
    (truth,) = scenario.ground_truth.handoffs
    good = compare_with_truth(
        cross_dock_summary(list(truth.confirmed), list(truth.missing)), scenario
    )
    assert good["handoffs"]["agree"] is True
    assert good["excursions"]["agree"] is True
    assert good["shocks"]["agree"] is True
    assert good["deliveries"]["agree"] is True  # no deliveries in either
    assert good["agree"] is True
    # One item confirmed that stayed on board: that handoff differs, on that item.
    wrong = [*list(truth.confirmed), "PCL-0017"]
    bad = compare_with_truth(cross_dock_summary(wrong, ["PCL-0033"]), scenario)
    (row,) = bad["handoffs"]["items"]
    assert row["agree"] is False
    assert row["confirmed_wrong"] == ["PCL-0017"]
    assert bad["excursions"]["agree"] is True
    assert bad["agree"] is False
    text = "\n".join(summary_lines(cross_dock_summary(wrong, ["PCL-0033"]), bad))
    assert "DIFFERS" in text


def test_an_excursion_beyond_one_reporting_period_of_the_truth_disagrees() -> None:
    scenario = load_scenario("cross-dock")
    summary = cross_dock_summary([], [])
    summary["excursions"][0]["start_s"] = 780 + 31  # the pallet reports every 30 s
    result = compare_with_truth(summary, scenario)
    assert result["excursions"]["items"][0]["agree"] is False
    assert result["excursions"]["items"][0]["tolerance_s"] == 30.0
