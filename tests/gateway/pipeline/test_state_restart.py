"""What a restart must not forget, through a real daemon killed with SIGKILL: an open handoff
session acknowledged before the kill is still open after it, and the daemon starts cleanly with
the condition and tag state it saved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.paho_platform import (
    CMD,
    platform,
    run_daemon,
    write_config,
)

SESSION = {
    "session_id": "H-1",
    "door": "door-9",
    "from_party": "Northline Freight",
    "to_party": "4012345000009",
    "expected": ["https://id.gs1.org/00/340123450000000017"],
}


def command(p: Any, name: str, body: dict[str, Any]) -> dict[str, Any]:
    mark = p.mark()
    p.publish(f"{CMD}/{name.replace('.', '/')}", json.dumps(body).encode())
    p.wait(lambda: any(json.loads(s.payload).get("id") == body["id"] for s in p.answers(mark)))
    answer = next(s for s in p.answers(mark) if json.loads(s.payload).get("id") == body["id"])
    result: dict[str, Any] = json.loads(answer.payload)
    return result


def test_acknowledged_state_survives_a_kill_9(mosquitto: Broker, tmp_path: Path) -> None:
    config = write_config(tmp_path, mosquitto)
    with config.open("a") as f:
        f.write('[custody]\ndoor_zones = ["door-9"]\n')
    end = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    with platform(mosquitto) as p:
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait_online(mark)
            opened = command(p, "handoff.open", {"id": "o1", **SESSION, "window_end": end})
            assert opened["ok"] is True, opened
            assigned = command(
                p,
                "profiles.assign",
                {"id": "a1", "profile": "frozen", "subjects": [SESSION["expected"][0]]},
            )
            assert assigned["ok"] is True, assigned
            bound = command(
                p,
                "tags.bind",
                {
                    "id": "b1",
                    "tag": "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:2",
                    "asset": SESSION["expected"][0],
                },
            )
            assert bound["ok"] is True, bound
            proc.kill()  # a power cut right after the answers
            proc.wait(10)
        mark = p.mark()
        with run_daemon(tmp_path, config):
            p.wait_online(mark)
            # The session is still open: the same id with other content is a conflict ...
            again = command(
                p,
                "handoff.open",
                {"id": "o2", **SESSION, "expected": ["PCL-X"], "window_end": end},
            )
            assert again["ok"] is False, again
            # ... and closing it works (a session unknown after the restart would be refused).
            closed = command(p, "handoff.close", {"id": "c1", "session_id": "H-1"})
            assert closed["ok"] is True, closed
            # Binding the same tag to the same asset again changes nothing.
            rebound = command(
                p,
                "tags.bind",
                {
                    "id": "b2",
                    "tag": "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:2",
                    "asset": SESSION["expected"][0],
                },
            )
            assert rebound["ok"] is True, rebound
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log
    assert "could not be restored" not in log
