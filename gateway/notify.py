"""The service manager's notification protocol (``sd_notify(3)``), typed and without surprises.

systemd passes a datagram socket in ``NOTIFY_SOCKET``: a file system path (``/run/...``) or an
abstract name (``@...``, a leading NUL byte on the wire). A notification is one datagram of
``KEY=value`` lines (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``). With
``WatchdogSec=`` the manager also sets ``WATCHDOG_USEC`` (the timeout) and ``WATCHDOG_PID``
(the process it is meant for: a child that inherited the environment must not ping).

Everything comes from the environment mapping handed in, never from :data:`os.environ`. The
socket is non-blocking: a manager that does not read drops a notification rather than stalling
the event loop. A socket that cannot be reached is logged once and the notifier becomes a no-op;
a notification never raises.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Mapping
from typing import Final

__all__ = ["NOTIFY_SOCKET_ENV", "WATCHDOG_PID_ENV", "WATCHDOG_USEC_ENV", "SystemdNotifier"]

_log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV: Final = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV: Final = "WATCHDOG_USEC"
WATCHDOG_PID_ENV: Final = "WATCHDOG_PID"
#: Ping the watchdog at this fraction of its timeout: systemd's own recommendation is half.
WATCHDOG_FRACTION: Final = 0.5
#: A full receive buffer: this one notification is dropped, the socket stays in use.
_TRANSIENT: Final = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EINTR})


def _socket_address(value: str) -> str | bytes | None:
    """The address to send to, or None when ``NOTIFY_SOCKET`` names nothing usable here."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()  # Linux abstract namespace
    if value.startswith("/"):
        return value
    return None  # empty, relative, or a transport we do not speak (vsock:)


class SystemdNotifier:
    """Sends notifications to the service manager when there is one; otherwise does nothing.

    ``watchdog_timeout_s`` is the manager's ``WatchdogSec=`` (None when the watchdog is off or
    meant for another process); ``watchdog_interval_s`` is the ping interval, half of it.
    """

    def __init__(
        self, socket_name: str | None = None, watchdog_timeout_s: float | None = None
    ) -> None:
        self.socket_name = socket_name
        self._address = None if socket_name is None else _socket_address(socket_name)
        self._sock: socket.socket | None = None
        self._failed = False
        if socket_name is not None and self._address is None:
            _log.warning(
                "%s=%r is not a socket path or an abstract name: not notifying the service manager",
                NOTIFY_SOCKET_ENV,
                socket_name,
            )
        self.watchdog_timeout_s = watchdog_timeout_s if self._address is not None else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int | None = None) -> SystemdNotifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` from ``environ``
        (``pid`` is this process's id, by default :func:`os.getpid`)."""
        name = environ.get(NOTIFY_SOCKET_ENV) or None
        timeout = _watchdog_timeout(environ, os.getpid() if pid is None else pid)
        return cls(name, timeout)

    @property
    def enabled(self) -> bool:
        """True while notifications go somewhere."""
        return self._address is not None and not self._failed

    @property
    def watchdog_interval_s(self) -> float | None:
        if self.watchdog_timeout_s is None:
            return None
        return self.watchdog_timeout_s * WATCHDOG_FRACTION

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` (``KEY=value`` each) as one notification; True if it was sent."""
        if self._address is None or self._failed or not lines:
            return False
        message = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if exc.errno in _TRANSIENT:
                _log.debug("service manager notification dropped (%s)", exc.strerror)
                return False
            self._failed = True
            self.close()
            _log.warning(
                "cannot notify the service manager at %s=%s (%s): readiness, status and "
                "watchdog notifications are off",
                NOTIFY_SOCKET_ENV,
                self.socket_name,
                exc.strerror or exc,
            )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *(() if status is None else (f"STATUS={status}",)))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_timeout(environ: Mapping[str, str], pid: int) -> float | None:
    usec = environ.get(WATCHDOG_USEC_ENV, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get(WATCHDOG_PID_ENV, "")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None  # the watchdog is another process's (we inherited its environment)
    return int(usec) / 1e6


def _one_line(text: str) -> str:
    return " ".join(text.split())
