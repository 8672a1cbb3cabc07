"""``tagrelay demo`` plays a scenario's ``power_cut`` fault on the gateway process it owns: the
gateway's ``tagrelay run`` is killed with SIGKILL at the fault's time (its last will says the
connection was lost) and started again after the fault's ``down_s``, and the run goes on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCK_SHORT = Path(__file__).parents[1] / "report" / "data" / "dock-short.toml"
#: Scenario seconds: the cut falls after the moves (90 s to 140 s), inside the handoff window.
CUT_AT_S, DOWN_S = 150, 30
SPEED = "10"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_power_cut_kills_the_gateway_and_the_demo_starts_it_again(tmp_path: Path) -> None:
    scenario = tmp_path / "dock-cut.toml"
    scenario.write_text(
        DOCK_SHORT.read_text()
        + f'\n[[faults]]\nkind = "power_cut"\nt_s = {CUT_AT_S}\ngateway = "gw-door-01"\n'
        f"down_s = {DOWN_S}\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", str(scenario), "--speed", SPEED,
         "--out", str(out), "--lead-in", "15"],
        capture_output=True, text=True, timeout=220,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cut = re.search(r"power cut: gw-door-01 killed \(pid (\d+)\) at t=(\d+) s", proc.stderr)
    back = re.search(r"power back: gw-door-01 started again \(pid (\d+)\)", proc.stderr)
    assert cut is not None, proc.stderr[-3000:]
    assert back is not None, proc.stderr[-3000:]
    killed, restarted = int(cut.group(1)), int(back.group(1))
    assert killed != restarted
    assert CUT_AT_S <= int(cut.group(2)) < CUT_AT_S + DOWN_S
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    # Not a failure of the run: the cut is the scenario's. The world waited for the gateway.
    assert "warning" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(r"ready \d+\.\d s before the world starts", proc.stderr), proc.stderr
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    statuses = [
        (line["payload"]["state"], line["payload"].get("reason"))
        for line in lines
        if line["topic"] == "tagrelay/v1/gw-door-01/status"
    ]
    # Born, killed (the broker publishes its will), born again, stopped cleanly at the end.
    assert statuses == [
        ("online", None),
        ("offline", "connection lost"),
        ("online", None),
        ("offline", "shutdown"),
    ], statuses
    document = json.loads((out / "summary.json").read_text())
    assert document["summary"]["gateways"]["gw-door-01"]["births"] == 2
    # The session opened before the cut still reports after the restart.
    (handoff,) = document["summary"]["handoffs"]
    assert handoff["reported"] is True
    log = (out / "logs" / "gw-door-01.log").read_text()
    assert "Traceback" not in log
