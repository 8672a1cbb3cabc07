"""A run's summary beside its scenario's ground truth: the only place the truth is read.

:func:`compare_with_truth` puts, for each class of finding (handoffs, excursions, shocks,
deliveries, departures, left-on-board and misload alerts), what the scenario says a correct
gateway concludes beside what the run's events said, and whether they agree. Pure.

Excursion times agree within one reporting period of the item's sensor (a gateway only knows a
crossing from the readings on either side of it); a shock agrees when one is reported on the
item within :data:`SHOCK_TOLERANCE_S` of the scenario's.
"""

from __future__ import annotations

import math
from typing import Any, Final

from simulator.gateway_config import door_zone
from simulator.world import Scenario

__all__ = ["SHOCK_TOLERANCE_S", "compare_with_truth"]

#: A label reports a shock when it happens; the gateway stamps it on arrival, within seconds.
SHOCK_TOLERANCE_S: Final = 30.0
#: Excursion tolerance for a sensor without a curve of its own (the default reporting period).
DEFAULT_PERIOD_S: Final = 60.0


def compare_with_truth(summary: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    truth = scenario.ground_truth
    out: dict[str, Any] = {
        "scenario": scenario.name,
        "handoffs": _handoffs(summary, scenario),
        "excursions": _excursions(summary, scenario),
        "shocks": _shocks(summary, scenario),
        "deliveries": _pairs(
            "deliveries",
            {(d.item, d.actual_stop, not d.wrong_stop) for d in truth.deliveries},
            {(d["item"], d["stop"], d["right_stop"]) for d in summary["deliveries"]},
            ("item", "stop", "right_stop"),
        ),
        "departures": _pairs(
            "departures",
            {
                (d.route, tuple(sorted(d.missing)), tuple(sorted(d.misloaded)))
                for d in truth.departures
            },
            {
                (d["route"], tuple(d["missing"]), tuple(d["misloaded"]))
                for d in summary["departures"]
            },
            ("route", "missing", "misloaded"),
        ),
        "left_on_board": _pairs(
            "left_on_board",
            {(x.item, x.stop) for x in truth.left_on_board},
            {(a["item"], a["stop"]) for a in summary["alerts"].get("left_on_board", [])},
            ("item", "stop"),
        ),
        "misloads": _pairs(
            "misloads",
            {(m,) for d in truth.departures for m in d.misloaded},
            {(a["item"],) for a in summary["alerts"].get("misload", [])},
            ("item",),
        ),
    }
    out["agree"] = all(v["agree"] for k, v in out.items() if isinstance(v, dict))
    return out


def _pairs(
    name: str, expected: set[tuple[Any, ...]], found: set[tuple[Any, ...]], fields: tuple[str, ...]
) -> dict[str, Any]:
    def rows(values: set[tuple[Any, ...]]) -> list[dict[str, Any]]:
        return [
            {f: list(v) if isinstance(v, tuple) else v for f, v in zip(fields, row, strict=True)}
            for row in sorted(values, key=repr)
        ]

    return {
        "truth": rows(expected),
        "found": rows(found),
        "lacking": rows(expected - found),
        "extra": rows(found - expected),
        "agree": expected == found,
    }


def _handoffs(summary: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    gateway_of = {d.id: d.gateway.id for d in scenario.doors}
    rows = []
    matched: set[int] = set()
    for h in scenario.ground_truth.handoffs:
        zone, gw = door_zone(h.door), gateway_of[h.door]
        found = next(
            (
                (n, s)
                for n, s in enumerate(summary["handoffs"])
                if s["gateway"] == gw and s["door"] == zone and n not in matched
            ),
            None,
        )
        row: dict[str, Any] = {
            "door": h.door,
            "gateway": gw,
            "truth": {
                "confirmed": sorted(h.confirmed),
                "missing": sorted(h.missing),
                "unexpected": sorted(h.unexpected),
            },
            "found": None,
            "agree": False,
        }
        if found is not None:
            n, s = found
            matched.add(n)
            row["found"] = {k: s[k] for k in ("confirmed", "missing", "unexpected")}
            row["reported"] = s["reported"]
            row["agree"] = bool(s["reported"]) and all(
                set(s[k]) == set(row["truth"][k]) for k in ("confirmed", "missing", "unexpected")
            )
            for k in ("confirmed", "missing", "unexpected"):
                row[f"{k}_wrong"] = sorted(set(s[k]) ^ set(row["truth"][k]))
        rows.append(row)
    # Neighbouring doors overhear: anything they confirm or count unexpected of a handoff's
    # items is wrong.
    claimed = []
    for h in scenario.ground_truth.handoffs:
        items = {*h.expected, *h.unexpected}
        for nb in h.neighbours:
            for s in summary["handoffs"]:
                if s["gateway"] == gateway_of[nb]:
                    claimed += sorted(items & {*s["confirmed"], *s["unexpected"]})
    extra = [s["session_id"] for n, s in enumerate(summary["handoffs"]) if n not in matched]
    return {
        "items": rows,
        "claimed_by_neighbours": claimed,
        "extra_sessions": extra,
        "agree": all(r["agree"] for r in rows) and not claimed and not extra,
    }


def _period_s(scenario: Scenario, item_id: str, sensor: str) -> float:
    item = next((i for i in scenario.items if i.id == item_id), None)
    curve = None if item is None else item.sensors.get(sensor)
    return DEFAULT_PERIOD_S if curve is None else curve.period_s


def _excursions(summary: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    found = summary["excursions"]
    rows = []
    used: set[int] = set()
    for e in scenario.ground_truth.excursions:
        bound = "high" if e.above is not None else "low"
        tol = _period_s(scenario, e.item, e.sensor)
        match = None
        for n, x in enumerate(found):
            if (x["item"], x["quantity"], x["bound"]) != (e.item, e.sensor, bound):
                continue
            if x["start_s"] is None or x["end_s"] is None:
                continue
            if abs(x["start_s"] - e.start_s) <= tol and abs(x["end_s"] - e.end_s) <= tol:
                match = n
                break
        candidates = [
            n for n, x in enumerate(found) if (x["item"], x["quantity"]) == (e.item, e.sensor)
        ]
        used.update(candidates)
        rows.append(
            {
                "item": e.item,
                "quantity": e.sensor,
                "truth": {"start_s": e.start_s, "end_s": e.end_s, "limit": e.above or e.below},
                "found": None
                if match is None
                else {k: found[match][k] for k in ("start_s", "end_s", "limit", "mkt_c")},
                "tolerance_s": tol,
                "agree": match is not None,
            }
        )
    extra = [x for n, x in enumerate(found) if n not in used]
    return {"items": rows, "extra": extra, "agree": all(r["agree"] for r in rows) and not extra}


def _shocks(summary: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    found = summary["shocks"]
    rows = []
    used: set[int] = set()
    for s in scenario.shocks:
        peak = round(math.sqrt(sum(g * g for g in s.peak_g)), 1)
        match = next(
            (
                n
                for n, x in enumerate(found)
                if n not in used
                and x["item"] == s.item
                and x["t_s"] is not None
                and abs(x["t_s"] - s.t_s) <= SHOCK_TOLERANCE_S
            ),
            None,
        )
        if match is not None:
            used.add(match)
        rows.append(
            {
                "item": s.item,
                "truth": {"t_s": s.t_s, "peak_g": peak},
                "found": None if match is None else {k: found[match][k] for k in ("t_s", "peak_g")},
                "agree": match is not None,
            }
        )
    extra = [x for n, x in enumerate(found) if n not in used]
    return {"items": rows, "extra": extra, "agree": all(r["agree"] for r in rows) and not extra}
