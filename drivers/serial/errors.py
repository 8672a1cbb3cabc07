"""Errors of the serial transport, each with the reason as data (the link loop counts by reason)."""

from __future__ import annotations

from enum import StrEnum

from drivers.errors import DriverError

__all__ = ["LinkFailure", "SerialLinkError"]


class LinkFailure(StrEnum):
    """Why a serial link is not usable right now."""

    #: The configured path does not exist (device unplugged, symlink gone).
    PATH_MISSING = "path_missing"
    #: The path exists but the tty or URL could not be opened (permissions, busy, refused).
    OPEN_FAILED = "open_failed"
    #: A read failed or the device hung up (unplug, EIO, peer closed the socket).
    READ_FAILED = "read_failed"
    #: A write failed at the OS level.
    WRITE_FAILED = "write_failed"
    #: The device did not take our bytes in time (flow control stuck, device not reading).
    WRITE_TIMEOUT = "write_timeout"
    #: No port is open at the moment (between an unplug and the reopen).
    NOT_CONNECTED = "not_connected"


class SerialLinkError(DriverError):
    """A serial link operation failed; ``reason`` says why, ``path`` which link."""

    def __init__(self, reason: LinkFailure, path: str, detail: str = "") -> None:
        self.reason = reason
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {reason.value}" + (f": {detail}" if detail else ""))
