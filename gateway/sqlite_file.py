"""SQLite files on a gateway's card: finding a damaged one, and moving it aside.

The outbox and the state store both check their file at start and, when it is damaged, move it
aside with its -wal / -shm files (kept for forensics) and start a new one. Both use this.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["check_integrity", "fsync_dir", "quarantine"]


def check_integrity(path: Path) -> str | None:
    """Return ``None`` if the file is a healthy SQLite database, else what is wrong with it.

    ``quick_check`` reads every page (so truncation and scribbles are found) but skips the
    index-to-table cross check, which would take minutes on a large backlog on an SD card.
    """
    if not path.exists():
        return None
    try:
        # Read-only: a read-write connection would delete a stale -wal on close, and with it
        # the evidence (and maybe committed events) that the quarantine must keep.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        return f"cannot open: {exc}"
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    messages = [str(row[0]) for row in rows]
    return None if messages == ["ok"] else "; ".join(messages[:5])


def quarantine(path: Path, when: datetime) -> tuple[str, ...]:
    """Move a corrupt store aside with its -wal and -shm files; return the new names."""
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{path}.corrupt-{stamp}"
    n = 1
    while any(Path(f"{base}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
        base = f"{path}.corrupt-{stamp}.{n}"
        n += 1
    moved: list[str] = []
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            os.replace(src, f"{base}{suffix}")
            moved.append(f"{base}{suffix}")
    fsync_dir(path.parent)
    return tuple(moved)


def fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry must reach the disk too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
