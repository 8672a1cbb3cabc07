"""Crash safety: SIGKILL a process accepting at full speed, many times on the same file.

Every id the child printed (it prints only after accept returned) must be in the store exactly
once after each kill, and the file must pass SQLite's full integrity check; at the end every
payload reads back whole (most from payload blocks).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxConfig, OutboxEvent
from tests.gateway.outbox.crash_child import payload_for
from tests.gateway.outbox.helpers import FakeClock

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 22
#: The child imports and opens the store in well under this on a loaded machine.
START_DEADLINE_S = 60.0


def _wait_for_output(proc: subprocess.Popen[bytes], lines: int) -> list[bytes]:
    """Read until the child has printed ``lines`` ids (poll with a deadline: external process)."""
    assert proc.stdout is not None
    got: list[bytes] = []
    deadline = time.monotonic() + START_DEADLINE_S
    while len(got) < lines:
        line = proc.stdout.readline()
        if not line:
            break
        got.append(line)
        assert time.monotonic() < deadline, "child too slow"
    return got


async def _payloads_and_resend(
    db: Path, event_ids: list[str]
) -> tuple[dict[str, bytes], set[AcceptStatus]]:
    """Every stored payload by event id, then what re-sending every printed id gets."""
    async with Outbox(db, OutboxConfig(), FakeClock()) as outbox:
        leased = await outbox.lease(1_000_000)
        payloads = {e.event_id: e.payload for e in leased}
        result = await outbox.accept(
            [OutboxEvent(i, EventClass.TELEMETRY, "test.crash", b"{}") for i in event_ids]
        )
    return payloads, set(result.statuses)


def test_sigkill_at_random_moments_loses_no_accepted_event(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    rng = random.Random(20261124)
    printed: list[str] = []
    blocks = 0
    repo_root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    for run in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), f"r{run}"],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            # Kill after a random number of accepted ids, then after a random extra delay, so
            # the kill lands at random points of a commit, a checkpoint or an idle moment.
            first = _wait_for_output(proc, rng.randrange(1, 400))
            time.sleep(rng.random() * 0.05)  # randomises the kill moment; not synchronisation
            proc.send_signal(signal.SIGKILL)
            rest, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert first, f"run {run}: the child printed nothing"
        printed.extend(line.decode().strip() for line in [*first, *rest.splitlines()])
        conn = sqlite3.connect(db)
        try:
            stored = Counter(r[0] for r in conn.execute("SELECT event_id FROM events"))
            integrity = conn.execute("PRAGMA integrity_check").fetchall()
            blocks += conn.execute("SELECT count(*) FROM payload_blocks").fetchone()[0]
        finally:
            conn.close()
        assert integrity == [("ok",)], f"run {run}: {integrity}"
        missing = [i for i in printed if stored[i] != 1]
        assert not missing, f"run {run}: {len(missing)} accepted ids lost or doubled"
    assert len(printed) == len(set(printed)) > KILLS
    assert blocks > 0, "no payload blocks were written: the test lost its point"
    payloads, resend = asyncio.run(_payloads_and_resend(db, printed))
    # Each payload reads back whole, from its block or inline.
    assert [i for i in printed if payloads[i] != payload_for(i)] == []
    # Every accepted key survived the kills too: re-sending any of them is a duplicate.
    assert resend == {AcceptStatus.DUPLICATE}
