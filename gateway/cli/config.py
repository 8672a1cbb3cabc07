"""``tagrelay config check FILE`` and ``tagrelay config show FILE``.

``check`` validates the file and prints a short summary, or every error with its field path;
files that do not exist yet and secrets that cannot be resolved here are warnings. ``show``
prints the effective configuration (defaults filled in) as JSON with secrets redacted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded by the commands themselves: building the parser stays light
    from gateway.config import GatewayConfig

__all__ = ["register"]

EXIT_INVALID = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config", help="check or show a configuration file", description=__doc__
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate FILE and summarise it")
    check.add_argument("file", type=Path, metavar="FILE")
    check.add_argument(
        "--strict", action="store_true", help="treat warnings (missing files, secrets) as errors"
    )
    check.set_defaults(func=_check)
    show = actions.add_parser("show", help="print the effective configuration, secrets redacted")
    show.add_argument("file", type=Path, metavar="FILE")
    show.set_defaults(func=_show)


def _load(path: Path) -> GatewayConfig | None:
    from gateway.config import ConfigError, load_config

    try:
        return load_config(path, secrets=False)
    except ConfigError as exc:
        print(f"{path}: INVALID, {len(exc.issues)} error(s):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue.location}: {issue.message}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    from gateway.config import (
        ConfigError,
        ConfigIssue,
        config_hash,
        missing_files,
        resolve_secrets,
    )

    config = _load(args.file)
    if config is None:
        return EXIT_INVALID
    warnings = list(missing_files(config))
    try:
        config = resolve_secrets(config, args.file)
    except ConfigError as exc:
        warnings.extend(exc.issues)
    up = config.uplink
    security = "TLS" if up.transport == "tls" else "PLAINTEXT (transport = tcp)"
    if up.transport == "tls" and up.tls.cert_file is not None:
        security += " + client certificate"
    auth = f"user {up.username}" if up.username else "no username"
    print(f"{args.file}: OK")
    print(f"  gateway_id   {config.gateway_id}")
    print(f"  state_dir    {config.state_dir}")
    print(f"  broker       {up.host}:{up.port}, MQTT {up.protocol}, {security}, {auth}")
    print(f"  topics       {up.topic_prefix}/{config.gateway_id}/...")
    print(f"  outbox       max {config.outbox.max_bytes} bytes")
    batching = up.batching
    print(
        f"  batching     {'on' if batching.enabled else 'off'}"
        + (
            f" (<= {batching.max_events} events, {batching.max_age_ms} ms, {batching.compression})"
            if batching.enabled
            else ""
        )
    )
    scanners = ", ".join(f"{s.adapter} -> {s.zone}" for s in config.ble.scanners)
    print(f"  ble          {scanners or 'none'}")
    readers = ", ".join(r.path for r in config.smartlabel_readers)
    print(f"  smartlabel   {readers or 'none'}")
    gps = config.gps
    if gps is None:
        gps_text = "none"
    elif gps.source == "gpsd":
        gps_text = f"gpsd {gps.gpsd.host}:{gps.gpsd.port}"
    else:
        gps_text = f"serial {gps.serial.path if gps.serial else '?'}"
    print(f"  gps          {gps_text}")
    if not (config.ble.scanners or config.smartlabel_readers or gps):
        warnings.append(
            ConfigIssue("(devices)", "no BLE scanner, SmartLabel reader or GPS: nothing to hear")
        )
    print(f"  config hash  {config_hash(config)}")
    for warning in warnings:
        print(f"  warning: {warning.location}: {warning.message}")
    return EXIT_INVALID if warnings and args.strict else 0


def _show(args: argparse.Namespace) -> int:
    from gateway.config import redacted_view

    config = _load(args.file)
    if config is None:
        return EXIT_INVALID
    print(json.dumps(redacted_view(config), indent=2))
    return 0
