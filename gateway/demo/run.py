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
import os
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

from gateway.demo.platform import platform_commands
from gateway.demo.processes import private_broker, stop_child
from gateway.demo.recorder import Recorder, recording
from simulator.epcis import epcis_settings
from simulator.gateway_config import BrokerAddress
from simulator.world import PowerCut, Scenario

__all__ = ["DemoOptions", "DemoOutcome", "run_demo"]

_log = logging.getLogger(__name__)

#: The simulator starts its bus, ptys and fake BlueZ in about a second; a busy machine is slower.
SIMULATOR_START_TIMEOUT_S: Final = 60.0
#: Each gateway process imports, opens its stores and connects in a few seconds.
GATEWAY_ONLINE_TIMEOUT_S: Final = 60.0
#: How long the gateways may take to answer the platform's commands (they are online).
COMMANDS_ANSWERED_TIMEOUT_S: Final = 60.0
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
    lead_in_s: float = 10.0
    """Real seconds the world is held at t = 0 while the gateways start and the platform's
    commands are answered (the demo checks they were in time)."""


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
            _enable_epcis(path, options.scenario, gw)
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
    fleet = _Fleet(paths, out / "logs")
    stack.push_async_callback(fleet.stop_all)
    for gw in sorted(paths):
        await fleet.start(gw)
    gateways = fleet.procs
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
    ids = {str(c.payload["id"]) for c in commands}
    answered = await recorder.wait_for(
        lambda: ids <= {str(r.get("id")) for r in recorder.results} or stop.is_set(),
        COMMANDS_ANSWERED_TIMEOUT_S,
    )
    progress.note(f"platform: {len(commands)} commands sent ({_tally(c.name for c in commands)})")
    if not answered:
        problems.append(
            f"platform commands not all answered after {COMMANDS_ANSWERED_TIMEOUT_S:.0f} s"
        )
        progress.note(f"warning: {problems[-1]}")
    ready_at = clock()
    if ready_at is not None and ready_at > 0 and not stop.is_set():
        problems.append(
            f"the world started {ready_at:.0f} simulated s before the gateways and the platform "
            f"were ready: give a longer --lead-in than {options.lead_in_s:g} s"
        )
        progress.note(f"warning: {problems[-1]}")
    elif ready_at is not None:
        progress.note(
            f"ready {-ready_at / options.speed:.1f} s before the world starts "
            f"(lead-in {options.lead_in_s:g} s)"
        )
    # Short-lived tasks, not owned: each ends or is cancelled below.
    cuts = asyncio.create_task(_power_cuts(options, fleet, clock, progress))
    finished = asyncio.create_task(sim.wait())
    stopping = asyncio.create_task(stop.wait())
    exited: set[str] = set()
    try:
        while not finished.done() and not stop.is_set():
            await asyncio.wait({finished, stopping}, timeout=progress.every_s)
            for gw, proc in gateways.items():
                if proc.returncode is not None and gw not in exited and gw not in fleet.cut:
                    exited.add(gw)
                    problems.append(f"{gw} exited with status {proc.returncode}")
                    progress.note(f"warning: {problems[-1]} (see {out / 'logs' / (gw + '.log')})")
            progress.show(_status(recorder, clock, options))
    finally:
        stopping.cancel()
        cuts.cancel()
        if not finished.done():
            finished.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cuts
    completed = sim.returncode == 0 and not stop.is_set()
    if sim.returncode not in (None, 0):
        problems.append(f"the simulator exited with status {sim.returncode}")
    progress.note(_status(recorder, clock, options))
    progress.note(
        "stopping: simulator, gateways, recorder" + ("" if options.broker else ", broker")
    )
    await stop_child(sim)
    codes = await fleet.stop_all()
    for gw, code in codes.items():
        if code != 0 and gw not in exited and gw not in fleet.cut:
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


def _enable_epcis(path: Path, scenario: Scenario, gateway_id: str) -> None:
    """Switch the EPCIS output profile on (``output = "both"``) in a written configuration: a
    door gateway's read point is its door as an SGLN extension of the site's GLN, a vehicle
    gateway names its vehicle. The items keep the names the platform binds them to (its
    ``tags.bind`` commands), so the settings' own tag bindings are left out."""
    with path.open("rb") as f:
        config = tomllib.load(f)
    config["epcis"] = epcis_settings(scenario, gateway_id, output="both")["epcis"]
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
        "--lead-in", str(options.lead_in_s),
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


class _Fleet:
    """The ``tagrelay run`` children, one per gateway; a power cut kills one and starts it
    again (same configuration, same state directory, its log appended)."""

    def __init__(self, paths: dict[str, Path], logs: Path) -> None:
        self.paths = paths
        self.logs = logs
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        #: Gateways whose power is off right now (their exit is the fault, not a failure).
        self.cut: set[str] = set()

    async def start(self, gw: str) -> asyncio.subprocess.Process:
        with (self.logs / f"{gw}.log").open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "run", "--config", str(self.paths[gw]),
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.procs[gw] = proc
        return proc

    async def power_cut(self, gw: str) -> int | None:
        """SIGKILL, as a power cut: nothing drains, nothing says goodbye. The pid, or None
        when it had already gone."""
        proc = self.procs[gw]
        self.cut.add(gw)
        if proc.returncode is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        return proc.pid

    async def power_back(self, gw: str) -> asyncio.subprocess.Process:
        proc = await self.start(gw)
        self.cut.discard(gw)
        return proc

    async def stop_all(self) -> dict[str, int | None]:
        procs = dict(self.procs)
        codes = await asyncio.gather(*(stop_child(p) for p in procs.values()))
        return dict(zip(procs, codes, strict=True))


async def _power_cuts(
    options: DemoOptions,
    fleet: _Fleet,
    clock: Callable[[], float | None],
    progress: _Progress,
) -> None:
    """The scenario's ``power_cut`` faults, on the gateways the demo owns: each cut gateway's
    process is killed at the fault's time and started again ``down_s`` later."""
    cuts = sorted(
        (f for f in options.scenario.faults if isinstance(f, PowerCut)), key=lambda f: f.t_s
    )
    if not cuts:
        return
    restarts: set[asyncio.Task[None]] = set()

    async def back_after(gw: str, down_s: float) -> None:
        await asyncio.sleep(down_s / options.speed)
        proc = await fleet.power_back(gw)
        progress.note(f"power back: {gw} started again (pid {proc.pid})")

    try:
        for fault in cuts:
            now = clock()
            if now is None:
                return  # no scenario clock to follow
            await asyncio.sleep(max(0.0, (fault.t_s - now) / options.speed))
            targets = [fault.gateway] if fault.gateway is not None else sorted(fleet.paths)
            for gw in targets:
                if gw in fleet.cut:
                    continue  # already off
                pid = await fleet.power_cut(gw)
                t = clock()
                progress.note(
                    f"power cut: {gw} killed (pid {pid}) at t={t if t is None else round(t)} s, "
                    f"back in {fault.down_s:g} s"
                )
                task = asyncio.create_task(back_after(gw, fault.down_s))
                restarts.add(task)
                task.add_done_callback(restarts.discard)
        if restarts:
            await asyncio.gather(*restarts)
    finally:
        for task in list(restarts):
            task.cancel()
