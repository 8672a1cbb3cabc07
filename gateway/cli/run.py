"""``tagrelay run --config FILE``: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

__all__ = ["register"]

#: Exit code for a configuration that cannot be used (systemd: do not restart in a loop).
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the gateway daemon",
        description="Run the gateway until SIGTERM: outbox, MQTT uplink, status and commands.",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="TOML file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Loaded here, not at the top: every tagrelay command builds the whole parser, and the
    # daemon's modules (pydantic models, SQLite, paho) would slow down the light ones.
    from gateway.config import ConfigError, load_config
    from gateway.daemon import run_daemon

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"tagrelay: invalid configuration {exc.path}:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue.location}: {issue.message}", file=sys.stderr)
        return EXIT_CONFIG
    logging.getLogger().setLevel(config.logging.level)
    return asyncio.run(run_daemon(config, os.environ))
