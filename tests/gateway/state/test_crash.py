"""Crash safety: SIGKILL a process writing state at full speed, many times on the same file.

Every batch the child printed (it prints only after the write returned) must be on disk after
each kill, every batch on disk must be whole (transactions are atomic), and the file must pass
SQLite's full integrity check.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gateway.state import StateStore
from tests.gateway.outbox.helpers import FakeClock
from tests.gateway.state.crash_child import BATCH_KEYS

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 10
#: The child imports and opens the store in well under this on a loaded machine.
START_DEADLINE_S = 60.0


def _read_lines(proc: subprocess.Popen[bytes], lines: int) -> list[int]:
    assert proc.stdout is not None
    got: list[int] = []
    deadline = time.monotonic() + START_DEADLINE_S
    while len(got) < lines:
        line = proc.stdout.readline()
        if not line:
            break
        got.append(int(line))
        assert time.monotonic() < deadline, "child too slow"
    return got


def test_sigkill_mid_writes_loses_no_returned_write_and_tears_no_transaction(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    rng = random.Random(20261203)
    repo_root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    printed: dict[str, list[int]] = {}
    for run in range(KILLS):
        tag = f"r{run}"
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), tag], stdout=subprocess.PIPE, env=env
        )
        try:
            first = _read_lines(proc, rng.randrange(1, 60))
            time.sleep(rng.random() * 0.02)  # randomises the kill moment; not synchronisation
            proc.send_signal(signal.SIGKILL)
            rest, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        printed[tag] = first + [int(x) for x in rest.split()]
        assert printed[tag], "the child wrote nothing before the kill"

        with StateStore(db, FakeClock()) as store:
            assert store.quarantine is None
            crash = store.items("crash")
            markers = store.items("marker")
            singles = store.items("single")
        for t, batches in printed.items():
            last = batches[-1]
            for b in batches:
                for i in range(BATCH_KEYS):
                    assert crash[f"{t}-{b}-{i}"] == {"batch": b, "i": i, "pad": "x" * 200}
                assert singles[f"{t}-{b}"] == b
            # Exactly one marker per run: the delete of the previous one and the put of the
            # next were one transaction. It is the last printed batch or the one after it
            # (committed, killed before the print).
            run_markers = [k for k in markers if k.startswith(f"{t}-")]
            assert len(run_markers) == 1
            assert markers[run_markers[0]] in (last, last + 1)
        # No batch on disk is partial.
        per_batch: dict[str, int] = {}
        for key in crash:
            run_tag, batch, _ = key.split("-")
            per_batch[f"{run_tag}-{batch}"] = per_batch.get(f"{run_tag}-{batch}", 0) + 1
        assert set(per_batch.values()) == {BATCH_KEYS}

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
