"""``tagrelay scan`` in a pseudo terminal against the simulator's fake BlueZ: the live table
shows the simulated tags with their bound assets, keeps updating, sorts by RSSI and stops on
Ctrl-C; and the table's arithmetic on its own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pexpect
import pytest

from gateway.cli.scan import TagTable
from gateway.registry import smartlabel_tag_id
from simulator.world import IBeaconTag, SmartLabelTag, load_scenario

#: Python, dbus-daemon and the fake BlueZ start in well under a second alone.
START_TIMEOUT_S = 30.0
ROWS, COLUMNS = 40, 220
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
TITLE = re.compile(r"tagrelay scan on hci0: (\d+) tags(?: \(\d+ shown\))?, (\d+) adverts")
ROW = re.compile(r"│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│\s+(-?\d+) │\s+(\S+ ms|-) │\s+([\d.]+) s ago │")


def sscc(serial: int) -> str:
    """A valid SSCC Digital Link URI (GS1 mod-10 check digit)."""
    digits = f"3{4012345:07d}{serial:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return f"https://id.gs1.org/00/{digits}{(10 - total % 10) % 10}"


def scenario_tags() -> dict[str, str]:
    """Every SmartLabel and iBeacon tag of the cross-dock world, bound to an SSCC each."""
    ids: list[str] = []
    for item in load_scenario("cross-dock").items:
        for tag in item.tags:
            if isinstance(tag, SmartLabelTag):
                ids.append(smartlabel_tag_id(tag.label_id))
            elif isinstance(tag, IBeaconTag):
                ids.append(f"ibeacon:{tag.uuid}:{tag.major}:{tag.minor}")
    return {tag: sscc(n) for n, tag in enumerate(sorted(set(ids)), start=1)}


@asynccontextmanager
async def simulation(workdir: Path) -> AsyncIterator[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "simulate",
        "cross-dock",
        "--speed",
        "20",
        "--workdir",
        str(workdir / "sim"),
        "--gateway-configs",
        str(workdir / "configs"),
        # No broker is needed: scan only reads the configuration's bus and state directory.
        "--broker",
        "mqtt://127.0.0.1:9",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = await proc.stdout.readline()
        assert line, "the simulator exited before saying where to look"
        yield json.loads(line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def bind(config: Path, bindings: dict[str, str]) -> None:
    extra = "".join(f'\n[[tags]]\ntag = "{t}"\nasset = "{a}"\n' for t, a in bindings.items())
    config.write_text(config.read_text() + extra)


def frames(screen: str) -> list[tuple[int, int, list[tuple[str, ...]]]]:
    """(tags, adverts, rows) of every table drawn, in order."""
    out = []
    parts = TITLE.split(screen)
    # split() with two groups: [before, tags, adverts, body, tags, adverts, body, ...]
    for i in range(1, len(parts) - 2, 3):
        rows = [m.groups() for m in ROW.finditer(parts[i + 2])]
        out.append((int(parts[i]), int(parts[i + 1]), rows))
    return out


@pytest.mark.timeout(90)
async def test_scan_shows_the_simulated_tags_live_in_a_terminal(tmp_path: Path) -> None:
    bound = scenario_tags()
    async with simulation(tmp_path) as where:
        config = Path(where["gateway_configs"]["gw-door-03"])
        await asyncio.to_thread(bind, config, bound)
        child = pexpect.spawn(
            sys.executable,
            ["-m", "gateway", "scan", "--config", str(config), "--adapter", "hci0"],
            dimensions=(ROWS, COLUMNS),
            env=dict(os.environ),
            timeout=START_TIMEOUT_S,
        )
        try:
            # Wait until several redraws have shown a few tags, then Ctrl-C.
            def seen() -> str:
                chunks = b""
                while True:
                    chunks += child.read_nonblocking(65536, timeout=START_TIMEOUT_S)
                    text = ANSI.sub(b"", chunks).decode(errors="replace")
                    drawn = frames(text)
                    # Several drawings, a few tags, and intervals measured.
                    if (
                        len(drawn) >= 6
                        and drawn[-1][0] >= 5
                        and any(r[4] != "-" for r in drawn[-1][2])
                    ):
                        return text

            screen = await asyncio.to_thread(seen)
            child.sendintr()
            rest = await asyncio.to_thread(child.read)
            child.wait()
        finally:
            if child.isalive():
                child.kill(signal.SIGKILL)
            child.close()
        assert child.exitstatus == 0, rest
        # An adapter BlueZ does not have: the table says it is not scanning, and why is logged.
        missing = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "gateway", "scan", "--config", str(config), "--adapter", "hci9"),
            *("--duration", "3"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(START_TIMEOUT_S):
            out, err = await missing.communicate()
        assert missing.returncode == 0
        assert "hci9 is not scanning" in out.decode()
        assert "adapter 'hci9' not found" in err.decode()
    drawn = frames(screen + ANSI.sub(b"", rest).decode(errors="replace"))
    # It updates: the advert count grows from one drawing to a later one.
    adverts = [a for _, a, _ in drawn]
    assert adverts[-1] > adverts[0]
    assert adverts == sorted(adverts)
    last_tags, _, rows = drawn[-1]
    assert len(rows) == min(last_tags, ROWS - 6)
    ids = [r[1] for r in rows]
    known = [i for i in ids if i.startswith(("ibeacon:", "smartlabel:"))]
    assert known, ids
    for fmt, tag, asset, rssi, _, _ in rows:
        if tag in bound:
            # The simulated world's tags, with the assets the configuration binds them to.
            assert asset == bound[tag]
            assert fmt in ("ibeacon", "smartlabel-adv")
        elif tag.startswith(("ibeacon:", "smartlabel:")):
            pytest.fail(f"{tag} is not a tag of the simulated world")
        assert -127 <= int(rssi) <= 20
    # Loudest first.
    levels = [int(r[3]) for r in rows]
    assert levels == sorted(levels, reverse=True)
    assert any(r[4] != "-" for r in rows), rows  # intervals measured


def test_table_smooths_rssi_and_interval_and_sorts() -> None:
    table = TagTable({"b": "asset-b"}.get)
    table.heard("a", "ibeacon", -70, 10.0)
    table.heard("b", "ruuvi-5", -50, 10.5)
    table.heard("a", "ibeacon", -60, 11.0)
    table.heard("a", "ibeacon", -60, 11.0)  # the same advert on a second channel
    table.heard("a", "ibeacon", -60, 13.0)
    a = table.rows["a"]
    assert a.adverts == 4
    assert a.interval_s == pytest.approx(1.0 + 0.2 * (2.0 - 1.0))
    assert -70 < a.rssi_dbm < -60
    assert [r.tag for r in table.sorted("rssi")] == ["b", "a"]
    assert [r.tag for r in table.sorted("last")] == ["a", "b"]
    assert [r.tag for r in table.sorted("id")] == ["a", "b"]
    assert table.asset_of("b") == "asset-b"
    assert table.asset_of("a") is None


def test_bound_assets_merge_the_config_and_the_state_store_of_a_running_daemon(
    tmp_path: Path,
) -> None:
    from foundation.clock import SystemClock
    from gateway.cli.scan import bound_assets
    from gateway.registry import TagRegistry
    from gateway.state import STATE_FILE_NAME, StateStore

    by_config, by_command = (
        "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:2",
        ("ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:3"),
    )
    config = tmp_path / "gw.toml"
    config.write_text(
        f'gateway_id = "gw"\nstate_dir = "{tmp_path / "state"}"\n'
        '[uplink]\nhost = "127.0.0.1"\ntransport = "tcp"\n'
        '[ble]\ndbus_system_bus_address = "unix:path=/nonexistent"\n'
        f'[[tags]]\ntag = "{by_config}"\nasset = "{sscc(1)}"\n'
    )
    assert bound_assets(None) == ({}, None)
    (tmp_path / "state").mkdir()
    # The daemon holds the state store open while scan reads it.
    with StateStore(tmp_path / "state" / STATE_FILE_NAME, SystemClock()) as store:
        registry = TagRegistry.load(store)
        registry.bind(store, by_command, sscc(2), "cmd-1")
        assets, bus = bound_assets(config)
    assert assets == {by_config: sscc(1), by_command: sscc(2)}
    assert bus == "unix:path=/nonexistent"
