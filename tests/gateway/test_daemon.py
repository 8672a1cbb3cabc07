"""The daemon as a real process: systemd notify, SIGTERM drains cleanly, SIGKILL leaves the
broker to publish the last will."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from foundation.clock import SystemClock
from gateway.outbox import Outbox, OutboxConfig
from tests.fixtures.mosquitto import Broker, stop_process
from tests.gateway.uplink.helpers import event, subscribe

GATEWAY = "gw-daemon"
STATUS = f"tagrelay/v1/{GATEWAY}/status"


#: The daemon's MQTT password, from the environment; the plain broker takes any credentials.
SECRET = "daemon-secret-pw"


def write_config(tmp_path: Path, broker: Broker, extra: str = "") -> Path:
    path = tmp_path / "tagrelay.toml"
    path.write_text(
        f'gateway_id = "{GATEWAY}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "[uplink]\n"
        f'host = "{broker.host}"\nport = {broker.port}\ntransport = "tcp"\n'
        "reconnect_min_s = 0.05\n" + extra
    )
    return path


@contextmanager
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


@contextmanager
def daemon(tmp_path: Path, config: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        yield proc
    finally:
        stop_process(proc)


async def notifications(sock: socket.socket, until: str, timeout_s: float = 30.0) -> list[str]:
    """Datagrams from the daemon until one equals ``until``."""
    loop = asyncio.get_running_loop()
    got: list[str] = []
    async with asyncio.timeout(timeout_s):
        while until not in got:
            data = await loop.sock_recv(sock, 4096)
            got.extend(data.decode().split("\n"))
    return got


async def test_sigterm_drains_the_outbox_and_says_goodbye(
    mosquitto: Broker, tmp_path: Path
) -> None:
    n = 200
    (tmp_path / "state").mkdir()
    async with Outbox(tmp_path / "state" / "outbox.db", OutboxConfig(), SystemClock()) as ob:
        await ob.accept([event(i) for i in range(n)])
    extra = 'username = "gw"\npassword_env = "TAGRELAY_TEST_PW"\n[logging]\nlevel = "DEBUG"\n'
    config = write_config(tmp_path, mosquitto, extra)
    with notify_socket(tmp_path) as sock:
        env = {
            "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
            "WATCHDOG_USEC": "1000000",
            "TAGRELAY_TEST_PW": SECRET,
        }
        async with subscribe(mosquitto, f"tagrelay/v1/{GATEWAY}/#") as sub:
            with daemon(tmp_path, config, **env) as proc:
                ready = await notifications(sock, "READY=1")
                await sub.wait_until(lambda m: len(sub.events()) >= n)
                proc.send_signal(signal.SIGTERM)
                later = await notifications(sock, "STOPPING=1")
                assert await asyncio.to_thread(proc.wait, 30) == 0
            await sub.wait_until(
                lambda m: any(
                    json.loads(x.payload).get("state") == "offline" for x in m if x.topic == STATUS
                )
            )
    said = ready + later
    assert "WATCHDOG=1" in said
    assert any(m.startswith("STATUS=uplink connected") for m in said)
    statuses = [json.loads(m.payload) for m in sub.messages if m.topic == STATUS]
    assert statuses[0]["state"] == "online"
    assert statuses[0]["outbox_depth"] == n
    assert statuses[-1] == {**statuses[-1], "state": "offline", "reason": "shutdown"}
    assert sorted(e["seq"] for e in sub.events()) == list(range(n))
    async with Outbox(tmp_path / "state" / "outbox.db", OutboxConfig(), SystemClock()) as ob:
        assert (await ob.stats()).depth == 0
    # The whole run's log, at DEBUG, never shows the password.
    log = (tmp_path / "daemon.log").read_text()
    assert "uplink connected" in log
    assert "DEBUG" in log
    assert SECRET not in log


async def test_sigkill_leaves_the_will_to_the_broker(mosquitto: Broker, tmp_path: Path) -> None:
    config = write_config(tmp_path, mosquitto)
    async with subscribe(mosquitto, STATUS) as sub:
        with daemon(tmp_path, config) as proc:
            await sub.wait_until(lambda m: len(m) >= 1)
            assert json.loads(sub.messages[0].payload)["state"] == "online"
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
            await sub.wait_until(lambda m: len(m) >= 2)
    will = json.loads(sub.messages[1].payload)
    assert will["state"] == "offline"
    assert will["reason"] == "connection lost"
    assert will["gateway_id"] == GATEWAY
    assert will["outbox_depth"] is None


def test_invalid_config_exits_with_ex_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('gateway_id = "x"\n[uplink]\nport = "many"\n')
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(path)],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert b"uplink.port" in result.stderr
