"""Reading the outbox file from another process while the daemon writes it (what
``tagrelay outbox stats`` and ``tagrelay status`` do) leaves the writer running.

The writer once opened and closed the ``-shm`` file to read the WAL's frame count, which
dropped its own POSIX locks on it: the next reader took itself for the first connection,
reinitialised the file under the writer's mapping, and the writer died of SIGBUS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gateway.outbox.inspection import file_stats
from tests.fixtures.mosquitto import stop_process

CHILD = Path(__file__).with_name("crash_child.py")
#: Long enough for hundreds of reads against thousands of commits; the writer died at the
#: first read before the fix.
READ_FOR_S = 3.0
START_TIMEOUT_S = 20.0


def test_a_reader_in_another_process_does_not_kill_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    out = tmp_path / "accepted.txt"
    with out.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), "live"],
            stdout=sink,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while out.stat().st_size == 0:
            assert child.poll() is None, child.stderr and child.stderr.read().decode()
            assert time.monotonic() < deadline, "the writer accepted nothing"
            time.sleep(0.05)
        reads = 0
        written = out.stat().st_size
        end = time.monotonic() + READ_FOR_S
        while time.monotonic() < end:
            stats = file_stats(db)
            assert stats.depth >= 0
            reads += 1
            assert child.poll() is None, child.stderr and child.stderr.read().decode()
        assert reads >= 10
        # Still committing after all those reads.
        grown = out.stat().st_size
        deadline = time.monotonic() + START_TIMEOUT_S
        while out.stat().st_size == grown:
            assert child.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert out.stat().st_size > written
    finally:
        stop_process(child)
        if child.stderr is not None:
            child.stderr.close()
