"""``tagrelay run --config FILE``: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

__all__ = ["EXIT_CONFIG", "register"]

_log = logging.getLogger("gateway.run")

#: Exit code for a configuration that cannot be used (systemd: do not restart in a loop).
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the gateway daemon",
        description=(
            "Run the gateway until SIGTERM: outbox, MQTT uplink, status and commands. "
            "A configuration it cannot use ends it at once with exit status 78 (EX_CONFIG) "
            "and one line saying which field and why."
        ),
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="TOML file")
    parser.set_defaults(func=_run)


def _refuse(path: Path, issues: list[tuple[str, str]]) -> int:
    what = "; ".join(f"{location}: {message}" for location, message in issues)
    print(f"tagrelay: cannot start, configuration {path}: {what}", file=sys.stderr)
    return EXIT_CONFIG


def _run(args: argparse.Namespace) -> int:
    # Loaded here, not at the top: every tagrelay command builds the whole parser, and the
    # daemon's modules (pydantic models, SQLite, paho) would slow down the light ones.
    from gateway.cli import log_options
    from gateway.config import ConfigError, load_config
    from gateway.daemon import run_daemon
    from gateway.logs import configure_logging
    from gateway.preflight import preflight

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _refuse(exc.path, [(i.location, i.message) for i in exc.issues])
    level, fmt = log_options(args)
    password = config.uplink.password
    configure_logging(
        level or config.logging.level,
        fmt or config.logging.format,
        secrets=() if password is None else (password.get_secret_value(),),
        repeat_window_s=config.logging.repeat_window_s,
    )
    findings = preflight(config)
    if findings.errors:
        return _refuse(args.config, [(i.location, i.message) for i in findings.errors])
    for issue in findings.assumptions:
        _log.warning("configuration %s: %s", issue.location, issue.message)
    for issue in findings.warnings:
        _log.warning("configuration %s: %s", issue.location, issue.message)
    return asyncio.run(run_daemon(config, os.environ))
