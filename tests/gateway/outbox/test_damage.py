"""Damage on the card is found and reported, never delivered or hidden: changed bytes in a
payload (row checksum), a kind that is not valid UTF-8 (dead-lettered, not a crash loop), and
a WAL scribbled after a kill -9 (the events SQLite drops with it are reported). All on real
files damaged on disk, the WAL one after a real SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.outbox import LOSS_KIND, EventClass, LeasedEvent, Outbox, OutboxConfig
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event

CHILD = Path(__file__).with_name("crash_child.py")
#: The WAL's header, and each frame's header before its page (SQLite's WAL file format).
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24
PAGE_BYTES = 4096


def _quick_check(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA quick_check").fetchone()[0])
    finally:
        conn.close()


def _scribble_in_file(db: Path, marker: bytes, offset: int, junk: bytes) -> None:
    """Change bytes of the main file ``offset`` bytes after ``marker`` (found once)."""
    data = db.read_bytes()
    at = data.index(marker)
    assert data.count(marker) == 1
    with db.open("r+b") as handle:
        handle.seek(at + offset)
        handle.write(junk)


def _reports(leased: Sequence[LeasedEvent]) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in leased if e.kind == LOSS_KIND]


@pytest.mark.parametrize("batch", [1, 20], ids=["inline", "payload-block"])
async def test_a_changed_payload_is_dead_lettered_and_reported(tmp_path: Path, batch: int) -> None:
    db = tmp_path / "o.db"
    events = [event(f"e{i:02d}", size=300) for i in range(20)]
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        for start in range(0, 20, batch):
            await outbox.accept(events[start : start + batch])
    # A few bytes of e07's payload change on the card; the file is still a sound database.
    _scribble_in_file(db, b'"event_id": "e07"', 40, b"XYZ")
    assert _quick_check(db) == "ok"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        leased = await outbox.lease(100)
        leased += await outbox.lease(100)  # the report of what the first lease found
        stats = await outbox.stats()
    delivered = [e.event_id for e in leased if e.kind != LOSS_KIND]
    assert delivered == [e.event_id for e in events if e.event_id != "e07"]
    assert all(
        e.payload == events[int(e.event_id[1:])].payload for e in leased if e.kind != LOSS_KIND
    )
    (report,) = _reports(leased)
    assert report["losses"] == [{"class": "telemetry", "reason": "damaged", "count": 1}]
    assert report["first_event_id"] == "e07"
    assert stats.dead_letters == 1
    conn = sqlite3.connect(db)
    try:
        ((event_id, reason),) = conn.execute("SELECT event_id, reason FROM dead_letters")
    finally:
        conn.close()
    assert event_id == "e07"
    assert "checksum" in reason


async def test_a_kind_that_is_not_utf8_is_dead_lettered_not_a_crash_loop(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept([event(f"e{i}") for i in range(5)])
        (third,) = [e for e in await outbox.lease(5) if e.event_id == "e2"]
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(
            "UPDATE events_telemetry SET kind = CAST(x'74656cff6d' AS TEXT) WHERE row_id = ?",
            (third.row_id,),
        )
    finally:
        conn.close()
    assert _quick_check(db) == "ok"
    for _start in range(2):  # and again after a restart: no loop
        async with Outbox(db, ROOMY, FakeClock()) as outbox:
            leased = await outbox.lease(100)
            await outbox.ack([e.row_id for e in leased])
            stats = await outbox.stats()
        assert "e2" not in [e.event_id for e in leased]
    assert stats.dead_letters == 1
    assert {(x.event_class, x.reason, x.count) for x in stats.losses} == {
        (EventClass.TELEMETRY, "damaged", 1)
    }


async def test_an_evicted_row_with_a_damaged_event_id_is_counted(tmp_path: Path) -> None:
    """Eviction reads the event ids of what it removes: a damaged one must not fail it."""
    db = tmp_path / "o.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept([event("old")])
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("UPDATE events_telemetry SET event_id = CAST(x'6fff64' AS TEXT)")
    finally:
        conn.close()
    config = ROOMY.model_copy(update={"max_bytes": 3 * 400})
    async with Outbox(db, config, FakeClock()) as outbox:
        for i in range(5):
            await outbox.accept([event(f"new{i}")])
        stats = await outbox.stats()
    assert stats.lost >= 3


def _run_child_and_kill(db: Path, lines: int) -> list[str]:
    """The crash test's child accepting at full speed, SIGKILLed after ``lines`` accepted
    ids; return the ids it printed (each printed only after it was committed)."""
    repo_root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), "w"], stdout=subprocess.PIPE, env=env
    )
    printed: list[bytes] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60.0
        while len(printed) < lines and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line)
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return [line.decode().strip() for line in [*printed, *rest.splitlines()]]


def test_events_lost_with_a_damaged_wal_are_reported_and_the_wal_kept(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    printed = _run_child_and_kill(db, 1500)
    wal = Path(f"{db}-wal")
    frames = (wal.stat().st_size - WAL_HEADER_BYTES) // (WAL_FRAME_HEADER_BYTES + PAGE_BYTES)
    assert frames > 20, "the child's commits are not in the WAL: the test lost its point"
    # Bytes change in the page of a frame in the middle of the WAL.
    middle = frames // 2
    at = WAL_HEADER_BYTES + middle * (WAL_FRAME_HEADER_BYTES + PAGE_BYTES) + 500
    with wal.open("r+b") as handle:
        handle.seek(at)
        handle.write(b"\xde\xad\xbe\xef" * 8)
    damaged_wal = wal.read_bytes()

    async def reopen() -> tuple[list[LeasedEvent], set[str]]:
        async with Outbox(db, OutboxConfig(), FakeClock()) as outbox:
            leased = await outbox.lease(1_000_000)
        return leased, {e.event_id for e in leased}

    leased, stored = asyncio.run(reopen())
    missing = [i for i in printed if i not in stored]
    assert missing, "SQLite kept every frame: the damage did not take"
    (report,) = [r for r in _reports(leased) if r.get("reason") == "storage_damage"]
    assert isinstance(report["count"], int)
    # Every accepted id that went missing is counted (and the commits not yet printed when
    # the kill landed may add a few).
    assert len(missing) <= report["count"] <= len(missing) + 8 * 7 * 4
    (kept,) = report["kept"]
    assert isinstance(kept, str)
    assert Path(kept).read_bytes() == damaged_wal
    # Reported once: the next start finds nothing missing.
    leased, _ = asyncio.run(reopen())
    assert [r for r in _reports(leased) if r.get("reason") == "storage_damage"] == [report]
