"""One open serial port, read and written from the event loop without blocking it.

pyserial opens the device (termios settings, exclusive lock, ``socket://`` and ``rfc2217://``
URL handlers); after that, a tty or socket is just a non-blocking file descriptor, so reads and
writes go through the loop's selector (``add_reader`` / ``add_writer``) instead of a thread per
port. Ports without a descriptor (``rfc2217://``, which pyserial serves from its own thread) fall
back to short blocking reads in a worker thread. Every OS failure becomes a
:class:`~drivers.serial.errors.SerialLinkError` with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from typing import Final

import serial

from drivers.serial.config import SerialConfig
from drivers.serial.errors import LinkFailure, SerialLinkError

__all__ = ["READ_CHUNK_BYTES", "SerialPort", "open_port"]

#: Bytes taken per read: several frames at once under load, still one short callback.
READ_CHUNK_BYTES: Final = 4096
#: Blocking-read timeout of the thread fallback: bounds how long a cancelled read lingers.
THREAD_READ_TIMEOUT_S: Final = 0.2

#: errno values that mean "try again later", not "the device is gone".
_RETRY_ERRNOS: Final = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


def _signal(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SerialPort:
    """An open port: ``await read()`` returns the next bytes, ``await write()`` sends a frame."""

    def __init__(
        self, ser: serial.SerialBase, *, path: str, device: str, write_timeout_s: float
    ) -> None:
        self._serial = ser
        self._write_timeout_s = write_timeout_s
        self.path = path
        #: What was actually opened: the tty behind the symlink at open time, or the URL.
        self.device = device
        self._loop = asyncio.get_running_loop()
        self._fd: int | None
        try:
            self._fd = ser.fileno()
        except (AttributeError, NotImplementedError, OSError, serial.SerialException):
            self._fd = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._write_lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self) -> bytes:
        """The next bytes from the device (never empty); raises ``SerialLinkError`` on loss."""
        if self._fd is None:
            return await self._read_in_thread()
        signalled = False
        while True:
            self._check_open()
            try:
                data = os.read(self._fd, READ_CHUNK_BYTES)
            except OSError as exc:
                if exc.errno not in _RETRY_ERRNOS:
                    raise self._lost(LinkFailure.READ_FAILED, exc) from exc
                data = b""
            if data:
                return data
            # A raw tty with VMIN=0 reads as empty when idle, so empty means "wait" until the
            # selector has said the fd is readable; empty *after* that is a hang-up (or the
            # peer closed the socket), the same test pyserial makes.
            if signalled:
                raise self._lost(LinkFailure.READ_FAILED, "end of file (device hung up)")
            await self._wait(self._fd, writable=False)
            signalled = True

    async def write(self, data: bytes) -> None:
        """Send ``data`` completely, or raise ``SerialLinkError`` (timeout or OS failure)."""
        async with self._write_lock:
            try:
                async with asyncio.timeout(self._write_timeout_s):
                    if self._fd is None:
                        await asyncio.to_thread(self._serial.write, data)
                        return
                    view = memoryview(data)
                    while view:
                        self._check_open()
                        try:
                            written = os.write(self._fd, view)
                        except OSError as exc:
                            if exc.errno in _RETRY_ERRNOS:
                                await self._wait(self._fd, writable=True)
                                continue
                            raise self._lost(LinkFailure.WRITE_FAILED, exc) from exc
                        view = view[written:]
            except TimeoutError as exc:
                raise self._lost(LinkFailure.WRITE_TIMEOUT, f"{self._write_timeout_s} s") from exc
            except serial.SerialException as exc:
                raise self._lost(LinkFailure.WRITE_FAILED, exc) from exc

    def close(self) -> None:
        """Release the device; pending reads and writes fail with ``NOT_CONNECTED``."""
        if self._closed:
            return
        self._closed = True
        if self._fd is not None and self._waiters:
            # Unregister before the descriptor is closed: its number may be reused by the next
            # open, and a stale registration would then belong to the wrong device.
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        for fut in self._waiters:
            if not fut.done():
                # NOT_CONNECTED: whoever closed the port already counted why.
                fut.set_exception(
                    SerialLinkError(LinkFailure.NOT_CONNECTED, self.path, "port closed")
                )
        # Closing a tty whose device vanished can fail; the descriptor is gone either way.
        with contextlib.suppress(OSError, serial.SerialException):
            self._serial.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SerialLinkError(LinkFailure.NOT_CONNECTED, self.path, "port closed")

    def _lost(self, reason: LinkFailure, cause: object) -> SerialLinkError:
        self.close()
        return SerialLinkError(reason, self.path, str(cause))

    async def _wait(self, fd: int, *, writable: bool) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.add(fut)
        add, remove = (
            (self._loop.add_writer, self._loop.remove_writer)
            if writable
            else (self._loop.add_reader, self._loop.remove_reader)
        )
        add(fd, _signal, fut)
        try:
            await fut
        finally:
            # Unregister before anyone closes the fd: a closed fd left in epoll is undefined.
            remove(fd)
            self._waiters.discard(fut)

    async def _read_in_thread(self) -> bytes:
        while True:
            self._check_open()
            try:
                data: bytes = await asyncio.to_thread(self._serial.read, READ_CHUNK_BYTES)
            except (OSError, serial.SerialException) as exc:
                raise self._lost(LinkFailure.READ_FAILED, exc) from exc
            if data:
                return data


def _resolve(config: SerialConfig) -> str:
    if config.is_url:
        return config.path
    # Resolve at every open: after a replug the by-id link may point at a different ttyUSBn.
    # (Path lookups under /dev never touch a disk, so this is fine on the loop.)
    device = os.path.realpath(config.path)
    if not os.path.exists(device):
        raise SerialLinkError(LinkFailure.PATH_MISSING, config.path, device)
    return device


def _open_blocking(config: SerialConfig, device: str) -> serial.SerialBase:
    if config.is_url:
        # URL ports without a descriptor are read and written from a worker thread, with
        # blocking calls bounded by these timeouts.
        return serial.serial_for_url(
            device,
            baudrate=config.baudrate,
            timeout=THREAD_READ_TIMEOUT_S,
            write_timeout=config.write_timeout_s,
        )
    return serial.Serial(
        device,
        baudrate=config.baudrate,
        timeout=0,
        write_timeout=0,
        exclusive=config.exclusive,
    )


async def open_port(config: SerialConfig) -> SerialPort:
    """Open the configured path now, resolving a symlink to the tty it points at *today*.

    Raises ``SerialLinkError`` with ``PATH_MISSING`` or ``OPEN_FAILED``.
    """
    device = _resolve(config)
    try:
        if config.is_url:
            # Opening a URL connects over TCP: keep that off the loop.
            ser = await asyncio.to_thread(_open_blocking, config, device)
        else:
            # A tty opens with O_NONBLOCK and returns at once; doing it here means a cancelled
            # open can never leak a descriptor from a worker thread.
            ser = _open_blocking(config, device)
    except (OSError, ValueError, serial.SerialException) as exc:
        reason = LinkFailure.OPEN_FAILED
        if isinstance(exc.__context__, FileNotFoundError) or isinstance(exc, FileNotFoundError):
            reason = LinkFailure.PATH_MISSING
        raise SerialLinkError(reason, config.path, str(exc)) from exc
    return SerialPort(ser, path=config.path, device=device, write_timeout_s=config.write_timeout_s)
