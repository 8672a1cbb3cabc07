"""``tagrelay report EVENTS.jsonl``: the summary and the picture of a run, from its event log.

Reads any captured log: the ``events.jsonl`` of ``tagrelay demo``, a subscriber's log (one
event or recorded message a line), or ``tagrelay outbox export`` output. Prints the summary,
writes ``DIR/summary.json`` and draws ``DIR/report.png``. With ``--scenario`` (or the
``run.json`` that ``tagrelay demo`` leaves beside its log) the scenario's start is time 0 and
its ground truth is set beside the findings.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Final

__all__ = ["register"]

EXIT_BAD_ARGS: Final = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="summary and picture of a run from a captured event log",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("events", type=Path, metavar="EVENTS.jsonl", help="the captured log")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where summary.json and report.png go (default: beside the log)",
    )
    parser.add_argument(
        "--scenario",
        default=None,
        metavar="SCENARIO",
        help="the scenario the log comes from (a shipped name or a file): its start is t = 0 "
        "and its ground truth is compared (default: from run.json beside the log, if any)",
    )
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from gateway.report.output import write_report
    from simulator.world import Scenario, ScenarioError, load_scenario

    events: Path = args.events
    if not events.is_file():
        print(f"tagrelay report: {events}: no such file", file=sys.stderr)
        return EXIT_BAD_ARGS
    run_file = events.parent / "run.json"
    run: dict[str, object] = {}
    if run_file.is_file():
        try:
            loaded = json.loads(run_file.read_text(encoding="utf-8"))
        except ValueError:
            loaded = {}
        run = loaded if isinstance(loaded, dict) else {}
    name = args.scenario or run.get("scenario_arg") or run.get("scenario")
    scenario: Scenario | None = None
    if isinstance(name, str):
        try:
            scenario = load_scenario(name)
        except ScenarioError as exc:
            if args.scenario is not None:
                print(f"tagrelay report: {exc}", file=sys.stderr)
                return EXIT_BAD_ARGS
            # run.json names the scenario as the demo was given it: from another directory a
            # relative path may not resolve. The findings stand without the truth.
            print(f"tagrelay report: {exc}; no ground truth beside the findings", file=sys.stderr)
    start: datetime | None = None
    if isinstance(run.get("start"), str) and args.scenario is None:
        start = datetime.fromisoformat(str(run["start"]))
    elif scenario is not None and scenario.start is not None:
        start = scenario.start
    write_report(events, args.out or events.parent, start=start, scenario=scenario)
    return 0
