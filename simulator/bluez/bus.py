"""A private D-Bus system bus for tests and the simulator.

The fake BlueZ and the gateway's BLE driver meet on this bus exactly as bluetoothd and bleak meet
on the real system bus; pointing ``DBUS_SYSTEM_BUS_ADDRESS`` at :attr:`PrivateBus.address` is all
the gateway needs. The daemon runs with its own configuration in a work directory, lets the
current user own ``org.bluez``, and is stopped by its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

__all__ = ["PrivateBus", "PrivateBusError", "add_match", "add_match_message"]

#: Where Debian installs the reference daemon; found on PATH first.
_DBUS_DAEMON: Final = "dbus-daemon"
#: A daemon that has not printed its address by then failed to start (it takes a few ms).
START_TIMEOUT_S: Final = 10.0
#: SIGTERM is enough for dbus-daemon; escalate to SIGKILL if it has not gone by then.
STOP_TIMEOUT_S: Final = 5.0
#: Per-connection queue limits, far above the system bus defaults: a burst of hundreds of
#: devices must be limited by the peers' flow control, not silently dropped by the daemon.
MAX_QUEUED_BYTES: Final = 256 * 1024 * 1024

_CONFIG_TEMPLATE: Final = """<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>tagrelay-private</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <policy user="{user}">
    <allow own="org.bluez"/>
  </policy>
  <limit name="max_incoming_bytes">{limit}</limit>
  <limit name="max_outgoing_bytes">{limit}</limit>
  <limit name="max_message_size">{limit}</limit>
  <limit name="max_replies_per_connection">100000</limit>
</busconfig>
"""


class PrivateBusError(Exception):
    """The private dbus-daemon could not be started, or refused a request."""


class PrivateBus:
    """A dbus-daemon of our own: ``async with PrivateBus(tmp) as bus: bus.address``."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._process: asyncio.subprocess.Process | None = None
        self._address: str | None = None

    @property
    def address(self) -> str:
        """The bus address (``unix:path=...``) to give clients."""
        if self._address is None:
            raise RuntimeError("the bus is not running")
        return self._address

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the bus is not running")
        return self._process.pid

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def restart(self) -> None:
        """The system bus restarts: every connection drops; the same address comes back."""
        await self._stop()
        await self._start()

    async def _start(self) -> None:
        daemon = shutil.which(_DBUS_DAEMON)
        if daemon is None:
            raise PrivateBusError("dbus-daemon is not installed")
        self._workdir.mkdir(parents=True, exist_ok=True)
        config = self._workdir / "bus.conf"
        config.write_text(
            _CONFIG_TEMPLATE.format(
                socket=self._workdir / "bus.sock", user=getpass.getuser(), limit=MAX_QUEUED_BYTES
            )
        )
        self._process = await asyncio.create_subprocess_exec(
            daemon,
            f"--config-file={config}",
            "--print-address",
            "--nofork",
            "--nopidfile",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await self._process.stdout.readline()
        except BaseException:
            await self._stop()
            raise
        if not line:
            err = b""
            if self._process.stderr is not None:
                err = await self._process.stderr.read()
            await self._stop()
            raise PrivateBusError(f"dbus-daemon did not start: {err.decode(errors='replace')}")
        # The daemon prints "unix:path=...,guid=..."; clients want the path part only.
        self._address = line.decode().strip().split(",")[0]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        process, self._process = self._process, None
        self._address = None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        # Drain the pipes so their transports close cleanly.
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                await stream.read()


def add_match_message(rule: str, *, reply: bool = True) -> Message:
    """The ``AddMatch`` call for ``rule``; without ``reply`` it can be sent from a handler."""
    return Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member="AddMatch",
        signature="s",
        body=[rule],
        flags=MessageFlag.NONE if reply else MessageFlag.NO_REPLY_EXPECTED,
    )


async def add_match(bus: MessageBus, rule: str) -> None:
    """Ask the daemon to route the signals matching ``rule`` to ``bus`` (``AddMatch``)."""
    reply = await bus.call(add_match_message(rule))
    if reply is None or reply.message_type is not MessageType.METHOD_RETURN:
        raise PrivateBusError(f"AddMatch {rule!r} failed: {reply.body if reply else None}")
