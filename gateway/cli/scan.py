"""'tagrelay scan': a live table of the BLE tags an adapter hears.

What an engineer runs at a dock door to check a tag and calibrate a zone: each tag's decoded
format and id, the asset it is bound to (from the gateway's state store, when '--config' names
a configuration), its RSSI smoothed, its advertising interval and when it was last heard. It
scans with the daemon's own BLE driver (BlueZ through bleak), so what it shows is what the
daemon would hear; BlueZ lets it scan beside a running daemon. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pydantic import JsonValue
    from rich.table import Table

    from drivers.ble import RawAdvert

__all__ = ["SORT_KEYS", "TagRow", "TagTable", "bound_assets", "register"]

#: Smoothing of RSSI and interval: each new reading weighs this much (about the last five
#: adverts), steady enough to read a number off while a tag is held still.
SMOOTHING: Final = 0.2
#: Table refreshes per second: faster than an engineer reads, slower than a terminal minds.
REFRESH_HZ: Final = 4.0
#: Lines the table needs besides its rows (title, header, borders) and one for the cursor.
TABLE_CHROME_LINES: Final = 6
SORT_KEYS: Final = ("rssi", "last", "id")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="live table of the BLE tags an adapter hears",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--adapter", default="hci0", metavar="hciN", help="the adapter (default: hci0)"
    )
    parser.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="rssi",
        help="rssi: loudest first (default); last: most recently heard first; id",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the gateway's configuration: bound assets from its state store, its D-Bus bus",
    )
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    parser.set_defaults(func=_scan)


@dataclass(slots=True)
class TagRow:
    """One tag as the scan has heard it."""

    tag: str
    format: str
    rssi_dbm: float
    first_s: float
    last_s: float
    interval_s: float | None = None
    adverts: int = 1


class TagTable:
    """The tags heard so far, with smoothed RSSI and advertising interval (pure: time given)."""

    def __init__(self, asset_of: Callable[[str], str | None] = lambda tag: None) -> None:
        self.rows: dict[str, TagRow] = {}
        self.adverts = 0
        self.undecoded = 0
        self._asset_of = asset_of

    def heard(self, tag: str, fmt: str, rssi: int, monotonic: float) -> None:
        row = self.rows.get(tag)
        if row is None:
            self.rows[tag] = TagRow(tag, fmt, float(rssi), monotonic, monotonic)
            return
        gap = monotonic - row.last_s
        if gap > 0:
            # An advert heard on two channels arrives twice at once: no interval in that.
            row.interval_s = (
                gap
                if row.interval_s is None
                else row.interval_s + SMOOTHING * (gap - row.interval_s)
            )
        row.rssi_dbm += SMOOTHING * (rssi - row.rssi_dbm)
        row.last_s = max(row.last_s, monotonic)
        row.format = fmt
        row.adverts += 1

    def asset_of(self, tag: str) -> str | None:
        return self._asset_of(tag)

    def sorted(self, key: str) -> list[TagRow]:
        rows = list(self.rows.values())
        if key == "rssi":
            rows.sort(key=lambda r: (-r.rssi_dbm, r.tag))
        elif key == "last":
            rows.sort(key=lambda r: (-r.last_s, r.tag))
        else:
            rows.sort(key=lambda r: r.tag)
        return rows

    def render(
        self, sort: str, now_s: float, adapter: str, max_rows: int, problem: str | None = None
    ) -> Table:
        from rich.table import Table

        rows = self.sorted(sort)
        shown = f" ({max_rows} shown)" if len(rows) > max_rows else ""
        table = Table(
            title=f"tagrelay scan on {adapter}: {len(rows)} tags{shown}, {self.adverts} adverts "
            f"({self.undecoded} not a tag format), sorted by {sort}",
            title_justify="left",
            caption=problem,
            caption_justify="left",
        )
        table.add_column("format")
        table.add_column("id", overflow="fold")
        table.add_column("asset", overflow="fold")
        table.add_column("RSSI dBm", justify="right")
        table.add_column("interval", justify="right")
        table.add_column("last seen", justify="right")
        # A busy door hears hundreds of tags: the first screenful in the chosen order counts.
        for row in rows[:max_rows]:
            table.add_row(
                row.format,
                row.tag,
                self.asset_of(row.tag) or "-",
                f"{row.rssi_dbm:.0f}",
                "-" if row.interval_s is None else f"{row.interval_s * 1000:.0f} ms",
                f"{max(now_s - row.last_s, 0):.1f} s ago",
            )
        return table


def bound_assets(config_path: Path | None) -> tuple[Mapping[str, str], str | None]:
    """Bindings from the configuration and the state store (read-only: the daemon may be
    running), and the configured D-Bus system bus address."""
    if config_path is None:
        return {}, None
    import sqlite3  # here, not at the top: building the parser must not load SQLite

    from gateway.config import load_config
    from gateway.registry import TagRegistry
    from gateway.registry.registry import TAGS_NAMESPACE
    from gateway.state import STATE_FILE_NAME

    config = load_config(config_path, secrets=False)
    stored: dict[str, JsonValue] = {}
    path = config.state_dir / STATE_FILE_NAME
    if path.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                rows = conn.execute(
                    "SELECT key, value FROM documents WHERE namespace = ?", (TAGS_NAMESPACE,)
                ).fetchall()
        except sqlite3.Error as exc:
            print(f"tagrelay scan: bound assets not read from {path}: {exc}", file=sys.stderr)
            rows = []
        for key, text in rows:
            with contextlib.suppress(ValueError):
                stored[str(key)] = json.loads(str(text))
    registry = TagRegistry(config.tags, stored)
    return dict(registry.bindings()), config.ble.dbus_system_bus_address


def _scan(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError

    try:
        assets, bus = bound_assets(args.config)
    except ConfigError as exc:
        print(f"tagrelay scan: invalid configuration {exc}", file=sys.stderr)
        return 2
    if bus is not None:
        import os

        from gateway.pipeline.pipeline import DBUS_ADDRESS_ENV

        os.environ[DBUS_ADDRESS_ENV] = bus
    table = TagTable(assets.get)
    return asyncio.run(_live(args.adapter, args.sort, args.duration, table))


async def _live(adapter: str, sort: str, duration_s: float | None, table: TagTable) -> int:
    from rich.console import Console
    from rich.live import Live

    from drivers.ble import BleConfig, BleError, BleScanner, ScanMode
    from foundation.clock import SystemClock
    from foundation.lifecycle import TaskOwner
    from gateway.registry import tag_id
    from protocols.ble import AdvertError, decode_advertisement

    clock = SystemClock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)

    def take(raw: RawAdvert) -> None:
        table.adverts += 1
        try:
            adverts = decode_advertisement(raw.manufacturer_data, raw.service_data)
        except AdvertError:
            adverts = []
        found = False
        for advert in adverts:
            tag = tag_id(advert, raw.address)
            if tag is not None:
                found = True
                table.heard(tag, advert.format, raw.rssi, raw.monotonic)
        if not found:
            table.undecoded += 1

    console = Console()

    def render(scanner: BleScanner) -> Table:
        rows = max(console.size.height - TABLE_CHROME_LINES, 1)
        failures = scanner.counters["start_failures"]
        problem = None
        if failures and not scanner.scanning:
            problem = f"{adapter} is not scanning ({failures} failed starts; the log says why)"
        return table.render(sort, clock.monotonic(), adapter, rows, problem)

    try:
        async with BleScanner(BleConfig(adapter=adapter, mode=ScanMode.ACTIVE), clock=clock) as s:
            with Live(
                render(s),
                console=console,
                refresh_per_second=REFRESH_HZ,
                transient=False,
            ) as live:

                async def feed() -> None:
                    async for raw in s.events():
                        take(raw)

                # The feeder is cancelled when the table stops; if it fails, its error ends
                # the scan (and a Ctrl-C while stopping is not swallowed).
                async with TaskOwner("scan") as owner:
                    feeder = owner.spawn(feed(), name="feeder")
                    while not stop.is_set() and not feeder.done():
                        live.update(render(s))
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(1 / REFRESH_HZ):
                                await stop.wait()
                live.update(render(s))
    except BleError as exc:
        print(f"tagrelay scan: {adapter}: {exc}", file=sys.stderr)
        return 1
    return 0
