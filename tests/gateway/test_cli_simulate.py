"""``tagrelay simulate`` as an operator runs it: a real process, one JSON line, Ctrl-C stops it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from gateway.cli import build_parser

#: Starting Python, dbus-daemon and the ptys takes well under a second; generous for CI.
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@pytest.fixture
def workdir() -> Any:
    with tempfile.TemporaryDirectory(prefix="tr-cli-") as d:
        yield Path(d)


def is_symlink(path: str) -> bool:
    return Path(path).is_symlink()


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "simulate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def simulate(workdir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await start("cross-dock", "--speed", "20", "--workdir", str(workdir))
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_json_line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    async with asyncio.timeout(START_TIMEOUT_S):
        line = await proc.stdout.readline()
    assert line, "simulate exited before printing where to look"
    data: dict[str, Any] = json.loads(line)
    return data


def test_simulate_is_a_subcommand() -> None:
    args = build_parser().parse_args(["simulate", "cross-dock", "--speed", "5", "--duration", "9"])
    assert (args.scenario, args.speed, args.duration, args.workdir) == (
        "cross-dock",
        5.0,
        9.0,
        None,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "cross-dock", "--speed", "0"])
    start = build_parser().parse_args(["simulate", "x", "--start", "2026-05-01T08:00:00+02:00"])
    assert start.start == datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    now = build_parser().parse_args(["simulate", "x", "--start", "now"]).start
    assert abs((now - datetime.now(UTC)).total_seconds()) < 60
    for bad in ("2026-05-01T08:00:00", "yesterday"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["simulate", "x", "--start", bad])
    assert build_parser().parse_args(["simulate", "x"]).lead_in == 0.0
    assert build_parser().parse_args(["simulate", "x", "--lead-in", "7.5"]).lead_in == 7.5
    for bad in ("-1", "nan", "x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["simulate", "x", "--lead-in", bad])


async def test_prints_where_to_look_and_stops_cleanly_on_sigint(
    simulate: asyncio.subprocess.Process, workdir: Path
) -> None:
    where = await read_json_line(simulate)
    assert where["scenario"] == "cross-dock"
    assert where["pid"] == simulate.pid
    assert where["env"]["DBUS_SYSTEM_BUS_ADDRESS"] == where["dbus_address"]
    assert where["adapters"] == ["hci0", "hci1", "hci2", "hci3"]
    door3 = next(g for g in where["gateways"] if g["id"] == "gw-door-03")
    reader = door3["smartlabel_port"]
    assert is_symlink(reader)
    assert Path(reader).parent.parent == workdir
    trailer = next(g for g in where["gateways"] if g["id"] == "gw-trailer-17")
    assert is_symlink(trailer["gps_port"])

    # The D-Bus address really leads to an org.bluez with the four adapters.
    bus = await MessageBus(bus_address=where["dbus_address"]).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
        assert reply is not None
        assert reply.message_type is MessageType.METHOD_RETURN
        adapters = {p for p, ifaces in reply.body[0].items() if "org.bluez.Adapter1" in ifaces}
        assert adapters == {f"/org/bluez/hci{n}" for n in range(4)}
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    simulate.send_signal(signal.SIGINT)
    async with asyncio.timeout(STOP_TIMEOUT_S):
        _, err = await simulate.communicate()
    assert simulate.returncode == 0, err.decode()
    assert b"stopped at t=" in err
    assert b"Traceback" not in err
    assert not is_symlink(reader)  # unplugged on the way out


async def test_sigterm_also_stops_cleanly(simulate: asyncio.subprocess.Process) -> None:
    await read_json_line(simulate)
    simulate.send_signal(signal.SIGTERM)
    async with asyncio.timeout(STOP_TIMEOUT_S):
        _, err = await simulate.communicate()
    assert simulate.returncode == 0, err.decode()
    assert b"stopped at t=" in err


async def test_runs_to_the_duration_and_exits_by_itself(workdir: Path) -> None:
    proc = await start(
        "delivery-route", "--speed", "600", "--duration", "300", "--workdir", str(workdir)
    )
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1  # exactly one JSON object on stdout; the rest is on stderr
    where = json.loads(lines[0])
    assert where["duration_s"] == 300.0
    assert where["start"] == "2026-03-02T08:00:00+00:00"  # the scenario's own start
    assert b"finished at t=300s" in err
    assert b"s of 300s: " in err  # progress lines go to stderr


async def test_unknown_scenario_is_a_clear_error() -> None:
    proc = await start("no-such-scenario")
    async with asyncio.timeout(START_TIMEOUT_S):
        out, err = await proc.communicate()
    assert proc.returncode == 2
    assert out == b""
    assert b"no-such-scenario" in err
    assert b"cross-dock" in err  # it lists what is shipped


OUTAGE_SCENARIO = """
name = "outage"
duration_s = 7200

[[doors]]
id = "D1"
lat = 50.0
lon = 8.0
gateway = { id = "gw-d1", smartlabel_reader = false }

[[items]]
id = "BOX"
at = "D1"
tags = [{ format = "smartlabel", label_id = 1 }]

[[faults]]
kind = "broker_outage"
t_s = 10
down_s = 3600

[[faults]]
kind = "power_cut"
t_s = 20
"""


def process_state(pid: int) -> str:
    """The state letter in /proc/PID/stat: T while stopped."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def wait_state(pid: int, state: str) -> None:
    # Poll with a deadline: a signal to another process gives us no event to await.
    async with asyncio.timeout(START_TIMEOUT_S):
        while process_state(pid) != state:  # noqa: ASYNC110 - no event exists for this
            await asyncio.sleep(0.02)


async def test_broker_outage_freezes_the_broker_and_power_cut_kills(workdir: Path) -> None:
    scenario = workdir / "outage.toml"
    scenario.write_text(OUTAGE_SCENARIO)
    sleeper = (sys.executable, "-c", "import time; time.sleep(120)")
    broker = await asyncio.create_subprocess_exec(*sleeper)
    gateway = await asyncio.create_subprocess_exec(*sleeper)
    proc = await start(
        str(scenario),
        "--speed",
        "10",
        "--workdir",
        str(workdir / "run"),
        "--broker-pid",
        str(broker.pid),
        "--power-cut-pid",
        str(gateway.pid),
    )
    try:
        assert (await read_json_line(proc))["scenario"] == "outage"
        await wait_state(broker.pid, "T")  # frozen at t = 10 s, for 360 s of real time
        async with asyncio.timeout(START_TIMEOUT_S):
            assert await gateway.wait() == -signal.SIGKILL  # the power cut at t = 20 s
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(STOP_TIMEOUT_S):
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        # Stopping in the middle of the outage thaws the broker.
        assert process_state(broker.pid) != "T"
        assert b"resumed" in err
    finally:
        for p in (proc, broker, gateway):
            if p.returncode is None:
                p.kill()
                await p.wait()


async def test_writes_a_config_per_gateway_that_run_accepts(workdir: Path) -> None:
    from gateway.config import load_config, missing_files

    configs = workdir / "configs"
    proc = await start(
        "cross-dock",
        "--speed",
        "20",
        "--workdir",
        str(workdir),
        "--gateway-configs",
        str(configs),
        "--broker",
        "mqtt://127.0.0.1:18830",
    )
    try:
        where = await read_json_line(proc)
        written = where["gateway_configs"]
        assert set(written) == {g["id"] for g in where["gateways"]}
        for gw in where["gateways"]:
            config = load_config(Path(written[gw["id"]]))
            assert config.gateway_id == gw["id"]
            assert config.uplink.host == "127.0.0.1"
            assert config.uplink.port == 18830
            assert config.uplink.transport == "tcp"
            assert config.ble.dbus_system_bus_address == where["dbus_address"]
            (scanner,) = config.ble.scanners
            assert scanner.adapter == gw["adapter"]
            expected_zone = "cargo" if gw["vehicle"] else f"door-{gw['door'].lower()}"
            assert scanner.zone == expected_zone
            readers = [r.path for r in config.smartlabel_readers]
            assert readers == ([gw["smartlabel_port"]] if gw["smartlabel_port"] else [])
            gps = config.gps
            assert (gps.serial.path if gps and gps.serial else None) == gw["gps_port"]
            assert config.state_dir == configs / gw["id"] / "state"
            sim = config.simulated_clock
            assert sim is not None
            assert (sim.speed, sim.start.isoformat()) == (20.0, where["start"])
            assert missing_files(config) == ()  # the ptys exist while the world runs
        # And the command line says so too.
        check = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "config",
            "check",
            written["gw-door-03"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await check.communicate()
        assert check.returncode == 0, (out + err).decode()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()


async def test_gateway_configs_need_a_valid_broker(workdir: Path) -> None:
    for args in (
        ("--gateway-configs", str(workdir / "c")),
        ("--gateway-configs", str(workdir / "c"), "--broker", "http://x:1"),
    ):
        proc = await start("cross-dock", *args)
        async with asyncio.timeout(START_TIMEOUT_S):
            out, err = await proc.communicate()
        assert proc.returncode == 2, err.decode()
        assert out == b""
        assert b"broker" in err
