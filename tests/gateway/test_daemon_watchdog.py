"""The daemon's systemd notifications as real processes: READY with a status line, and watchdog
pings that stop when a pipeline stage or the uplink's publisher is stuck although the event loop
keeps running, and go on while they only wait (for input, for a broker that is away)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final

import pytest

from foundation.clock import SystemClock
from gateway.health import WEDGE_ENV
from gateway.outbox import Outbox, OutboxConfig
from gateway.uplink.publisher import PUBLISH_STAGE
from tests.fixtures.mosquitto import Broker, free_port, stop_process
from tests.gateway.uplink.helpers import event

#: systemd's WatchdogSec= for these daemons: pings every 1 s, a stall limit of 2 s.
WATCHDOG_USEC: Final = 2_000_000
#: After the wedged daemon said it stalled, both are watched this long (three timeouts).
OBSERVE_S: Final = 6.0
QUEUED: Final = 5


def config(tmp_path: Path, name: str, host: str, port: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'gateway_id = "{name}"\nstate_dir = "{tmp_path / name}"\n'
        f'[uplink]\nhost = "{host}"\nport = {port}\ntransport = "tcp"\n'
        "reconnect_min_s = 0.05\n[pipeline]\ntick_s = 0.2\n"
    )
    return path


async def queue_events(tmp_path: Path, name: str) -> None:
    """Events in the gateway's outbox from before it starts."""
    (tmp_path / name).mkdir()
    async with Outbox(tmp_path / name / "outbox.db", OutboxConfig(), SystemClock()) as ob:
        await ob.accept([event(i) for i in range(QUEUED)])


@contextmanager
def notified_daemon(tmp_path: Path, name: str, cfg: Path, **env: str) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / f"{name}.sock"))
    sock.setblocking(False)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / f"{name}.sock"),
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
        **env,
    }
    with (tmp_path / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield sock
    finally:
        stop_process(proc)
        sock.close()


class Received:
    """Every notification from one daemon, with the monotonic time it arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: list[tuple[float, str]] = []

    async def until(self, predicate: str, timeout_s: float = 60.0) -> float:
        """Read until a line starting with ``predicate`` arrives; its arrival time."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            while True:
                data = await loop.sock_recv(self.sock, 4096)
                now = time.monotonic()
                lines = data.decode().split("\n")
                self.lines.extend((now, line) for line in lines)
                if any(line.startswith(predicate) for line in lines):
                    return now

    async def for_(self, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await self.until("\0never", timeout_s=seconds)

    def pings(self, after: float = 0.0) -> int:
        return sum(1 for t, line in self.lines if line == "WATCHDOG=1" and t > after)


@pytest.mark.timeout(120)
async def test_a_wedged_stage_stops_the_pings_a_healthy_daemon_keeps_them(
    mosquitto: Broker, tmp_path: Path
) -> None:
    # The wedged gateway's broker is away (nothing listens), with events queued from before:
    # it still starts (store and forward), and says so.
    await queue_events(tmp_path, "wedged")
    healthy_cfg = config(tmp_path, "healthy", mosquitto.host, mosquitto.port)
    wedged_cfg = config(tmp_path, "wedged", "127.0.0.1", free_port())
    with ExitStack() as stack:
        healthy = Received(stack.enter_context(notified_daemon(tmp_path, "healthy", healthy_cfg)))
        wedged = Received(
            stack.enter_context(
                notified_daemon(tmp_path, "wedged", wedged_cfg, **{WEDGE_ENV: "ticker"})
            )
        )
        await healthy.until("READY=1")
        await wedged.until("READY=1")
        ready_status = next(line for _, line in wedged.lines if line.startswith("STATUS="))
        assert f"outbox {QUEUED} queued" in ready_status
        assert "uplink connected" not in ready_status
        assert "tags present" in ready_status
        await healthy.until("STATUS=uplink connected")

        stalled_at = await wedged.until("STATUS=stalled: ticker busy for", timeout_s=30.0)
        healthy_before = healthy.pings()
        await asyncio.gather(wedged.for_(OBSERVE_S), healthy.for_(OBSERVE_S))

    # The healthy one pinged all along (every second), the wedged one never after its stall.
    assert healthy.pings(after=stalled_at) >= OBSERVE_S / 2
    assert healthy.pings() > healthy_before
    assert wedged.pings(after=stalled_at) == 0
    assert not any(line.startswith("STATUS=stalled") for _, line in healthy.lines)
    log = (tmp_path / "wedged.log").read_text()
    assert "gateway stalled (ticker busy for" in log


@pytest.mark.timeout(120)
async def test_a_wedged_uplink_stops_the_pings_one_waiting_for_its_broker_keeps_them(
    mosquitto: Broker, tmp_path: Path
) -> None:
    # Both have events to send. The wedged one reaches its broker and its publisher hangs on
    # the first lease; the offline one's broker is away: it waits for it, which is healthy.
    await queue_events(tmp_path, "wedged")
    await queue_events(tmp_path, "offline")
    wedged_cfg = config(tmp_path, "wedged", mosquitto.host, mosquitto.port)
    offline_cfg = config(tmp_path, "offline", "127.0.0.1", free_port())
    with ExitStack() as stack:
        wedged = Received(
            stack.enter_context(
                notified_daemon(tmp_path, "wedged", wedged_cfg, **{WEDGE_ENV: PUBLISH_STAGE})
            )
        )
        offline = Received(stack.enter_context(notified_daemon(tmp_path, "offline", offline_cfg)))
        await offline.until("READY=1")
        await wedged.until("STATUS=uplink connected")
        stalled_at = await wedged.until(f"STATUS=stalled: {PUBLISH_STAGE} busy for", 30.0)
        offline_before = offline.pings()
        await asyncio.gather(wedged.for_(OBSERVE_S), offline.for_(OBSERVE_S))

    assert offline.pings(after=stalled_at) >= OBSERVE_S / 2
    assert offline.pings() > offline_before
    assert not any("uplink connected" in line for _, line in offline.lines)
    assert not any(line.startswith("STATUS=stalled") for _, line in offline.lines)
    assert wedged.pings(after=stalled_at) == 0
    log = (tmp_path / "wedged.log").read_text()
    assert f"gateway stalled ({PUBLISH_STAGE} busy for" in log
