"""The ``tagrelay`` command line: one entry point, one sub-command module each.

Each module in :data:`SUBCOMMANDS` exposes ``register(subparsers)``, which adds its parser and
sets ``func`` (taking the parsed namespace, returning the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import cast

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Sub-command modules under ``gateway.cli``, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "run",
    "config",
    "outbox",
    "demo",
    "decode",
    "simulate",
    "calibrate",
    "conditions",
    "report",
)

_VERSION = "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tagrelay",
        description=(
            "tagrelay: edge gateway for parcel and pallet tags (BLE beacons, SmartLabels, GPS) "
            "with durable store and forward over MQTT."
        ),
        epilog="Run 'tagrelay COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"tagrelay {_VERSION}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr (default: INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"gateway.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    func = cast(Callable[[argparse.Namespace], int], args.func)
    return func(args)
