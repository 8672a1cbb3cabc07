"""Room for the outbox's own housekeeping on a file system that fills up.

On a full file system SQLite cannot even delete: every transaction, an eviction or the delete
of acknowledged rows included, first writes the pages it changes to the WAL, and the WAL
cannot grow. So the store keeps a small reserve file beside the database, allocated while
there is room, and removes it when SQLite reports SQLITE_FULL: the bytes it held are what the
checkpoint and the eviction that follow need. It is allocated again as soon as the file system
has that much free again (plus a margin), and only then does the store stop capping itself.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Final

_log = logging.getLogger(__name__)

#: Free space (beyond the reserve) that counts as "the disk has room again": a few group
#: commits' worth, so that the store does not flap between full and not full.
RECOVER_MARGIN_BYTES: Final = 256 * 1024
#: The reserve is allocated again as soon as this much is free beyond it: it comes back
#: first, before the store takes any of the space that returned.
RESERVE_SLACK_BYTES: Final = 64 * 1024


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of ``directory``."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class SpaceReserve:
    """A file of ``size`` bytes that holds space for the store to release when the disk is
    full. ``size`` 0 disables it."""

    def __init__(self, path: Path, size: int) -> None:
        self._path = path
        self._size = size
        self._held = False

    @property
    def path(self) -> Path:
        return self._path

    @property
    def held(self) -> bool:
        """True while the reserve's bytes are allocated (or there is none to hold)."""
        return self._held or self._size == 0

    def ensure(self) -> bool:
        """Allocate the reserve if it is not held and the disk has room for it (and a little
        slack); return whether it is held now. Never raises: no room is a normal answer."""
        if self.held:
            return True
        free = free_bytes(self._path.parent)
        have = self._path.stat().st_size if self._path.exists() else 0
        if free is None or free + have < self._size + RESERVE_SLACK_BYTES:
            return False
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    # Blocks allocated without writing them (no flash wear where supported).
                    os.posix_fallocate(fd, 0, self._size)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    os.pwrite(fd, bytes(self._size), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            _log.debug("outbox: reserve %s not allocated: %s", self._path, exc)
            return False
        self._held = True
        return True

    def release(self) -> bool:
        """Give the reserve's bytes back to the file system; return whether any were held."""
        held = self._held
        self._held = False
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            _log.warning("outbox: could not remove the space reserve %s: %s", self._path, exc)
            return False
        return held
