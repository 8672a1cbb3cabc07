"""One simulated run, end to end, as a user sees it.

Order of things: the broker (private, unless one is given), the recorder subscribed to ``#``,
the simulator (``tagrelay simulate`` as a child, writing one configuration per gateway), one
``tagrelay run`` child per gateway, the platform's commands once every gateway is online, then
progress until the world ends. Every child is stopped by its pid at the end, on Ctrl-C and on
failure: the simulator, then the gateways (SIGTERM: each drains and says it is offline), then
the recorder and the broker. The caller builds the summary from the recorded log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import tomli_w

from gateway.demo.platform import SITE_GLN, platform_commands
from gateway.demo.processes import private_broker, stop_child
from gateway.demo.recorder import Recorder, recording
from gateway.report.names import asset_uri
from simulator.gateway_config import BrokerAddress, door_zone
from simulator.world import Scenario

__all__ = ["DemoOptions", "DemoOutcome", "run_demo"]

_log = logging.getLogger(__name__)

#: The simulator starts its bus, ptys and fake BlueZ in about a second; a busy machine is slower.
SIMULATOR_START_TIMEOUT_S: Final = 60.0
#: Each gateway process imports, opens its stores and connects in a few seconds.
GATEWAY_ONLINE_TIMEOUT_S: Final = 60.0
#: After the gateways stopped, how long the recorder keeps listening for the last messages.
RECORD_TAIL_S: Final = 2.0
#: The topic prefix the simulated gateways publish under (the configuration's default).
TOPIC_PREFIX: Final = "tagrelay/v1"
#: Short prefix of the simulator's work directory: the D-Bus socket path must stay short.
SIM_WORKDIR_PREFIX: Final = "tagrelay-demo-"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    scenario: Scenario
    scenario_arg: str
    speed: float
    out: Path
    broker: str | None = None
    epcis: bool = False
    progress_every_s: float = 1.0


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    completed: bool
    """The world ran to its end (not stopped by Ctrl-C or a failure)."""
    start: datetime | None
    problems: tuple[str, ...]


class _Progress:
    """A status line: rewritten in place on a terminal, one line per update otherwise."""

    def __init__(self, stream: IO[str], every_s: float) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = every_s if self.tty else max(every_s, 10.0)
        self.width = 0

    def show(self, text: str) -> None:
        if self.tty:
            line = text[:160]
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.width = 0
        self.stream.write(text + "\n")
        self.stream.flush()


async def run_demo(options: DemoOptions, progress_stream: IO[str] = sys.stderr) -> DemoOutcome:
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    events = out / "events.jsonl"
    events.write_text("", encoding="utf-8")
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    progress = _Progress(progress_stream, options.progress_every_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    problems: list[str] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            if options.broker is None:
                broker = await stack.enter_async_context(private_broker(out / "broker"))
                url, host, port, broker_pid = broker.url, broker.host, broker.port, broker.pid
                progress.note(f"broker: private mosquitto on {url} (pid {broker_pid})")
            else:
                address = BrokerAddress.parse(options.broker)
                if address.tls:
                    raise ValueError("the demo records over plain MQTT: give mqtt://HOST:PORT")
                url, host, port, broker_pid = options.broker, address.host, address.port, None
            recorder = await stack.enter_async_context(recording(host, port, events))
            return await _run(options, stack, recorder, url, broker_pid, progress, stop, problems)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run(
    options: DemoOptions,
    stack: contextlib.AsyncExitStack,
    recorder: Recorder,
    url: str,
    broker_pid: int | None,
    progress: _Progress,
    stop: asyncio.Event,
    problems: list[str],
) -> DemoOutcome:
    out = options.out
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=SIM_WORKDIR_PREFIX)))
    configs = out / "configs"
    sim, where = await stack.enter_async_context(
        _simulator(options, workdir, configs, url, broker_pid, out / "logs" / "simulate.log")
    )
    start = datetime.fromisoformat(str(where["start"]))
    paths = {gw: Path(p) for gw, p in where["gateway_configs"].items()}
    clock = _clock_of(paths)
    if options.epcis:
        for gw, path in paths.items():
            _enable_epcis(path, where, gw)
    (out / "run.json").write_text(
        json.dumps(
            {
                "scenario": options.scenario.name,
                "scenario_arg": options.scenario_arg,
                "start": start.isoformat(),
                "speed": options.speed,
                "epcis": options.epcis,
                "broker": url,
                "gateways": sorted(paths),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    progress.note(
        f"simulator: {options.scenario.name} at {options.speed:g}x "
        f"({options.scenario.duration_s / options.speed:.0f} s), pid {sim.pid}"
    )
    gateways: dict[str, asyncio.subprocess.Process] = {}
    for gw, path in sorted(paths.items()):
        gateways[gw] = await stack.enter_async_context(_gateway(path, out / "logs" / f"{gw}.log"))
    progress.note("gateways: " + ", ".join(f"{gw} (pid {p.pid})" for gw, p in gateways.items()))
    online = await recorder.wait_for(
        lambda: set(gateways) <= recorder.online or stop.is_set(), GATEWAY_ONLINE_TIMEOUT_S
    )
    if not online:
        missing = sorted(set(gateways) - recorder.online)
        problems.append(f"not online after {GATEWAY_ONLINE_TIMEOUT_S:.0f} s: {', '.join(missing)}")
        progress.note(f"warning: {problems[-1]} (see {out / 'logs'})")
    commands = platform_commands(options.scenario, start)
    for command in commands:
        await recorder.publish(command.topic(TOPIC_PREFIX), command.payload)
    await recorder.flush()
    progress.note(f"platform: {len(commands)} commands sent ({_tally(c.name for c in commands)})")
    # Two short-lived wait tasks, not owned: both end or are cancelled below.
    finished = asyncio.create_task(sim.wait())
    stopping = asyncio.create_task(stop.wait())
    exited: set[str] = set()
    try:
        while not finished.done() and not stop.is_set():
            await asyncio.wait({finished, stopping}, timeout=progress.every_s)
            for gw, proc in gateways.items():
                if proc.returncode is not None and gw not in exited:
                    exited.add(gw)
                    problems.append(f"{gw} exited with status {proc.returncode}")
                    progress.note(f"warning: {problems[-1]} (see {out / 'logs' / (gw + '.log')})")
            progress.show(_status(recorder, clock, options))
    finally:
        stopping.cancel()
        if not finished.done():
            finished.cancel()
    completed = sim.returncode == 0 and not stop.is_set()
    if sim.returncode not in (None, 0):
        problems.append(f"the simulator exited with status {sim.returncode}")
    progress.note(_status(recorder, clock, options))
    progress.note(
        "stopping: simulator, gateways, recorder" + ("" if options.broker else ", broker")
    )
    await stop_child(sim)
    codes = await asyncio.gather(*(stop_child(p) for p in gateways.values()))
    for gw, code in zip(gateways, codes, strict=True):
        if code != 0 and gw not in exited:
            problems.append(f"{gw} stopped with status {code}")
    await asyncio.sleep(RECORD_TAIL_S)  # the offline statuses and last acks reach the recorder
    return DemoOutcome(completed, start, tuple(problems))


def _tally(names: Any) -> str:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in counts.items())


def _clock_of(paths: dict[str, Path]) -> Callable[[], float | None]:
    """Scenario seconds now, from a written configuration's simulated clock (None without)."""
    for path in paths.values():
        with path.open("rb") as f:
            sim = tomllib.load(f).get("simulated_clock")
        if isinstance(sim, dict):
            anchor, speed = float(sim["anchor_monotonic_s"]), float(sim["speed"])
            return lambda: (time.monotonic() - anchor) * speed
    return lambda: None


def _status(recorder: Recorder, clock: Callable[[], float | None], options: DemoOptions) -> str:
    t = clock()
    sim = "?" if t is None else f"{min(t, options.scenario.duration_s):6.0f}"
    events = sum(recorder.events.values())
    return (
        f"t={sim}/{options.scenario.duration_s:.0f} s  events {events:6d}  "
        f"messages {recorder.messages:6d}  online {len(recorder.online)}  "
        f"{recorder.happened}"
    )


def _enable_epcis(path: Path, where: dict[str, Any], gateway_id: str) -> None:
    """Switch the EPCIS output profile on in a written configuration; a door gateway's read
    point is its door as an SGLN extension of the site's GLN."""
    with path.open("rb") as f:
        config = tomllib.load(f)
    epcis: dict[str, Any] = {"enabled": True}
    door = next(
        (g.get("door") for g in where.get("gateways", []) if g.get("id") == gateway_id), None
    )
    vehicle = next(
        (g.get("vehicle") for g in where.get("gateways", []) if g.get("id") == gateway_id), None
    )
    if isinstance(door, str):
        epcis["read_point"] = f"https://id.gs1.org/414/{SITE_GLN}/254/{door_zone(door)}"
        epcis["biz_location"] = f"https://id.gs1.org/414/{SITE_GLN}"
    elif isinstance(vehicle, str):
        # The vehicle as a GIAI: a parcel leaving it is an AggregationEvent (DELETE).
        epcis["vehicle"] = asset_uri(vehicle)
    config["epcis"] = epcis
    header = "".join(
        line + "\n"
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    )
    path.write_text(
        header + "# [epcis] switched on by `tagrelay demo --epcis`.\n" + tomli_w.dumps(config),
        encoding="utf-8",
    )


@contextlib.asynccontextmanager
async def _simulator(
    options: DemoOptions,
    workdir: Path,
    configs: Path,
    url: str,
    broker_pid: int | None,
    log: Path,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    args = [
        "-m", "gateway", "simulate", options.scenario_arg,
        "--speed", str(options.speed),
        "--workdir", str(workdir),
        "--gateway-configs", str(configs),
        "--broker", url,
    ]  # fmt: skip
    if broker_pid is not None:
        args += ["--broker-pid", str(broker_pid)]
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # Ctrl-C in the terminal reaches the demo, which stops it
        )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(SIMULATOR_START_TIMEOUT_S):
            line = await proc.stdout.readline()
        if not line:
            await proc.wait()
            raise RuntimeError(
                f"the simulator exited with status {proc.returncode} before starting (see {log})"
            )
        yield proc, json.loads(line)
    finally:
        await stop_child(proc)


@contextlib.asynccontextmanager
async def _gateway(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "run", "--config", str(config),
            stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        await stop_child(proc)
