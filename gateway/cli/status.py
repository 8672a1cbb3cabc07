"""'tagrelay status': what a running gateway is doing, in one screen.

Read from the daemon's metrics endpoint ('[metrics]' in its configuration, or '--url') and
its outbox file: the broker link, each driver and when it last produced data, the tags present
per zone, open handoff sessions and excursions, and the backlog with an estimated drain time
(from two scrapes '--sample' seconds apart). '--json' prints the same as one JSON object.
Exit status 0 when the daemon answered, 3 when it did not (nothing listens at the URL), 2 for a
configuration or usage problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["EXIT_NOT_RUNNING", "Scrape", "parse_scrape", "register"]

#: Exit status when no daemon answers (like ``systemctl status`` for a stopped unit).
EXIT_NOT_RUNNING: Final = 3
EXIT_USAGE: Final = 2
#: A loopback scrape takes milliseconds; a daemon that does not answer in this long is stuck.
SCRAPE_TIMEOUT_S: Final = 5.0
DEFAULT_CONFIG: Final = Path("/etc/tagrelay/tagrelay.toml")
#: Two scrapes this far apart give the drain rate: long enough to see a few PUBACKs on a busy
#: link, short enough for an engineer waiting at a terminal.
DEFAULT_SAMPLE_S: Final = 2.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="summary of a running gateway (link, drivers, zones, backlog)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"the gateway's configuration (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--url", help="metrics endpoint (default: from [metrics] in the configuration)"
    )
    parser.add_argument(
        "--sample",
        type=float,
        default=DEFAULT_SAMPLE_S,
        metavar="SECONDS",
        help=f"time between the two scrapes the drain rate comes from (default: "
        f"{DEFAULT_SAMPLE_S:g}; 0: one scrape, no rate)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object for scripts")
    parser.set_defaults(func=_status)


@dataclass(slots=True)
class Scrape:
    """Samples of one scrape: metric name -> [(labels, value)]."""

    at_s: float
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float | None:
        for have, value in self.samples.get(name, ()):
            if all(have.get(k) == v for k, v in labels.items()):
                return value
        return None

    def total(self, name: str) -> float:
        return sum(v for _, v in self.samples.get(name, ()))

    def by(self, name: str, label: str) -> dict[str, float]:
        return {have.get(label, ""): v for have, v in self.samples.get(name, ())}

    def sum_by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for have, v in self.samples.get(name, ()):
            key = have.get(label, "")
            out[key] = out.get(key, 0.0) + v
        return out


def parse_scrape(text: str, at_s: float) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    scrape = Scrape(at_s)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scrape.samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return scrape


def _fetch(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
        body = response.read().decode("utf-8")
    return parse_scrape(body, time.monotonic())


def _status(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config

    try:
        config = load_config(args.config, secrets=False)
    except ConfigError as exc:
        print(f"tagrelay status: invalid configuration {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.url is None and not config.metrics.enabled:
        print(
            f"tagrelay status: metrics are off in {args.config}: set [metrics] enabled = true "
            "(or give --url)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    url: str = args.url or config.metrics.url
    outbox = config.state_dir / "outbox.db"
    backlog = _file_backlog(outbox)
    try:
        first = _fetch(url)
        second = None
        if args.sample > 0:
            time.sleep(args.sample)
            second = _fetch(url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        message = (
            f"tagrelay status: no gateway answers at {url} ({reason}): is it running? "
            "(systemctl status tagrelay; journalctl -u tagrelay)"
        )
        if args.json:
            print(json.dumps({"running": False, "url": url, "error": str(reason), **backlog}))
        print(message, file=sys.stderr)
        if not args.json and backlog.get("backlog"):
            b = backlog["backlog"]
            print(
                f"outbox {outbox}: {b['events']} events waiting, oldest {_age(b['oldest_age_s'])}",
                file=sys.stderr,
            )
        return EXIT_NOT_RUNNING
    report = summarize(first, second, backlog or None, url=url)
    if args.json:
        print(json.dumps(report, indent=None, sort_keys=True))
    else:
        _print_table(report)
    return 0


def _file_backlog(path: Path) -> dict[str, Any]:
    """The outbox file's own view (also readable while the daemon is down)."""
    if not path.exists():
        return {}
    from gateway.outbox import OutboxError
    from gateway.outbox.inspection import file_stats

    try:
        stats = file_stats(path)
    except (OutboxError, OSError) as exc:
        return {"outbox_error": str(exc)}
    ages = [c.oldest_age_s for c in stats.classes if c.oldest_age_s is not None]
    return {
        "backlog": {
            "file": str(path),
            "events": stats.depth,
            "bytes": stats.total_bytes,
            "oldest_age_s": max(ages) if ages else None,
            "dead_letters": stats.dead_letters,
            "by_class": {c.event_class.name.lower(): c.depth for c in stats.classes},
        }
    }


def summarize(
    first: Scrape, second: Scrape | None, file_backlog: Mapping[str, Any] | None, *, url: str
) -> dict[str, Any]:
    """The report as a JSON-able dict (what ``--json`` prints)."""
    now = second or first
    info = next(iter(now.samples.get("tagrelay_build_info", [])), ({}, 0.0))[0]
    restarts = now.sum_by("tagrelay_driver_restarts_total", "driver")
    received = {
        **now.by("tagrelay_adverts_received_total", "source"),
        **now.by("tagrelay_frames_received_total", "source"),
    }
    drivers = [
        {
            "name": name,
            "last_data_age_s": round(age, 1),
            "received": int(received.get(name, 0)),
            "restarts": int(restarts.get(name, 0)),
        }
        for name, age in sorted(now.by("tagrelay_driver_last_data_age_seconds", "driver").items())
    ]
    clock_state = next(
        (s for s, v in now.by("tagrelay_clock_state", "state").items() if v == 1), "unknown"
    )
    depth_by_class = {k: int(v) for k, v in now.by("tagrelay_outbox_events", "class").items()}
    oldest = max(now.by("tagrelay_outbox_oldest_age_seconds", "class").values(), default=0.0)
    depth = sum(depth_by_class.values())
    rate: float | None = None
    eta: float | None = None
    if second is not None and second.at_s > first.at_s:
        dt = second.at_s - first.at_s
        acked = second.total("tagrelay_mqtt_events_acked_total") - first.total(
            "tagrelay_mqtt_events_acked_total"
        )
        added = second.total("tagrelay_events_total") - first.total("tagrelay_events_total")
        rate = acked / dt
        shrinking = (acked - added) / dt
        if depth == 0:
            eta = 0.0
        elif shrinking > 0:
            eta = depth / shrinking
    report: dict[str, Any] = {
        "running": True,
        "url": url,
        "gateway_id": info.get("gateway_id"),
        "version": info.get("version"),
        "link": {
            "connected": now.value("tagrelay_mqtt_connected") == 1,
            "connects": int(now.total("tagrelay_mqtt_connects_total")),
            "reconnects": int(now.total("tagrelay_mqtt_reconnects_total")),
        },
        "clock": {
            "state": clock_state,
            "offset_s": now.value("tagrelay_clock_offset_seconds"),
        },
        "drivers": drivers,
        "zones": {k: int(v) for k, v in now.by("tagrelay_presence_tags", "zone").items()},
        "handoff_sessions_open": int(now.total("tagrelay_handoff_sessions_open")),
        "excursions_open": int(now.total("tagrelay_condition_excursions_open")),
        "backlog": {
            "events": depth,
            "bytes": int(now.total("tagrelay_outbox_bytes")),
            "oldest_age_s": round(oldest, 1),
            "by_class": depth_by_class,
            "bytes_by_class": {
                k: int(v) for k, v in now.by("tagrelay_outbox_bytes", "class").items()
            },
            "oldest_age_s_by_class": {
                k: round(v, 1)
                for k, v in now.by("tagrelay_outbox_oldest_age_seconds", "class").items()
            },
            "dead_letters": int(now.total("tagrelay_outbox_dead_letters")),
            "drain_rate_events_per_s": None if rate is None else round(rate, 2),
            "drain_eta_s": None if eta is None else round(eta, 1),
        },
    }
    if file_backlog is not None:
        report["outbox_file"] = dict(file_backlog)
    return report


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_table(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    link = report["link"]
    clock = report["clock"]
    state = "[green]connected[/]" if link["connected"] else "[red]disconnected[/]"
    console.print(
        f"[bold]{report['gateway_id']}[/] tagrelay {report['version']}  link {state} "
        f"({link['reconnects']} reconnects)  clock {clock['state']}"
        + ("" if clock["offset_s"] is None else f" (offset {clock['offset_s']:+.3f} s)")
    )
    drivers = Table(title="Drivers", title_justify="left")
    for column in ("driver", "last data", "received", "restarts"):
        drivers.add_column(column, justify="left" if column == "driver" else "right")
    for d in report["drivers"]:
        drivers.add_row(
            d["name"], _age(d["last_data_age_s"]) + " ago", str(d["received"]), str(d["restarts"])
        )
    console.print(drivers)
    zones = Table(title="Tags present", title_justify="left")
    zones.add_column("zone")
    zones.add_column("tags", justify="right")
    for zone, n in sorted(report["zones"].items()):
        zones.add_row(zone, str(n))
    console.print(zones)
    console.print(
        f"open handoff sessions: {report['handoff_sessions_open']}   "
        f"open excursions: {report['excursions_open']}"
    )
    b = report["backlog"]
    backlog = Table(title="Backlog", title_justify="left")
    backlog.add_column("class")
    for column in ("events", "bytes", "oldest"):
        backlog.add_column(column, justify="right")
    for cls, n in b["by_class"].items():
        oldest = b["oldest_age_s_by_class"].get(cls)
        backlog.add_row(
            cls, str(n), str(b["bytes_by_class"].get(cls, 0)), _age(oldest) if n else "-"
        )
    console.print(backlog)
    console.print(f"backlog: {_backlog_line(b)}")


def _backlog_line(b: Mapping[str, Any]) -> str:
    parts: Iterable[str] = (
        f"{b['events']} events, {b['bytes']} bytes, oldest {_age(b['oldest_age_s'])}",
        f"dead letters {b['dead_letters']}",
    )
    rate, eta = b["drain_rate_events_per_s"], b["drain_eta_s"]
    if rate is None:
        drain = "drain rate not sampled"
    elif eta is None:
        drain = f"draining {rate:.1f} events/s, not shrinking: no estimate"
    else:
        drain = f"draining {rate:.1f} events/s, empty in about {_age(eta)}"
    return ", ".join([*parts, drain])
