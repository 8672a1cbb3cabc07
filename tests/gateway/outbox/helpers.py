"""Shared pieces of the outbox tests: event builders, file helpers, the shared fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import EventClass, Outbox, OutboxConfig, OutboxEvent
from gateway.outbox.schema import MIGRATIONS
from tests.fixtures.clock import FakeClock as FakeClock  # the one fake clock, re-exported

#: A config whose cap and TTLs no test hits by accident; tests override what they exercise.
ROOMY: OutboxConfig = OutboxConfig(
    max_bytes=1 << 30,
    ttl_s={c: None for c in EventClass},
    group_commit_window_ms=2.0,
    ack_flush_delay_ms=5.0,
    sweep_interval_s=3600.0,
)


def event(
    event_id: str,
    event_class: EventClass = EventClass.TELEMETRY,
    *,
    source: str = "label-1",
    dedup_key: str | None = None,
    size: int = 300,
) -> OutboxEvent:
    """A ~``size``-byte JSON event."""
    body = {"event_id": event_id, "class": event_class.name.lower(), "source": source}
    payload = json.dumps(body).encode()
    payload += b" " * max(0, size - len(payload))
    return OutboxEvent(
        event_id=event_id,
        event_class=event_class,
        kind="telemetry.reading" if event_class is EventClass.TELEMETRY else "condition.shock",
        payload=payload,
        dedup_key=dedup_key,
        source=source,
    )


async def assert_still_waiting(outbox: Outbox, waiter: asyncio.Task[None]) -> None:
    """``waiter`` (a ``wait_available``) has not been woken, and cannot be about to be: a
    round trip through the outbox's writer (``stats``) has run everything queued before it and
    set the availability from the store, and the loop has since run the waiter's wake-up, if
    there was one. No wall-clock wait, so nothing slow can make this pass by accident."""
    await outbox.stats()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()


def version_2_store(db: Path) -> sqlite3.Connection:
    """A new store file in the version 2 layout (one events table, inline payloads), open in
    autocommit mode for the test to fill; the caller closes it."""
    conn = sqlite3.connect(db, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        migration(conn)
    conn.execute("PRAGMA user_version = 2")
    return conn


def orphan_blocks(db: Path) -> int:
    """Payload blocks that no event row refers to any more (there must never be any)."""
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM payload_blocks b WHERE NOT EXISTS (SELECT 1 FROM events "
                "WHERE row_id BETWEEN b.first_row_id AND b.last_row_id)"
            ).fetchone()[0]
        )
    finally:
        conn.close()


#: A file system this small fills up in a second of accepts.
SMALL_FS_BYTES = 3 * 1024 * 1024


@contextlib.contextmanager
def small_filesystem(where: Path, size: int = SMALL_FS_BYTES) -> Iterator[Path]:
    """A real file system of ``size`` bytes (tmpfs) mounted at ``where``: a full disk as
    SQLite meets it (the WAL cannot grow either, unlike with ``max_page_count``). Skips the
    test, saying why, where mounting is not possible (not root, no mount permission)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for a real full disk needs root (CI runs as root)")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a real full disk: {done.stderr.strip()}")
    try:
        yield where
    finally:
        # Lazy: a file a failed test left open must not leave the mount behind.
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path, leave_bytes: int = 0, name: str = "ballast") -> Path:
    """Take all but ``leave_bytes`` of the free space of ``directory``'s file system with a
    ballast file (another program filling the card); return its path."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    path = directory / name
    have = path.stat().st_size if path.exists() else 0
    want = max(0, have + free - leave_bytes)
    with open(path, "ab") as handle:
        handle.truncate(0)
        if want:
            os.posix_fallocate(handle.fileno(), 0, want)
        if leave_bytes == 0:
            # Whatever the allocation left over (rounding), take it too.
            with contextlib.suppress(OSError):
                while True:
                    os.write(handle.fileno(), bytes(4096))
    return path


def shrink(ballast: Path, free_bytes: int) -> None:
    """Give ``free_bytes`` of the ballast back to the file system."""
    size = ballast.stat().st_size
    os.truncate(ballast, max(0, size - free_bytes))
