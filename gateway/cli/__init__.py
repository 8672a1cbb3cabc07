"""The ``tagrelay`` command line: one entry point, one sub-command module each.

Each module in :data:`SUBCOMMANDS` exposes ``register(subparsers)``, which adds its parser and
sets ``func`` (taking the parsed namespace, returning the exit code).

``--log-level`` and ``--log-format`` are accepted before the command and after it (``tagrelay
--log-level DEBUG run`` and ``tagrelay run --log-level DEBUG``); given on the command line they
win over the configuration file. Help texts are written for the terminal: the reStructuredText
markup of the docstrings they come from is removed.
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from gateway.logs import LOG_FORMATS, LOG_LEVELS, LogFormat, configure_logging

__all__ = ["SUBCOMMANDS", "build_parser", "log_options", "main"]

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
    "status",
    "scan",
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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"gateway.cli.{name}")
        module.register(subparsers)
    for each in _all_parsers(parser):
        _add_log_options(each)
        each.formatter_class = _plain(cast(type[argparse.HelpFormatter], each.formatter_class))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command's own default until it knows better (``run`` applies its configuration, and
    # only the daemon collapses repeated lines: a command shows everything it was asked for).
    level, fmt = log_options(args)
    configure_logging(level or "INFO", fmt or "auto", repeat_window_s=0)
    func = cast(Callable[[argparse.Namespace], int], args.func)
    return func(args)


def log_options(args: argparse.Namespace) -> tuple[str | None, LogFormat | None]:
    """``--log-level`` and ``--log-format`` as given on the command line (None: not given)."""
    level: str | None = getattr(args, "log_level", None)
    fmt: LogFormat | None = getattr(args, "log_format", None)
    return level, fmt


def _all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _all_parsers(sub)


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: an option not given leaves no attribute, so a sub-command's parser does not
    # overwrite the value given before the command (read with log_options()).
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="log verbosity; wins over the configuration (default: INFO, or [logging] level)",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=argparse.SUPPRESS,
        help="text, kv (key=value) or json lines; auto: kv under journald, else text",
    )


#: ``literal``, :role:`target` and `interpreted` markup of the docstrings used as help texts.
_RST = re.compile(r"(?::[a-z]+:)?``?([^`]+?)``?")


def _plain(formatter: type[argparse.HelpFormatter]) -> type[argparse.HelpFormatter]:
    """``formatter``, printing reStructuredText literals as plain 'quoted' text."""

    class Plain(formatter):  # type: ignore[valid-type,misc]
        def format_help(self) -> str:
            return _RST.sub(lambda m: f"'{m.group(1)}'", str(super().format_help()))

    return cast(type[argparse.HelpFormatter], Plain)
