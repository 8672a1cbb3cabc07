"""The committed-sequence high-water mark: how far the store had got, kept outside SQLite.

Bytes changed in the ``-wal`` file (a card that scribbles, a bad block) make SQLite drop the
damaged frame and every frame after it when it next opens the store, silently: the database
is consistent, ``quick_check`` passes, and the commits in those frames (accepted events among
them) are gone. Nothing inside the database can tell, since the record of them went with the
frames. So after each commit that used sequence numbers, the store writes the next sequence
number to a small side file (``outbox.db.seq``). At start, if the file says more was committed
than the database holds, the difference went missing with the WAL: it is reported.

Flash wear: one ``pwrite`` of 36 bytes into the same block per commit, without an fsync of its
own. The page cache holds the latest value, so a kill -9 or a crash of the process keeps it;
the kernel writes the block back in its own time (a few seconds), and the store syncs it at
close. After a power cut the mark may be older than the last commits: damage to those frames
is then under-reported, never over-reported (the mark is written only after a commit).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Final

_log = logging.getLogger(__name__)

_MAGIC: Final = b"TRSEQ001"
#: magic, store epoch digest, next sequence number, CRC-32 of the fields before it.
_RECORD: Final = struct.Struct("<8s16sQI")


def _epoch_digest(epoch: str) -> bytes:
    return hashlib.blake2b(epoch.encode(), digest_size=16).digest()


class HighWater:
    """The side file of one store."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._epoch = b""
        self._written = -1

    @property
    def path(self) -> Path:
        return self._path

    def read(self, epoch: str) -> int | None:
        """The next sequence number recorded for the store ``epoch``; None when there is no
        usable record (no file, another store's, damaged)."""
        try:
            data = self._path.read_bytes()
        except OSError:
            return None
        if len(data) < _RECORD.size:
            return None
        magic, digest, next_seq, crc = _RECORD.unpack_from(data)
        body = data[: _RECORD.size - 4]
        if magic != _MAGIC or crc != zlib.crc32(body) or digest != _epoch_digest(epoch):
            return None
        return int(next_seq)

    def open(self, epoch: str) -> None:
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            _log.warning("outbox: cannot keep the high-water mark in %s: %s", self._path, exc)
            self._fd = None
        self._epoch = _epoch_digest(epoch)
        self._written = -1

    def write(self, next_seq: int) -> None:
        """Record ``next_seq`` (after a commit): a write into the page cache, no fsync."""
        if self._fd is None or next_seq == self._written:
            return
        body = struct.pack("<8s16sQ", _MAGIC, self._epoch, next_seq)
        try:
            os.pwrite(self._fd, body + struct.pack("<I", zlib.crc32(body)), 0)
        except OSError as exc:
            _log.debug("outbox: high-water mark not written: %s", exc)
            return
        self._written = next_seq

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            _log.debug("outbox: high-water mark not synced: %s", exc)
        finally:
            os.close(self._fd)
            self._fd = None
