"""``tagrelay outbox stats|peek|export|requeue-dead``: look into the store and forward file.

The file is the one the daemon uses (``--config FILE``: ``state_dir/outbox.db``) or any given
file (``--db PATH``, e.g. a quarantined copy). Reading works beside a running daemon;
``requeue-dead`` writes and so needs the daemon stopped (``systemctl stop tagrelay``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the outbox (SQLite) loads only when a command runs
    from gateway.outbox import OutboxConfig, OutboxError, OutboxStats

__all__ = ["register"]

EXIT_ERROR = 1
#: The daemon holds the store; try again when it is stopped.
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h

#: ``EventClass`` names, spelled out so that building the parser does not load the outbox
#: (the CLI tests check they match the enum).
CLASS_NAMES: tuple[str, ...] = ("alarm", "handoff", "presence", "status", "telemetry")

#: Figures only the running daemon holds in memory; the file cannot tell them, so ``stats``
#: names them instead of printing zeros. The daemon reports them over MQTT (``outbox.stats``).
DAEMON_ONLY: tuple[str, ...] = (
    "leased",
    "duplicates",
    "refused",
    "commits",
    "dedup_keys",
    "dedup_shortened_to_s",
    "disk_full_cap_bytes",
    "quarantined",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "outbox", help="inspect the outbox (stats, peek, export, requeue-dead)", description=__doc__
    )
    actions = parser.add_subparsers(dest="outbox_action", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("--db", type=Path, metavar="PATH", help="an outbox database file")
        where.add_argument(
            "--config", type=Path, metavar="FILE", help="the daemon's TOML configuration"
        )
        return sub

    stats = add("stats", "depth and bytes per class, oldest age, dead letters, losses")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(func=_stats)

    peek = add("peek", "show the next events in lease order (or dead letters)")
    peek.add_argument("--class", dest="event_class", choices=CLASS_NAMES, help="only this class")
    peek.add_argument("-n", type=int, default=10, metavar="N", help="how many (default: 10)")
    peek.add_argument("--dead", action="store_true", help="show dead letters instead")
    peek.set_defaults(func=_peek)

    export = add("export", "write every queued event (or dead letter) as JSON lines")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--dead", action="store_true", help="export dead letters instead")
    export.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write here (default: stdout)"
    )
    export.set_defaults(func=_export)

    requeue = add("requeue-dead", "move every dead letter back into the queue")
    requeue.set_defaults(func=_requeue)


def _locate(args: argparse.Namespace) -> tuple[Path, OutboxConfig] | None:
    from gateway.outbox import OutboxConfig

    if args.db is not None:
        return Path(args.db), OutboxConfig()
    from gateway.config import ConfigError, load_config
    from gateway.daemon import OUTBOX_FILE_NAME

    try:
        config = load_config(args.config, secrets=False)
    except ConfigError as exc:
        print(f"tagrelay: invalid configuration {exc}", file=sys.stderr)
        return None
    return config.state_dir / OUTBOX_FILE_NAME, config.outbox


def _fail(exc: OutboxError) -> int:
    from gateway.outbox import OutboxErrorReason

    print(f"tagrelay outbox: {exc}", file=sys.stderr)
    return EXIT_LOCKED if exc.reason is OutboxErrorReason.LOCKED else EXIT_ERROR


def _format_age(age_s: float | None) -> str:
    if age_s is None:
        return "-"
    if age_s < 120:
        return f"{age_s:.0f}s"
    if age_s < 7200:
        return f"{age_s / 60:.0f}m"
    if age_s < 172800:
        return f"{age_s / 3600:.1f}h"
    return f"{age_s / 86400:.1f}d"


def _print_stats(path: Path, stats: OutboxStats, max_bytes: int, out: TextIO) -> None:
    print(f"outbox {path}", file=out)
    print(f"  store epoch   {stats.store_epoch}", file=out)
    print(f"  {'class':<10} {'depth':>9} {'bytes':>12} {'oldest':>8}", file=out)
    for c in stats.classes:
        name = c.event_class.name.lower()
        age = _format_age(c.oldest_age_s)
        print(f"  {name:<10} {c.depth:>9} {c.bytes:>12} {age:>8}", file=out)
    pct = 100.0 * stats.total_bytes / max_bytes
    print(
        f"  {'total':<10} {stats.depth:>9} {stats.total_bytes:>12}  ({pct:.1f}% of {max_bytes})",
        file=out,
    )
    print(f"  dead letters  {stats.dead_letters}", file=out)
    if stats.losses:
        for loss in stats.losses:
            name = loss.event_class.name.lower()
            print(f"  lost          {loss.count} {name} ({loss.reason})", file=out)
    else:
        print("  lost          0", file=out)
    print(
        "  (read from the file; ages as of the daemon's last commit. Only the running daemon\n"
        f"   knows: {', '.join(DAEMON_ONLY)}; ask it with its outbox.stats command)",
        file=out,
    )


def _stats(args: argparse.Namespace) -> int:
    from gateway.outbox import OutboxError
    from gateway.outbox.inspection import file_stats

    located = _locate(args)
    if located is None:
        return EXIT_ERROR
    path, config = located
    try:
        stats = file_stats(path)
    except OutboxError as exc:
        return _fail(exc)
    if args.json:
        body = {
            "path": str(path),
            "source": "file",
            "daemon_only": list(DAEMON_ONLY),
            "store_epoch": stats.store_epoch,
            "schema_version": stats.schema_version,
            "classes": {
                c.event_class.name.lower(): {
                    "depth": c.depth,
                    "bytes": c.bytes,
                    "oldest_age_s": c.oldest_age_s,
                }
                for c in stats.classes
            },
            "depth": stats.depth,
            "total_bytes": stats.total_bytes,
            "max_bytes": config.max_bytes,
            "dead_letters": stats.dead_letters,
            "losses": [
                {"class": x.event_class.name.lower(), "reason": x.reason, "count": x.count}
                for x in stats.losses
            ],
        }
        print(json.dumps(body))
    else:
        _print_stats(path, stats, config.max_bytes, sys.stdout)
    return 0


def _peek(args: argparse.Namespace) -> int:
    from gateway.outbox import EventClass, OutboxError
    from gateway.outbox.inspection import iter_rows

    located = _locate(args)
    if located is None:
        return EXIT_ERROR
    event_class = None if args.event_class is None else EventClass[args.event_class.upper()]
    try:
        for row in iter_rows(located[0], dead=args.dead, event_class=event_class, limit=args.n):
            print(json.dumps(row, indent=2))
            _warn_damaged(row)
    except OutboxError as exc:
        return _fail(exc)
    return 0


def _export(args: argparse.Namespace) -> int:
    from gateway.outbox import OutboxError
    from gateway.outbox.inspection import iter_rows

    located = _locate(args)
    if located is None:
        return EXIT_ERROR
    out = sys.stdout if args.output is None else args.output.open("w", encoding="utf-8")
    count = damaged = 0
    try:
        for row in iter_rows(located[0], dead=args.dead):
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
            count += 1
            damaged += _warn_damaged(row)
    except OutboxError as exc:
        return _fail(exc)
    finally:
        if out is not sys.stdout:
            out.close()
    note = f" ({damaged} damaged, flagged in the output)" if damaged else ""
    print(f"exported {count} {'dead letters' if args.dead else 'events'}{note}", file=sys.stderr)
    return 0


def _warn_damaged(row: dict[str, object]) -> int:
    """Name a row whose text is damaged (shown escaped, listed under ``damaged``); 1 if so."""
    if "damaged" not in row:
        return 0
    print(f"tagrelay outbox: row {row['row_id']} is damaged: {row['damaged']}", file=sys.stderr)
    return 1


def _requeue(args: argparse.Namespace) -> int:
    from gateway.outbox import OutboxError, OutboxErrorReason
    from gateway.outbox.inspection import requeue_dead_letters

    located = _locate(args)
    if located is None:
        return EXIT_ERROR
    path, config = located
    if not path.exists():
        return _fail(OutboxError(OutboxErrorReason.IO_ERROR, f"{path}: no such outbox file"))
    try:
        count = requeue_dead_letters(path, config)
    except OutboxError as exc:
        return _fail(exc)
    print(f"re-queued {count} dead letters")
    return 0
