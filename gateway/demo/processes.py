"""Child processes of a demo run: a private mosquitto, and stopping any child by its pid.

Every child is stopped by its own pid, never by name: SIGTERM, a grace period, then SIGKILL,
and reaped. A private broker listens on a free 127.0.0.1 port with a configuration in the run's
own directory and allows anonymous clients (nothing but loopback can reach it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.errors import GatewayError

__all__ = [
    "BrokerError",
    "PrivateBroker",
    "free_port",
    "private_broker",
    "stop_child",
]

#: How long a terminated child gets to exit cleanly before it is killed: a gateway drains its
#: in-flight window and publishes its offline status in well under this.
STOP_GRACE_S: Final = 15.0
#: How long mosquitto gets to open its port (it needs milliseconds; the machine may be busy).
BROKER_START_TIMEOUT_S: Final = 15.0
#: Poll interval while waiting for the port: an external process gives no event to await.
PORT_POLL_S: Final = 0.05


class BrokerError(GatewayError):
    """The private broker could not be started (not installed, or it did not listen)."""


@dataclass(frozen=True, slots=True)
class PrivateBroker:
    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def stop_child(proc: asyncio.subprocess.Process, grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL; returns the exit status."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace_s):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


def _mosquitto_conf(port: int, directory: Path) -> str:
    return "\n".join(
        [
            "per_listener_settings false",
            # Started as root, mosquitto would drop to a user who cannot read our directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "persistence false",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            # The gateways' in-flight windows are theirs to choose.
            "max_inflight_messages 0",
            "max_queued_messages 0",
            "",
        ]
    )


def _write_conf(directory: Path, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "mosquitto.conf"
    conf.write_text(_mosquitto_conf(port, directory), encoding="utf-8")
    return conf


@contextlib.asynccontextmanager
async def private_broker(directory: Path) -> AsyncIterator[PrivateBroker]:
    """mosquitto on a free loopback port, its config and log in ``directory``; stopped by
    pid on exit, also on failure."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        raise BrokerError("mosquitto is not installed (Debian package mosquitto), or give --broker")
    port = free_port()
    conf = await asyncio.to_thread(_write_conf, directory, port)
    with (directory / "mosquitto.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(conf),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo only: it stops us in order
        )
    try:
        await _wait_for_port(port, proc)
        yield PrivateBroker("127.0.0.1", port, proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # never leave it frozen by an outage fault
        await stop_child(proc, grace_s=5.0)


async def _wait_for_port(port: int, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BROKER_START_TIMEOUT_S
    while loop.time() < deadline:
        if proc.returncode is not None:
            raise BrokerError(f"mosquitto exited with status {proc.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(PORT_POLL_S)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise BrokerError(
        f"mosquitto does not listen on 127.0.0.1:{port} after {BROKER_START_TIMEOUT_S:.0f} s"
    )
