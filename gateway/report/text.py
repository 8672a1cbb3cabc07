"""The summary as a person reads it at the end of a run. Pure: lines of text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["summary_lines"]


def _items(values: list[str], limit: int = 8) -> str:
    if not values:
        return "none"
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown} (+{len(values) - limit} more)"


def _s(value: object) -> str:
    return (
        "?" if value is None else f"{value:g} s" if isinstance(value, float | int) else str(value)
    )


def _verdict(agree: bool) -> str:
    return "AGREES with the truth" if agree else "DIFFERS from the truth"


def summary_lines(summary: dict[str, Any], truth: dict[str, Any] | None = None) -> Iterator[str]:
    yield f"Run summary (scenario time from {summary.get('start') or 'the first event'})"
    yield ""
    yield "Handoffs"
    if not summary["handoffs"]:
        yield "  none"
    for h in summary["handoffs"]:
        state = f"closed ({h['close_reason']})" if h["reported"] else "NOT REPORTED"
        yield (
            f"  {h['gateway']} {h['door']} session {h['session_id']}: {state}, "
            f"{h['expected']} expected"
        )
        yield f"    confirmed  {len(h['confirmed']):3d}  ({h['confirmed_live']} live)"
        yield f"    missing    {len(h['missing']):3d}  {_items(h['missing'])}"
        yield f"    unexpected {len(h['unexpected']):3d}  {_items(h['unexpected'])}"
    yield "Excursions"
    if not summary["excursions"]:
        yield "  none"
    for x in summary["excursions"]:
        end = _s(x["end_s"]) if x["closed"] else "still open"
        yield (
            f"  {x['item']} at {x['gateway']}: {x['quantity']} {x['bound']} {x['limit']} "
            f"({x['profile']}, {x['rule']}): {_s(x['start_s'])} to {end}, "
            f"duration {_s(x['duration_s'])}, max {x['max']}, MKT {x['mkt_c']} °C"
        )
    yield "Shocks"
    if not summary["shocks"]:
        yield "  none"
    for s in summary["shocks"]:
        alarm = ", alarm" if s["alarm"] else ""
        yield f"  {s['item']} at {s['gateway']}, {_s(s['t_s'])}: peak {s['peak_g']} g{alarm}"
    if summary["deliveries"] or summary["departures"]:
        yield "Deliveries"
        right = [d for d in summary["deliveries"] if d["right_stop"]]
        yield f"  {len(right)} at the right stop"
        for d in summary["deliveries"]:
            if not d["right_stop"]:
                yield (
                    f"  WRONG STOP: {d['item']} left at {d['stop']} (for {d['intended_stop']})"
                    f" at {_s(d['t_s'])}"
                )
        for d in summary["departures"]:
            yield (
                f"  route {d['route']} departed at {_s(d['t_s'])}: missing "
                f"{_items(d['missing'])}; misloaded {_items(d['misloaded'])}"
            )
    alerts = summary["alerts"]
    if alerts.get("left_on_board") or alerts.get("misload"):
        yield "Alerts"
        for a in alerts.get("left_on_board", []):
            yield f"  left on board: {a['item']} at {a['stop']} ({_s(a['t_s'])})"
        for a in alerts.get("misload", []):
            yield f"  misload: {a['item']} ({_s(a['t_s'])})"
    yield "Events (published copies / delivered distinct)"
    for kind, n in summary["events"].items():
        yield f"  {kind:22s} {n['published']:7d} / {n['delivered']:7d}"
    if summary["gateways"]:
        yield "Gateways"
    for gw, g in summary["gateways"].items():
        depth = "" if g["outbox_depth"] is None else f", outbox depth {g['outbox_depth']}"
        yield f"  {gw}: {g['births']} birth(s), last status {g['state']} ({g['reason']}){depth}"
    commands = summary["commands"]
    sent = sum(commands["sent"].values())
    yield (
        f"Platform commands: {sent} sent, {commands['ok']} answered ok, "
        f"{len(commands['failed'])} refused"
    )
    for f in commands["failed"][:5]:
        yield f"  refused: {f['command']} {f['id']}: {f['error']}"
    if truth is None:
        return
    yield ""
    yield f"Beside the ground truth of {truth['scenario']}"
    for h in truth["handoffs"]["items"]:
        t = h["truth"]
        yield (
            f"  handoff at {h['door']}: truth {len(t['confirmed'])} confirmed / "
            f"{len(t['missing'])} missing / {len(t['unexpected'])} unexpected: "
            f"{_verdict(h['agree'])}"
        )
        for k in ("confirmed", "missing", "unexpected"):
            if h.get(f"{k}_wrong"):
                yield f"    {k} differs on {_items(h[f'{k}_wrong'])}"
    if truth["handoffs"]["claimed_by_neighbours"]:
        yield f"    claimed by neighbours: {_items(truth['handoffs']['claimed_by_neighbours'])}"
    for x in truth["excursions"]["items"]:
        t, f = x["truth"], x["found"]
        got = "not found" if f is None else f"found {_s(f['start_s'])} to {_s(f['end_s'])}"
        yield (
            f"  excursion {x['item']} {x['quantity']}: truth {_s(t['start_s'])} to "
            f"{_s(t['end_s'])}, {got} (within {_s(x['tolerance_s'])}): {_verdict(x['agree'])}"
        )
    if truth["excursions"]["extra"]:
        yield f"  {len(truth['excursions']['extra'])} excursion(s) the truth does not have"
    for s in truth["shocks"]["items"]:
        f = s["found"]
        got = "not found" if f is None else f"found {f['peak_g']} g at {_s(f['t_s'])}"
        yield (
            f"  shock {s['item']}: truth {s['truth']['peak_g']} g at {_s(s['truth']['t_s'])}, "
            f"{got}: {_verdict(s['agree'])}"
        )
    for name in ("deliveries", "departures", "left_on_board", "misloads"):
        c = truth[name]
        if c["truth"] or c["found"]:
            yield (
                f"  {name.replace('_', ' ')}: truth {len(c['truth'])}, found {len(c['found'])}: "
                f"{_verdict(c['agree'])}"
            )
            for row in c["lacking"][:5]:
                yield f"    lacking {row}"
            for row in c["extra"][:5]:
                yield f"    extra {row}"
    yield ""
    yield "Overall: " + (
        "the run AGREES with the ground truth"
        if truth["agree"]
        else "the run DIFFERS from the ground truth (see above)"
    )
