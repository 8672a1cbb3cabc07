"""``tagrelay demo SCENARIO``: the main job, one command, on a simulated world.

Starts a private mosquitto on a free loopback port (unless ``--broker``), the simulator with
the scenario, and one ``tagrelay run`` per gateway of the scenario (the configurations the
simulator writes, on the world's clock); plays the platform's part (binds every tag to its
item, opens each handoff session at its door with its manifest and ASN, loads each route,
assigns the items' condition profiles); records every message the broker carried into
``DIR/events.jsonl`` and shows progress. At the end it prints a summary computed from that log
alone, writes ``DIR/summary.json`` (with the scenario's ground truth beside it) and draws
``DIR/report.png``. Exit status 0 when the run completed, whatever it found.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Final

__all__ = ["register"]

EXIT_BAD_ARGS: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_FAILED: Final = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a scenario end to end: simulator, gateways, broker, platform, report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        metavar="SCENARIO",
        help="a shipped scenario (cross-dock, delivery-route, ...) or a scenario file",
    )
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=5.0,
        help="simulated seconds per real second (default: 5)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("demo-out"),
        metavar="DIR",
        help="where events.jsonl, summary.json, report.png and the logs go (default: demo-out)",
    )
    parser.add_argument(
        "--broker",
        default=None,
        metavar="URL",
        help="use this broker (mqtt://HOST:PORT) instead of starting a private mosquitto",
    )
    parser.add_argument(
        "--epcis",
        action="store_true",
        help="switch the gateways' EPCIS 2.0 output profile on: EPCIS documents in events.jsonl",
    )
    parser.add_argument(
        "--lead-in",
        type=_non_negative_float,
        default=10.0,
        metavar="S",
        help="real seconds the world waits at its start while the gateways start and answer "
        "the platform's commands (default: 10; the demo warns when that was too short)",
    )
    parser.set_defaults(func=_demo)


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number >= 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import BrokerError, DemoOptions, run_demo
    from gateway.report.output import write_report
    from simulator.world import ScenarioError, load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"tagrelay demo: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    out: Path = args.out
    options = DemoOptions(
        scenario=scenario,
        scenario_arg=args.scenario,  # the children run in our directory: the same path works
        speed=args.speed,
        out=out,
        broker=args.broker,
        epcis=args.epcis,
        lead_in_s=args.lead_in,
    )
    try:
        outcome = asyncio.run(run_demo(options))
    except (BrokerError, ValueError, RuntimeError, OSError) as exc:
        print(f"tagrelay demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for problem in outcome.problems:
        print(f"tagrelay demo: {problem}", file=sys.stderr)
    print()
    write_report(out / "events.jsonl", out, start=outcome.start, scenario=scenario)
    if not outcome.completed:
        print("tagrelay demo: the run was stopped before the scenario ended", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
