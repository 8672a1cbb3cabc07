"""bench/e2e.py runs on its own in its --quick sizes and ends with its JSON line: figures and
checks. The figures must be real measurements (positive); the targets are the bench's business,
not this test's (a loaded machine misses them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

POSITIVE = (
    "serial_baseline_events_per_s",
    "serial_per_event_events_per_s",
    "serial_batched_events_per_s",
    "serial_baseline_cpu_us_per_event",
    "serial_per_event_cpu_us_per_event",
    "serial_batched_cpu_us_per_event",
    "ble_2000_bare_bleak_cpu_s_per_1000_adverts",
    "ble_2000_daemon_cpu_s_per_1000_adverts",
    "ble_5000_bare_bleak_cpu_s_per_1000_adverts",
    "ble_5000_daemon_cpu_s_per_1000_adverts",
    "ble_2000_daemon_received_adverts",
    "ble_5000_daemon_received_adverts",
    "ble_2000_alarm_p99_ms",
    "ble_5000_alarm_p99_ms",
    "backlog_drain_s",
    "backlog_drain_events_per_s",
    "peak_rss_mib",
)
CHECKS = (
    "per_event_vs_baseline",
    "batched_vs_baseline",
    "ble_2000_cpu_vs_bare_bleak",
    "ble_2000_none_dropped",
    "ble_2000_alarm_p99_ms",
    "ble_5000_cpu_vs_bare_bleak",
    "ble_5000_none_dropped",
    "ble_5000_alarm_p99_ms",
    "peak_rss_mib",
)


@pytest.mark.timeout(180)
def test_quick_run_prints_figures_and_checks() -> None:
    result = subprocess.run(
        [sys.executable, "bench/e2e.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        env=os.environ,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Every daemon it started stopped cleanly on SIGTERM, without a traceback in its log.
    assert "warning: the daemon" not in result.stderr, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    for name in POSITIVE:
        assert figures[name] > 0, name
    # Every event the backlog phase held was PUBACKed, the labels' new ones included.
    assert figures["backlog_events_acked"] >= figures["backlog_events"]
    assert figures["backlog_events_at_reconnect"] >= figures["backlog_events"]
    assert set(figures["checks"]) == set(CHECKS)
    for name, check in figures["checks"].items():
        assert set(check) == {"value", "target", "ok"}, name
        assert isinstance(check["ok"], bool), name
        assert isinstance(check["target"], str), name
        assert check["target"], name
    # The human-readable figures come before the JSON line.
    assert any(line.startswith("serial baseline") for line in lines[:-1])
