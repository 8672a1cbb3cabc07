"""``tagrelay demo SCENARIO`` end to end, as a user runs it: a real mosquitto, the simulator,
one ``tagrelay run`` per gateway, the platform's commands, the recorded log, the summary
beside the ground truth, and the picture; with the EPCIS profile switched on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.demo import platform_commands
from gateway.report import asset_uri
from simulator.world import load_scenario

DATA = Path(__file__).parent / "report" / "data"
#: The short dock's 275 simulated seconds, slow enough for a busy machine to keep up.
SPEED = "5"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_runs_a_scenario_end_to_end_with_epcis(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", str(DATA / "dock-short.toml"),
         "--speed", SPEED, "--out", str(out), "--epcis"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The log: every line a recorded message with its topic, parsed payload and receive time.
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert lines
    assert all({"topic", "payload", "received"} <= set(line) for line in lines)
    topics = {line["topic"] for line in lines}
    assert "tagrelay/v1/gw-door-01/cmd/handoff/open" in topics  # the platform's part
    assert "tagrelay/v1/gw-door-01/cmd/tags/bind" in topics
    assert "tagrelay/v1/gw-door-01/events/epcis/document" in topics  # --epcis
    # output = "both": EPCIS documents beside the native events, each with its events.
    config = tomllib.loads((out / "configs" / "gw-door-01.toml").read_text())
    assert config["epcis"]["output"] == "both"
    documents = [line["payload"] for line in lines if line["topic"].endswith("/epcis/document")]
    assert documents
    assert all(d["type"] == "EPCISDocument" and d["epcisBody"]["eventList"] for d in documents)
    assert "tagrelay/v1/gw-door-01/events/handoff/report" in topics
    answers = [line["payload"] for line in lines if "/result/" in line["topic"]]
    assert answers
    assert [a for a in answers if not a["ok"]] == []
    # Every gateway was stopped cleanly by the demo: its last status says so.
    statuses = [
        line["payload"] for line in lines if line["topic"] == "tagrelay/v1/gw-door-01/status"
    ]
    assert statuses[0]["state"] == "online"
    assert (statuses[-1]["state"], statuses[-1]["reason"]) == ("offline", "shutdown")
    # The summary, from the log, with the truth beside it.
    document = json.loads((out / "summary.json").read_text())
    summary, truth = document["summary"], document["ground_truth"]
    (handoff,) = summary["handoffs"]
    assert (handoff["gateway"], handoff["door"]) == ("gw-door-01", "door-d1")
    assert handoff["expected"] == 6
    assert summary["events"]["epcis.document"]["delivered"] > 0
    # The session reports at its window's end whatever it saw (how much it saw depends on how
    # fast the gateways started on a busy machine: the agreement fields say how it went).
    assert handoff["reported"] is True
    assert handoff["close_reason"] in ("window_end", "vehicle_departed")
    for name in ("handoffs", "excursions", "shocks", "deliveries", "left_on_board", "misloads"):
        assert isinstance(truth[name]["agree"], bool), name
    assert truth["agree"] == all(truth[k]["agree"] for k in truth if isinstance(truth[k], dict))
    assert [row["door"] for row in truth["handoffs"]["items"]] == ["D1"]
    assert truth["excursions"]["items"][0]["truth"] == {
        "start_s": 100.0, "end_s": 180.0, "limit": 8.0,
    }  # fmt: skip
    assert "Beside the ground truth of dock-short" in proc.stdout
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((out / "run.json").read_text())
    assert run["scenario"] == "dock-short"
    assert run["epcis"] is True
    for gw_log in (out / "logs").glob("gw-*.log"):
        assert "Traceback" not in gw_log.read_text(), gw_log


def test_a_bad_scenario_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nduration_s = -1\n')
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", str(bad), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "duration_s" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["cross-dock-v1.toml", "delivery-route-v1.toml"])
def test_scenario_files_of_the_first_format_load_and_give_the_platform_commands(
    name: str,
) -> None:
    """Files written before the format gained route membership, neighbours and profiles."""
    scenario = load_scenario(DATA / name)
    assert scenario.start is not None
    commands = platform_commands(scenario, scenario.start)
    binds = [c for c in commands if c.name == "tags.bind"]
    tags = sum(len(i.tags) for i in scenario.items) * len(scenario.gateways)
    assert len(binds) == tags
    assert {c.payload["asset"] for c in binds} == {asset_uri(i.id) for i in scenario.items}
    opens = [c for c in commands if c.name == "handoff.open"]
    loads = [c for c in commands if c.name == "route.load"]
    assert len(opens) == len(scenario.ground_truth.handoffs)
    assert len(loads) == len(scenario.routes)
    for c in opens:
        (truth,) = scenario.ground_truth.handoffs
        assert c.payload["expected"] == [asset_uri(i) for i in truth.expected]
    for c in loads:
        stops = json.loads(json.dumps(c.payload["stops"]))
        assert [s["stop_id"] for s in stops] == [s.id for s in scenario.routes[0].stops]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ctrl_c_stops_every_child_by_pid_and_still_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", str(DATA / "dock-short.toml"),
         "--speed", SPEED, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pids: list[int] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            pids += [int(p) for p in re.findall(r"pid (\d+)", line)]
            if line.startswith("platform:"):
                break
        # The broker, the simulator and the short dock's one gateway.
        assert len(pids) == 3, pids
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "stopped before the scenario ended" in stderr
    # What was recorded is still summarised: the gateway came online and went offline cleanly.
    document = json.loads((out / "summary.json").read_text())
    status = document["summary"]["gateways"]["gw-door-01"]
    assert (status["births"], status["state"], status["reason"]) == (1, "offline", "shutdown")
    assert "Run summary" in stdout
