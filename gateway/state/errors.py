"""Typed failures of the state store.

SQLite raises its own exception types with the reason in a message; the store translates them
here, at its edge, so that callers branch on :class:`StateErrorReason`.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

from gateway.errors import GatewayError

__all__ = ["StateError", "StateErrorReason", "translate"]


class StateErrorReason(Enum):
    """Why a state store operation failed."""

    #: The disk is full: nothing of the operation was written.
    DISK_FULL = "disk_full"
    #: The operating system reported an I/O error; the operation may succeed when retried.
    IO_ERROR = "io_error"
    #: Another process holds the store (a running daemon); the file is left alone.
    LOCKED = "locked"
    #: The file was written by a newer tagrelay with a schema this one does not know.
    SCHEMA_TOO_NEW = "schema_too_new"
    #: The file went bad while open (found on a read or write); the next open moves it aside.
    CORRUPT = "corrupt"
    #: The store is not open, or was opened read-only and was asked to write.
    CLOSED = "closed"
    READ_ONLY = "read_only"
    #: A namespace, key or value the store cannot hold (not JSON, wrong type, too long).
    BAD_ARGUMENT = "bad_argument"


class StateError(GatewayError):
    """A state store operation failed; nothing of that operation was committed."""

    def __init__(self, reason: StateErrorReason, detail: str = "") -> None:
        super().__init__(f"state store {reason.value}" + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail


def translate(exc: sqlite3.Error) -> StateError:
    """The typed error for a SQLite exception (by its extended error code where it has one)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary == sqlite3.SQLITE_FULL:
        return StateError(StateErrorReason.DISK_FULL, str(exc))
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StateError(StateErrorReason.CORRUPT, str(exc))
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StateError(StateErrorReason.LOCKED, str(exc))
    if primary == sqlite3.SQLITE_READONLY:
        return StateError(StateErrorReason.READ_ONLY, str(exc))
    return StateError(StateErrorReason.IO_ERROR, f"{type(exc).__name__}: {exc}")
