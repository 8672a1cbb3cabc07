"""``tagrelay report`` on a log recorded from a real ``tagrelay demo`` run (the short dock with
EPCIS on, in tests/gateway/report/data/dock-short-run/): the same summary as the run printed,
the truth beside it, the picture; other log shapes; bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

RUN = Path(__file__).parent / "report" / "data" / "dock-short-run"
SCENARIO = Path(__file__).parent / "report" / "data" / "dock-short.toml"


def report(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "report", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


def without_log(document: dict[str, Any]) -> dict[str, Any]:
    document["summary"].pop("log")
    return document


def test_report_gives_the_summary_the_demo_gave_for_its_log(tmp_path: Path) -> None:
    proc = report(str(RUN / "events.jsonl"), "--out", str(tmp_path), "--scenario", str(SCENARIO))
    assert proc.returncode == 0, proc.stderr
    recorded = json.loads((RUN / "summary.json").read_text())
    rendered = json.loads((tmp_path / "summary.json").read_text())
    assert without_log(rendered) == without_log(recorded)
    assert rendered["ground_truth"]["agree"] is True
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "handoff at D1: truth 5 confirmed / 1 missing / 1 unexpected: AGREES" in proc.stdout
    assert "epcis.document" in proc.stdout


def test_report_finds_the_runs_scenario_beside_the_log(tmp_path: Path) -> None:
    """The demo leaves run.json beside its log (scenario path as given, from the repo root)."""
    root = Path(__file__).parents[2]
    for name in ("events.jsonl", "run.json"):
        shutil.copy(RUN / name, tmp_path / name)
    proc = report(str(tmp_path / "events.jsonl"), cwd=root)
    assert proc.returncode == 0, proc.stderr
    rendered = json.loads((tmp_path / "summary.json").read_text())
    assert rendered["ground_truth"]["scenario"] == "dock-short"
    # From elsewhere the relative path does not resolve: findings without the truth.
    proc = report(str(tmp_path / "events.jsonl"), "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no ground truth" in proc.stderr
    alone = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert alone["ground_truth"] is None
    assert alone["summary"]["handoffs"] == rendered["summary"]["handoffs"]


def test_a_subscribers_log_of_bare_payloads_gives_the_same_findings(tmp_path: Path) -> None:
    """A platform subscriber that kept only the payloads, one a line, no topics."""
    lines = [json.loads(line) for line in (RUN / "events.jsonl").read_text().splitlines()]
    payloads = [line["payload"] for line in lines if "/events/" in line["topic"]]
    log = tmp_path / "payloads.jsonl"
    log.write_text("".join(json.dumps(p) + "\n" for p in payloads))
    proc = report(str(log), "--scenario", str(SCENARIO))
    assert proc.returncode == 0, proc.stderr
    rendered = json.loads((tmp_path / "summary.json").read_text())["summary"]
    recorded = json.loads((RUN / "summary.json").read_text())["summary"]
    for key in ("excursions", "shocks", "deliveries"):
        assert rendered[key] == recorded[key], key
    # The status messages are not under .../events/: the rest is counted alike.
    del recorded["events"]["gateway.status"]
    assert rendered["events"] == recorded["events"]
    # Without the platform's commands the session is known from its report alone.
    assert [h["confirmed"] for h in rendered["handoffs"]] == [
        h["confirmed"] for h in recorded["handoffs"]
    ]


def test_a_missing_log_or_scenario_is_refused(tmp_path: Path) -> None:
    assert report(str(tmp_path / "nope.jsonl")).returncode == 2
    (tmp_path / "e.jsonl").write_text("garbage\n")
    proc = report(str(tmp_path / "e.jsonl"), "--scenario", "no-such-scenario")
    assert proc.returncode == 2
    assert "no-such-scenario" in proc.stderr
