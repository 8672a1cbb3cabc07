"""Typed failures of the outbox: what a caller of ``accept`` / ``lease`` may have to handle.

SQLite raises its own exception types with the reason in a message and an error code; the
outbox translates them here, at its edge, so callers branch on :class:`OutboxErrorReason`.
"""

from __future__ import annotations

from enum import Enum

from gateway.errors import GatewayError


class OutboxErrorReason(Enum):
    """Why an outbox operation failed."""

    #: The disk (or the emulated page limit) is full even after evicting what the rules allow.
    DISK_FULL = "disk_full"
    #: The operating system reported an I/O error; the operation may succeed when retried.
    IO_ERROR = "io_error"
    #: Another process holds the store (a running daemon); the file is left alone.
    LOCKED = "locked"
    #: The file was written by a newer tagrelay with a schema this one does not know.
    SCHEMA_TOO_NEW = "schema_too_new"
    #: The outbox is not open (used before ``__aenter__`` or after ``__aexit__``).
    CLOSED = "closed"


class OutboxError(GatewayError):
    """An outbox operation failed; nothing of that operation was committed."""

    def __init__(self, reason: OutboxErrorReason, detail: str = "") -> None:
        super().__init__(f"outbox {reason.value}" + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail
