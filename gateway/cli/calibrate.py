"""``tagrelay calibrate``: suggest a zone's enter / exit levels from a tag stood at its edge.

The site engineer puts a tag at the edge of the zone (docs/presence.md, "Calibration"), runs
this on the zone's gateway (with the daemon stopped, or on another adapter), and gets the levels
to paste into the configuration. It scans with the configured adapter for ``--seconds``, keeps
the RSSI of every advert of ``--tag``, prints progress, then the suggestion and its warnings.
``--save`` writes the samples to a JSON file, so that a second run at the neighbouring zone's
nearest spot can be given as ``--neighbour FILE`` to keep the zones apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Final

__all__ = ["register"]

EXIT_CONFIG: Final = 78
EXIT_NO_DATA: Final = 1
#: Progress line interval: a minute-long recording says how it is going six times.
PROGRESS_EVERY_S: Final = 10.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="suggest a zone's presence levels from a tag stood at its edge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="TOML file")
    parser.add_argument(
        "--tag", required=True, help="the tag id, e.g. ibeacon:<uuid>:<major>:<minor>"
    )
    parser.add_argument(
        "--adapter",
        default=None,
        help="the adapter to listen with (default: the first configured scanner's)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long to record (default: 60)"
    )
    parser.add_argument(
        "--save", type=Path, default=None, metavar="FILE", help="write the samples as JSON"
    )
    parser.add_argument(
        "--neighbour",
        type=Path,
        default=None,
        metavar="FILE",
        help="samples saved at the neighbouring zone's nearest spot (keeps the zones apart)",
    )
    parser.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config
    from gateway.registry import TagIdError, parse_tag_id

    try:
        config = load_config(args.config, secrets=False)
    except ConfigError as exc:
        print(f"tagrelay calibrate: invalid configuration {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        parse_tag_id(args.tag)
    except TagIdError as exc:
        print(f"tagrelay calibrate: --tag: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    scanners = {s.adapter: s for s in config.ble.scanners}
    adapter = args.adapter or next(iter(scanners), None)
    if adapter is None or adapter not in scanners:
        print(
            f"tagrelay calibrate: no [[ble.scanners]] entry for adapter {adapter!r} in "
            f"{args.config}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    neighbour: list[int] | None = None
    if args.neighbour is not None:
        try:
            neighbour = [int(v) for v in json.loads(args.neighbour.read_text())["rssi_dbm"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"tagrelay calibrate: --neighbour {args.neighbour}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if config.ble.dbus_system_bus_address is not None:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = config.ble.dbus_system_bus_address
    samples = asyncio.run(_record(scanners[adapter], args.tag, args.seconds))
    print(f"{len(samples)} adverts of {args.tag} heard on {adapter}")
    if args.save is not None:
        args.save.write_text(json.dumps({"tag": args.tag, "adapter": adapter, "rssi_dbm": samples}))
        print(f"samples written to {args.save}")
    return _suggest(samples, neighbour, scanners[adapter].zone)


async def _record(scanner_config: object, tag: str, seconds: float) -> list[int]:
    from drivers.ble import BleConfig, BleScanner
    from foundation.clock import SystemClock
    from gateway.registry import tag_id
    from protocols.ble import AdvertError, decode_advertisement

    assert isinstance(scanner_config, BleConfig)
    clock = SystemClock()
    samples: list[int] = []
    seen_other = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    next_progress = loop.time() + PROGRESS_EVERY_S
    async with BleScanner(scanner_config, clock=clock) as scanner:
        events = scanner.events()
        while (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(min(left, PROGRESS_EVERY_S)):
                    raw = await anext(events)
            except TimeoutError:
                raw = None
            except StopAsyncIteration:
                break
            if raw is not None:
                try:
                    adverts = decode_advertisement(raw.manufacturer_data, raw.service_data)
                except AdvertError:
                    adverts = []
                if any(tag_id(a, raw.address) == tag for a in adverts):
                    samples.append(raw.rssi)
                else:
                    seen_other += 1
            if loop.time() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                elapsed = seconds - max(0.0, deadline - loop.time())
                print(
                    f"  {elapsed:4.0f} s of {seconds:.0f}: {len(samples)} adverts of the tag, "
                    f"{seen_other} of other devices",
                    flush=True,
                )
    return samples


def _suggest(samples: list[int], neighbour: list[int] | None, zone: str) -> int:
    from gateway.presence import CalibrationError, suggest_thresholds

    try:
        s = suggest_thresholds(samples, neighbour_samples=neighbour)
    except CalibrationError as exc:
        print(f"tagrelay calibrate: no suggestion: {exc}", file=sys.stderr)
        return EXIT_NO_DATA
    print(
        f"edge: median {s.edge_median_dbm:.1f} dBm, spread {s.edge_sigma_db:.1f} dB "
        f"({s.samples} samples)"
    )
    for warning in s.warnings:
        print(f"warning: {warning}")
    print("\nPut this in the configuration and restart the gateway:\n")
    print(f'[presence.zones."{zone}"]')
    print(f"enter_rssi_dbm = {s.enter_rssi_dbm:.1f}")
    print(f"exit_rssi_dbm = {s.exit_rssi_dbm:.1f}")
    return 0
