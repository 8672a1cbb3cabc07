"""Keeps one configured serial path open for as long as the driver runs.

Unplugging is normal operation on a vehicle: a reader's USB cable is knocked out, a hub resets,
a converter reboots. The link waits for the path to exist (checking often, so a replug is seen
within a fraction of a second), opens it, hands the open port to the driver's session, and when
the session ends with a read or write failure it closes the port, counts the reason, logs one
line, and opens again with a capped, jittered backoff. The path is resolved again at every open,
because after a replug the by-id symlink may point at a different ``ttyUSBn``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, NoReturn

from drivers.serial.config import SerialConfig
from drivers.serial.errors import LinkFailure, SerialLinkError
from drivers.serial.port import SerialPort, open_port
from foundation.clock import Clock

__all__ = [
    "PATH_POLL_S",
    "RECONNECT_INITIAL_S",
    "STABLE_SESSION_S",
    "Backoff",
    "LinkStats",
    "SerialLink",
]

#: How often a missing path is checked: a stat() is nearly free, and this bounds how long a
#: replugged device waits before it is opened.
PATH_POLL_S: Final = 0.1
#: First delay after a failure: udev creates the symlink a moment before it applies the group
#: and mode, so the first open after a replug may be refused; retry soon.
RECONNECT_INITIAL_S: Final = 0.1
#: A session that lasted this long was healthy: the next failure starts the backoff afresh
#: instead of continuing a flapping device's escalation.
STABLE_SESSION_S: Final = 5.0
#: Random fraction taken off each delay, so that several readers on one hub that failed together
#: do not retry in lockstep.
JITTER_FRACTION: Final = 0.25

_log = logging.getLogger(__name__)

Session = Callable[[SerialPort], Awaitable[None]]


def _present(path: str) -> bool:
    # A stat of a /dev entry never touches a disk, so it is fine on the loop.
    return os.path.exists(path)


class Backoff:
    """Exponential delays from ``initial_s`` to ``max_s``, with jitter taken off the top."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        base = min(self._max_s, self._initial_s * 2.0**self._attempt)
        if base < self._max_s:
            self._attempt += 1
        jitter: float = self._rng.uniform(0.0, JITTER_FRACTION)
        return base * (1.0 - jitter)

    def reset(self) -> None:
        self._attempt = 0


@dataclass(frozen=True, slots=True)
class LinkStats:
    """Counters of one serial link, for metrics and the operator's log."""

    connected: bool
    #: The tty (or URL) currently open, None while disconnected.
    device: str | None
    opens: int
    losses: int
    failures: Mapping[LinkFailure, int]
    bytes_in: int
    bytes_out: int


class SerialLink:
    """A reconnecting serial link. ``run(session)`` never returns; cancel it to stop.

    ``session(port)`` reads until the port fails (raising ``SerialLinkError``); meanwhile
    :meth:`write` sends on the current port from any task.
    """

    def __init__(
        self,
        config: SerialConfig,
        *,
        name: str,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self._clock = clock
        self._backoff = Backoff(RECONNECT_INITIAL_S, config.reconnect_max_s, rng)
        self._port: SerialPort | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._opens = 0
        self._losses = 0
        self._failures: collections.Counter[LinkFailure] = collections.Counter()
        self._bytes_in = 0
        self._bytes_out = 0

    @property
    def connected(self) -> bool:
        return self._port is not None

    @property
    def stats(self) -> LinkStats:
        return LinkStats(
            connected=self._port is not None,
            device=self._port.device if self._port is not None else None,
            opens=self._opens,
            losses=self._losses,
            failures=dict(self._failures),
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
        )

    async def wait_connected(self) -> None:
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        await self._down.wait()

    def count_in(self, n: int) -> None:
        self._bytes_in += n

    async def write(self, data: bytes) -> None:
        """Send ``data`` on the open port; ``NOT_CONNECTED`` between unplug and reopen."""
        port = self._port
        if port is None or port.closed:
            self._failures[LinkFailure.NOT_CONNECTED] += 1
            raise SerialLinkError(LinkFailure.NOT_CONNECTED, self.config.path)
        try:
            await port.write(data)
        except SerialLinkError as exc:
            # The port is closed now; the reading session sees that and the link reconnects.
            self._failures[exc.reason] += 1
            raise
        self._bytes_out += len(data)

    async def run(self, session: Session) -> NoReturn:
        failed_opens = 0
        while True:
            try:
                port = await self._open()
            except SerialLinkError as exc:
                self._failures[exc.reason] += 1
                failed_opens += 1
                # One line per streak, then quiet: a device left unplugged must not flood logs.
                if failed_opens == 1:
                    _log.warning("%s: cannot open %s: %s", self.name, self.config.path, exc.detail)
                await asyncio.sleep(self._backoff.next())
                continue
            self._connected(port, failed_opens)
            failed_opens = 0
            opened_at = self._clock.monotonic()
            try:
                await session(port)
                raise SerialLinkError(LinkFailure.READ_FAILED, self.config.path, "session ended")
            except SerialLinkError as exc:
                if exc.reason is not LinkFailure.NOT_CONNECTED:
                    self._failures[exc.reason] += 1
                self._losses += 1
                _log.warning(
                    "%s: lost %s (%s): %s; reconnecting",
                    self.name,
                    self.config.path,
                    port.device,
                    exc.reason.value,
                )
            finally:
                self._disconnected(port)
            if self._clock.monotonic() - opened_at >= STABLE_SESSION_S:
                self._backoff.reset()
            await asyncio.sleep(self._backoff.next())

    async def _open(self) -> SerialPort:
        if not self.config.is_url and not _present(self.config.path):
            _log.info("%s: waiting for %s to appear", self.name, self.config.path)
            # The kernel offers no event for "a udev symlink appeared" that works for ptys,
            # sockets and by-id links alike; a stat every PATH_POLL_S is cheap and bounded.
            while True:
                await asyncio.sleep(PATH_POLL_S)
                if _present(self.config.path):
                    break
        return await open_port(self.config)

    def _connected(self, port: SerialPort, failed_opens: int) -> None:
        self._port = port
        self._opens += 1
        self._down.clear()
        self._up.set()
        after = f" after {failed_opens} failed attempts" if failed_opens else ""
        _log.info("%s: opened %s (%s)%s", self.name, self.config.path, port.device, after)

    def _disconnected(self, port: SerialPort) -> None:
        port.close()
        self._port = None
        self._up.clear()
        self._down.set()

    def close(self) -> None:
        """Close the current port (the driver is stopping)."""
        if self._port is not None:
            self._port.close()
