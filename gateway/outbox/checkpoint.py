"""WAL checkpoints beside the writer, not inside its commits.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past the threshold:
that commit (and every accept and alarm queued behind it) then waits while 16 MiB are copied
into the main file and synced. In WAL mode a checkpoint may run on another connection while
the writer keeps committing, so this thread owns a second connection and runs a PASSIVE
checkpoint there whenever the WAL holds ``checkpoint_pages`` frames. The threshold (and so the
SD-card reasoning: a page written by an accept and rewritten by its ack reaches the main file
once) is unchanged; only the thread that pays for it moves.

The WAL's frame count is read from the wal-index header in the ``-shm`` file (``mxFrame`` and
``nBackfill``, native byte order, see SQLite's "WAL-mode File Format" document): SQLite has no
other way to ask for it without checkpointing. The writer keeps a larger automatic checkpoint
as a backstop in case this thread ever falls behind.

Near a full disk the threshold drops: a checkpoint is due once the WAL holds a quarter of the
file system's free space (the writer also checkpoints then, see gateway/outbox/store.py), so
the WAL's pages always still fit into the main file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from pathlib import Path
from typing import Final

from gateway.outbox.space import free_bytes

_log = logging.getLogger(__name__)

#: Byte offsets in the -shm file: mxFrame in the first copy of the wal-index header, nBackfill
#: in the checkpoint information that follows both copies.
_MX_FRAME_OFFSET: Final = 16
_N_BACKFILL_OFFSET: Final = 96
_HEADER_BYTES: Final = 100
#: Near a full disk the WAL is checkpointed once it holds this fraction of the free space (and
#: so starts over from its beginning, reusing its own file): the pages it holds must still fit
#: into the main file, and the WAL must never be what fills the disk.
LOW_SPACE_WAL_FRACTION: Final = 0.25
#: A failing card fails every checkpoint: one warning per this many seconds, with a count.
FAILURE_LOG_BURST_S: Final = 60.0


class WalIndex:
    """The wal-index header of an open database, read through one descriptor kept open.

    The ``-shm`` file must never be opened and closed again while this process has the
    database open: POSIX record locks belong to the process, and closing *any* descriptor of a
    file drops all of them, SQLite's included. Another process opening the database (``tagrelay
    outbox stats``, ``tagrelay status``) would then find no lock, take itself for the first
    connection and reinitialise the ``-shm`` file under this process's mapping, which dies of
    SIGBUS at its next commit (SQLite's "How To Corrupt An SQLite Database File", 2.2). So the
    descriptor is opened once and closed only after the last connection (:meth:`close`).
    """

    def __init__(self, path: Path) -> None:
        self._path = f"{path}-shm"
        self._fd: int | None = None
        self._lock = threading.Lock()

    def frames(self) -> tuple[int, int] | None:
        """(frames in the WAL, frames already copied to the main file), or None if unknown."""
        with self._lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None
            try:
                header = os.pread(self._fd, _HEADER_BYTES, 0)
            except OSError:
                return None
        if len(header) < _HEADER_BYTES:
            return None
        (mx_frame,) = struct.unpack_from("=I", header, _MX_FRAME_OFFSET)
        (backfilled,) = struct.unpack_from("=I", header, _N_BACKFILL_OFFSET)
        return int(mx_frame), int(backfilled)

    def close(self) -> None:
        """Only once every connection of this process to the database is closed."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class Checkpointer:
    """A thread with its own connection that checkpoints the WAL when it is due.

    ``poke()`` after each commit is all the writer does (an event set, no I/O)."""

    def __init__(self, path: Path, checkpoint_pages: int, wal: WalIndex) -> None:
        self._path = path
        self.wal = wal
        self._pages = checkpoint_pages
        self._wake = threading.Event()
        self._stop = False
        self._checkpoints = 0
        self._failures = 0
        self._last_failure_log_s = -FAILURE_LOG_BURST_S
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._page_bytes = 4096
        try:
            self._page_bytes = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            # The checkpoint syncs the WAL before copying and the main file after: FULL keeps
            # a power cut during it harmless, as for the writer.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            self._conn.close()
            raise
        self._thread = threading.Thread(target=self._run, name="outbox-checkpoint", daemon=True)
        self._thread.start()

    @property
    def checkpoints(self) -> int:
        """Checkpoints run so far (for tests and stats)."""
        return self._checkpoints

    def poke(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Stop the thread and close the connection (before the writer's, which is the last
        and so checkpoints and removes the WAL)."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        self._conn.close()

    def due(self) -> bool:
        frames = self.wal.frames()
        if frames is None:
            return False
        total, backfilled = frames
        # After a checkpoint the writer restarts the WAL from its start at its next commit,
        # but only if every frame was copied: frames committed while a checkpoint ran are
        # copied by the next one, however few.
        if total <= backfilled:
            return False
        if total >= self._pages:
            return True
        free = free_bytes(self._path.parent)
        return free is not None and (total - backfilled) * self._page_bytes >= (
            free * LOW_SPACE_WAL_FRACTION
        )

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            if not self.due():
                continue
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self._checkpoints += 1
            except sqlite3.Error as exc:
                # The writer's backstop checkpoint still bounds the WAL.
                self._failures += 1
                now_s = time.monotonic()
                if now_s - self._last_failure_log_s >= FAILURE_LOG_BURST_S:
                    _log.warning(
                        "outbox: %d background checkpoint(s) failed, last: %s", self._failures, exc
                    )
                    self._failures = 0
                    self._last_failure_log_s = now_s
