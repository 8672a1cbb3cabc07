"""A pseudo-terminal that stands in for a USB serial device, symlink included.

The simulated device holds the master end; the gateway opens the slave end through a stable
symlink, exactly as it opens ``/dev/serial/by-id/usb-...`` in the field, with pyserial. Unplugging
closes the master and removes the symlink (as udev does), so the gateway sees a hang-up or I/O
error; replugging allocates a *new* pty and re-points the symlink, so the gateway has to re-resolve
the path instead of reopening the old tty.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = ["PtyPort"]

#: Bytes taken from the master per read callback: larger than any frame, small enough to keep
#: one callback short.
READ_CHUNK_BYTES: Final = 4096

_log = logging.getLogger(__name__)

Receiver = Callable[[bytes], None]


class PtyPort:
    """One simulated serial device: a raw-mode pty pair published through ``link``.

    ``write`` never blocks: a device transmitting into a full buffer (nobody reading) loses the
    bytes, like a UART without flow control, and the loss is counted in ``dropped_tx_bytes``.
    Bytes the gateway writes go to the receiver set with :meth:`set_receiver`.
    """

    def __init__(self, link: Path) -> None:
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None
        self._device: str | None = None
        self._receiver: Receiver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stalled = False
        self.replugs = 0
        self.tx_bytes = 0
        self.rx_bytes = 0
        self.dropped_tx_bytes = 0

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def device(self) -> str | None:
        """The tty behind the symlink right now (``/dev/pts/N``), None while unplugged."""
        return self._device

    def set_receiver(self, receiver: Receiver | None) -> None:
        """Where bytes written by the gateway go (kept across replugs)."""
        self._receiver = receiver

    def write(self, data: bytes) -> int:
        """Transmit ``data`` now; returns the bytes the pty took (0 while unplugged)."""
        if self._master is None:
            self.dropped_tx_bytes += len(data)
            return 0
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            # EIO: nobody has the slave open and the line discipline refuses; same as a full
            # buffer for a device that just transmits.
            if exc.errno != errno.EIO:
                raise
            written = 0
        self.tx_bytes += written
        self.dropped_tx_bytes += len(data) - written
        return written

    def plug(self) -> None:
        """Create a pty and point the symlink at it (the device appears)."""
        if self._master is not None:
            raise RuntimeError("already plugged")
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            # Raw on the slave side before anyone opens it: no echo, no CR/LF translation,
            # binary frames pass untouched even before the gateway's pyserial sets its own.
            tty.setraw(slave)
            os.set_blocking(master, False)
            device = os.ttyname(slave)
            self.link.parent.mkdir(parents=True, exist_ok=True)
            # Atomic re-point: a reader never sees the link missing half-way through a replug.
            tmp = self.link.with_name(f".{self.link.name}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(device)
            tmp.replace(self.link)
        except BaseException:
            # A pty that never got published must not outlive the failed plug.
            self._release(master, slave)
            raise
        self._master, self._slave, self._device = master, slave, device
        self._loop = loop
        if not self._stalled:
            self._loop.add_reader(master, self._on_readable)
        _log.debug("pty %s plugged as %s", self.link, self._device)

    def unplug(self) -> None:
        """Close the device: the symlink goes away and the gateway's open tty hangs up."""
        old = self._take()
        if old is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self._release(*old)
        _log.debug("pty %s unplugged", self.link)

    def stall(self, stalled: bool = True) -> None:
        """Stop (or resume) taking bytes from the gateway: a device whose flow control is stuck.

        The gateway's writes then fill the pty buffer and stop making progress.
        """
        self._stalled = stalled
        if self._master is None or self._loop is None:
            return
        if stalled:
            self._loop.remove_reader(self._master)
        else:
            self._loop.add_reader(self._master, self._on_readable)

    def replug(self) -> None:
        """Appear again on a new pty behind the same symlink (unplugging first if plugged).

        When plugged, the new pty is allocated before the old one is closed, so the symlink
        points at a different tty afterwards, like a hub reset that renumbers ttyUSB0 to ttyUSB1.
        """
        old = self._take()
        self.plug()
        if old is not None:
            self._release(*old)
        self.replugs += 1

    def _take(self) -> tuple[int, int | None] | None:
        """Detach the current pty without closing it yet."""
        if self._master is None:
            return None
        if self._loop is not None:
            self._loop.remove_reader(self._master)
        pair = (self._master, self._slave)
        self._master = self._slave = None
        self._device = None
        return pair

    @staticmethod
    def _release(master: int, slave: int | None) -> None:
        os.close(master)
        if slave is not None:
            os.close(slave)

    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, READ_CHUNK_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            return
        self.rx_bytes += len(data)
        if data and self._receiver is not None:
            self._receiver(data)

    async def __aenter__(self) -> Self:
        self.plug()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unplug()
