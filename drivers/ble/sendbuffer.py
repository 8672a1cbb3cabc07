"""Keep the gateway's D-Bus connections alive when their socket send buffer fills up.

Every D-Bus message the BLE driver's process sends (bleak's replies to BlueZ, its method calls,
the bus watch and the adapter power cycle) goes through dbus-fast's asyncio writer. When the
socket's send buffer is full, ``send`` fails with EAGAIN (``BlockingIOError``), and that writer
treats it as a fatal error: it closes the connection instead of waiting until the socket is
writable again. Upstream: https://github.com/altdesktop/python-dbus-next/issues/153 (with the
fix proposed in pull request 154, neither merged); dbus-fast inherited the writer, and its
latest release (5.2.0, the version pinned in constraints.txt) still has it.

The gateway does send bursts: in passive mode bluetoothd calls ``DeviceFound`` on bleak's
advertisement monitor once per newly matching tag, bleak replies to every call, and a trailer
of hundreds of tags backing up to a door produces hundreds of calls at once. A lost bleak
connection means a lost scan. So the writer's socket is wrapped: EAGAIN from ``send`` reads as
"nothing written yet", which the writer already handles like a partial write (it waits for the
socket to become writable and carries on). ``sendmsg`` (file-descriptor passing, which scanning
never uses) is left as it is. Remove this module once dbus-fast waits on EAGAIN itself.

The patch is process-wide (bleak's connection is made inside bleak), so it is installed
explicitly, by :class:`drivers.ble.BleScanner` when it starts, before any connection of the
driver exists; importing the package changes nothing. It reaches into a private class of
dbus-fast (``dbus_fast.aio.message_bus._MessageWriter``), so the pin in pyproject.toml is the
one release the control test has proven, and :func:`install_send_buffer_fix` checks the shape
it relies on and raises :class:`SendBufferFixError`, naming the version, when it has moved.
The upstream report, ready to file, is in docs/ble.md.
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable
from importlib import metadata
from typing import Any, Final

from dbus_fast.aio import message_bus

__all__ = ["SendBufferFixError", "install_send_buffer_fix", "send_buffer_fix_installed"]

_MARK: Final = "_tagrelay_send_buffer_fix"


class _WaitOnFullSocket:
    """The writer's socket, with a full send buffer on ``send`` reported as 0 bytes written."""

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            # The writer sees a write of 0 bytes, keeps the message and waits until the
            # socket is writable again.
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class SendBufferFixError(RuntimeError):
    """dbus-fast no longer has the private writer the workaround wraps (a new release)."""


def _writer_class() -> Any:
    """dbus-fast's asyncio writer class, checked to be what the wrapper relies on: a class
    ``_MessageWriter(bus)`` that keeps its socket in ``self.sock`` and writes from it."""
    writer_class: Any = getattr(message_bus, "_MessageWriter", None)
    problem = ""
    if not isinstance(writer_class, type):
        problem = "dbus_fast.aio.message_bus._MessageWriter is gone"
    else:
        init = vars(writer_class).get("__init__")
        params = list(inspect.signature(init).parameters) if callable(init) else []
        write = getattr(writer_class, "write_callback", None)
        code = getattr(write, "__code__", None)
        if params != ["self", "bus"]:
            problem = f"_MessageWriter.__init__ takes {params}, not (self, bus)"
        elif code is None or "sock" not in code.co_names:
            problem = "_MessageWriter.write_callback no longer writes to self.sock"
    if problem:
        raise SendBufferFixError(
            f"dbus-fast {metadata.version('dbus-fast')}: {problem}. The EAGAIN workaround "
            "(drivers/ble/sendbuffer.py) was proven on the release pinned in pyproject.toml; "
            "install that release, or run tests/drivers/test_ble_sendbuffer.py against this "
            "one and port or remove the workaround (docs/ble.md)"
        )
    return writer_class


def install_send_buffer_fix() -> None:
    """Wrap the socket of every dbus-fast asyncio writer created from now on (idempotent).

    Raises :class:`SendBufferFixError` when dbus-fast's private writer has changed shape.
    """
    writer_class = _writer_class()
    if getattr(writer_class, _MARK, False):
        return
    original_init: Callable[..., None] = writer_class.__init__

    def __init__(self: Any, bus: Any) -> None:
        original_init(self, bus)
        if isinstance(self.sock, socket.socket):
            self.sock = _WaitOnFullSocket(self.sock)

    writer_class.__init__ = __init__
    setattr(writer_class, _MARK, True)


def send_buffer_fix_installed() -> bool:
    """Whether :func:`install_send_buffer_fix` has been applied in this process."""
    return bool(getattr(message_bus._MessageWriter, _MARK, False))
