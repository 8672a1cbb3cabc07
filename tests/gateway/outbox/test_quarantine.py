"""A corrupt store is moved aside with its -wal / -shm, a new epoch starts, and it is reported."""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path

import pytest

from gateway.outbox import LOSS_KIND, Outbox, OutboxError, OutboxErrorReason
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event


async def _fill(db: Path, n: int = 300) -> str:
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        for i in range(0, n, 50):
            await outbox.accept([event(f"e{j}") for j in range(i, i + 50)])
        return outbox.store_epoch


def _truncate(db: Path) -> None:
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2 + 100)


def _scribble(db: Path) -> None:
    rng = random.Random(7)
    with db.open("r+b") as f:
        # Page 1 holds the schema; pages 2.. hold rows: overwrite a run of data pages.
        f.seek(4096 * 2)
        f.write(bytes(rng.randrange(256) for _ in range(4096 * 3)))


def _stale_journal(db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").write_bytes(b"\x00" * 64)


def _scribble_header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"this is not an sqlite file at all")


@pytest.mark.parametrize("damage", [_truncate, _scribble, _scribble_header])
async def test_corrupt_store_is_quarantined_and_reported(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "outbox.db"
    old_epoch = await _fill(db)
    assert callable(damage)
    damage(db)
    # A stale WAL and shared-memory file travel with it.
    _stale_journal(db)
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        stats = await outbox.stats()
        leased = await outbox.lease(10)
        result = await outbox.accept([event("fresh")])
    assert outbox.store_epoch != old_epoch
    assert len(stats.quarantined) == 3
    assert {Path(p).name.split(".corrupt-")[0] for p in stats.quarantined} == {"outbox.db"}
    assert sorted(p.rsplit("Z", 1)[1] for p in stats.quarantined) == ["", "-shm", "-wal"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [Path(p).name for p in stats.quarantined]
        + ["outbox.db", "outbox.db.lock", "outbox.db.reserve", "outbox.db.seq"]
    )
    # Reported, never silent: a log line and a loss event in the new store.
    assert any("corrupt" in r.message and r.levelname == "ERROR" for r in caplog.records)
    (loss,) = leased
    assert loss.kind == LOSS_KIND
    body = json.loads(loss.payload)
    assert body["reason"] == "store_corrupt"
    assert body["quarantined"] == list(stats.quarantined)
    assert result.statuses[0].value == "accepted"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


async def test_healthy_store_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    epoch = await _fill(db, 100)
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        stats = await outbox.stats()
    assert outbox.store_epoch == epoch
    assert stats.quarantined == ()
    assert stats.depth == 100
    assert [p for p in os.listdir(tmp_path) if "corrupt" in p] == []


async def test_second_opener_is_refused_while_the_store_is_open(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    async with Outbox(db, ROOMY, FakeClock()):
        with pytest.raises(OutboxError) as excinfo:
            async with Outbox(db, ROOMY, FakeClock()):
                pass
    assert excinfo.value.reason is OutboxErrorReason.LOCKED
