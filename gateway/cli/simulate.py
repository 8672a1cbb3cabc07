"""``tagrelay simulate SCENARIO``: run a simulated world for a gateway to connect to.

Starts the scenario's devices (a private D-Bus bus with a fake BlueZ, SmartLabel readers and GPS
receivers on ptys behind stable symlinks) and prints ONE JSON object on stdout saying where a
gateway should look: ``dbus_address`` (put it in ``DBUS_SYSTEM_BUS_ADDRESS``), the adapter of
each gateway, and its pty symlinks. Progress goes to stderr. The world runs ``--speed`` times
faster than real time until the scenario ends or ``--duration`` simulated seconds have passed;
Ctrl-C or SIGTERM stops it cleanly (every pty unplugged, the bus stopped).

The simulator is imported only when this command runs: the daemon's own paths never load it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from simulator.world import Scenario

__all__ = ["register"]

_log = logging.getLogger(__name__)

EXIT_BAD_SCENARIO: Final = 2
#: Prefix of the temporary work directory: short, because the D-Bus socket lives inside it and
#: a unix socket path must stay under 108 bytes.
WORKDIR_PREFIX: Final = "tagrelay-sim-"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run a simulated world (fake BlueZ, pty serial devices) for a gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        metavar="SCENARIO",
        help="a shipped scenario (cross-dock, delivery-route) or the path of a scenario file",
    )
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="simulated seconds per real second (default: 1)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the bus socket and the pty symlinks go (default: a temporary directory)",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        metavar="S",
        help="stop after S simulated seconds (default: the scenario's duration)",
    )
    parser.add_argument(
        "--start",
        type=_start_time,
        default=None,
        metavar="WHEN",
        help="simulated UTC at t = 0: 'now', or an ISO 8601 time with offset "
        "(default: the scenario's start, else now)",
    )
    parser.add_argument(
        "--power-cut-pid",
        type=int,
        default=None,
        metavar="PID",
        help="the gateway process that the scenario's power_cut faults kill with SIGKILL",
    )
    parser.add_argument(
        "--broker-pid",
        type=int,
        default=None,
        metavar="PID",
        help="the MQTT broker that broker_outage faults freeze (SIGSTOP, then SIGCONT): "
        "connections hang as in a dead zone",
    )
    parser.add_argument(
        "--gateway-configs",
        type=Path,
        default=None,
        metavar="DIR",
        help="write DIR/<gateway id>.toml for every gateway of the scenario: a complete "
        "configuration that `tagrelay run --config` accepts as it is (needs --broker)",
    )
    parser.add_argument(
        "--broker",
        default=None,
        metavar="URL",
        help="the broker the written gateway configurations publish to: mqtt://HOST:PORT "
        "(plaintext) or mqtts://HOST:PORT",
    )
    parser.add_argument(
        "--gateway-clock",
        choices=("scenario", "system"),
        default="scenario",
        help="the clock the written gateway configurations use: the scenario's time at its "
        "speed (default; rules count scenario seconds) or the gateway's own system clock",
    )
    parser.add_argument(
        "--lead-in",
        type=_non_negative_float,
        default=0.0,
        metavar="S",
        help="hold the world at t = 0 for S real seconds after its devices are up, so that "
        "gateways can start and connect before anything happens (default: 0)",
    )
    parser.set_defaults(func=_simulate)


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number >= 0")
    return value


def _start_time(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text}") from exc
    if when.utcoffset() is None:
        raise argparse.ArgumentTypeError("give a UTC offset, e.g. 2026-03-02T06:00:00Z")
    return when.astimezone(UTC)


def _simulate(args: argparse.Namespace) -> int:
    from simulator.world import ScenarioError, load_scenario

    if (args.gateway_configs is None) != (args.broker is None):
        print("tagrelay simulate: --gateway-configs and --broker go together", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    if args.broker is not None:
        from simulator.gateway_config import BrokerAddress

        try:
            BrokerAddress.parse(args.broker)
        except ValueError as exc:
            print(f"tagrelay simulate: {exc}", file=sys.stderr)
            return EXIT_BAD_SCENARIO
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"tagrelay simulate: {exc}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    with contextlib.ExitStack() as stack:
        workdir: Path = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX))
        )
        code = asyncio.run(_run(scenario, workdir, args))
    return code


async def _run(scenario: Scenario, workdir: Path, args: argparse.Namespace) -> int:
    from simulator.runner import ScenarioRunner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with ScenarioRunner(
            scenario,
            workdir,
            speed=args.speed,
            start=args.start,
            duration_s=args.duration,
            power_cut_pid=args.power_cut_pid,
            on_broker_outage=None if args.broker_pid is None else _freezer(args.broker_pid),
            lead_in_real_s=getattr(args, "lead_in", 0.0),
        ) as runner:
            where = runner.endpoints.to_json() | {"pid": os.getpid(), "workdir": str(workdir)}
            if args.gateway_configs is not None:
                from simulator.gateway_config import ScenarioClock, write_gateway_configs

                assert runner.clock is not None  # started
                clock = (
                    ScenarioClock(runner.clock.start, runner.clock.speed, runner.clock.t0_real)
                    if args.gateway_clock == "scenario"
                    else None
                )
                written = write_gateway_configs(
                    runner.endpoints, args.gateway_configs, args.broker, clock
                )
                where["gateway_configs"] = {p.stem: str(p.resolve()) for p in written}
            print(json.dumps(where), flush=True)
            _log.info("scenario %s running at %gx; stop with Ctrl-C", scenario.name, args.speed)
            # Two short-lived wait tasks, not owned: both are cancelled right below.
            finished = asyncio.create_task(runner.wait_finished())
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({finished, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                finished.cancel()
                stopping.cancel()
            why = "finished" if runner.finished.is_set() else "stopped"
            _log.info(
                "scenario %s %s at t=%.0fs: %d adverts, %d label messages, faults %d applied / %d"
                " skipped",
                scenario.name,
                why,
                runner.sim_time_s,
                runner.counters["adverts"],
                runner.counters["label_messages"],
                runner.counters["faults_applied"],
                runner.counters["faults_skipped"],
            )
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return 0


def _freezer(pid: int) -> Callable[[float], Awaitable[None]]:
    """A broker outage: the broker process is frozen, so its peers' packets go unanswered."""

    async def outage(down_real_s: float) -> None:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            _log.warning("broker outage skipped: pid %d is not running", pid)
            return
        _log.info("broker pid %d frozen for %.1fs", pid, down_real_s)
        try:
            await asyncio.sleep(down_real_s)
        finally:
            # Also when the simulation stops mid-outage: never leave the broker frozen.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            _log.info("broker pid %d resumed", pid)

    return outage
