"""``tagrelay config check FILE`` and ``tagrelay config show FILE``.

``check`` validates the file and everything ``tagrelay run`` will need from it on this machine
(files readable, TLS certificates and keys parseable, the state directory creatable, the
password file's permissions), naming the field of each problem. It prints OK and exits 0, or
INVALID with every error and exits 1; warnings (a reader not plugged in yet, an inline or
world-readable password) and assumed defaults are printed too, and with ``--strict`` a warning
fails the check as well. ``show`` prints the effective configuration (every default filled in,
event classes by name) as JSON with secrets redacted.
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
    from gateway.config import ConfigError, config_hash, resolve_secrets
    from gateway.preflight import preflight

    config = _load(args.file)
    if config is None:
        return EXIT_INVALID
    findings = preflight(config)
    warnings = list(findings.warnings)
    try:
        config = resolve_secrets(config, args.file)
    except ConfigError as exc:
        # An environment variable set only in the service's environment: run checks it.
        warnings.extend(i for i in exc.issues if i.location != "uplink.password_file")
    if findings.errors:
        print(f"{args.file}: INVALID, {len(findings.errors)} error(s):", file=sys.stderr)
        for issue in findings.errors:
            print(f"  {issue.location}: {issue.message}", file=sys.stderr)
        for issue in warnings:
            print(f"  warning: {issue.location}: {issue.message}", file=sys.stderr)
        return EXIT_INVALID
    failed = bool(warnings) and args.strict
    up = config.uplink
    security = "TLS" if up.transport == "tls" else "PLAINTEXT (transport = tcp)"
    if up.transport == "tls" and up.tls.cert_file is not None:
        security += " + client certificate"
    auth = f"user {up.username}" if up.username else "no username"
    if failed:
        print(f"{args.file}: FAILED (--strict: {len(warnings)} warning(s))")
    else:
        print(f"{args.file}: OK" + (f" with {len(warnings)} warning(s)" if warnings else ""))
    print(f"  gateway_id   {config.gateway_id}")
    print(f"  state_dir    {config.state_dir}")
    primary, *fallbacks = up.endpoints()
    then = f" (then {', '.join(map(str, fallbacks))})" if fallbacks else ""
    print(f"  broker       {primary}{then}, MQTT {up.protocol}, {security}, {auth}")
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
    triggers = ", ".join(f"{t.vehicle} at {t.door}" for t in config.custody.triggers)
    if triggers:
        print(f"  triggers     {triggers}")
    print(f"  config hash  {config_hash(config)}")
    for assumption in findings.assumptions:
        print(f"  assumed: {assumption.location}: {assumption.message}")
    for warning in warnings:
        print(f"  warning: {warning.location}: {warning.message}")
    return EXIT_INVALID if failed else 0


def _show(args: argparse.Namespace) -> int:
    from gateway.config import redacted_view

    config = _load(args.file)
    if config is None:
        return EXIT_INVALID
    print(json.dumps(redacted_view(config), indent=2))
    return 0
