"""Writing a report: ``summary.json``, the printed summary and ``report.png`` from one log."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.report.log import read_log
from gateway.report.summary import summarize
from gateway.report.text import summary_lines
from gateway.report.truth import compare_with_truth
from simulator.world import Scenario

__all__ = ["write_report"]


def write_report(
    events: Path,
    out: Path,
    *,
    start: datetime | None,
    scenario: Scenario | None,
    print_line: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Summarize ``events`` into ``out/summary.json`` and ``out/report.png``, print the text;
    returns what was written to summary.json."""
    log = read_log(events)
    summary = summarize(log.records, start)
    summary["log"] = {
        "file": events.name,
        "records": len(log.records),
        "unreadable": log.unreadable,
    }
    truth = None if scenario is None else compare_with_truth(summary, scenario)
    document = {"summary": summary, "ground_truth": truth}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for line in summary_lines(summary, truth):
        print_line(line)
    from gateway.report.picture import draw_report  # matplotlib: loaded only to draw

    draw_report(log.records, summary, out / "report.png")
    print_line(f"\nwritten: {out / 'summary.json'}, {out / 'report.png'}; from {events}")
    return document
