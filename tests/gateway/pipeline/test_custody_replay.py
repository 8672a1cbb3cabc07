"""The custody events saved with the state are given to the outbox again at start: a kill -9
after the state moved past a fact (a session reported) and before the outbox committed its event
loses nothing. Through ``tagrelay run`` as a real process, a real state file and mosquitto."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import JsonValue

from foundation.clock import SystemClock
from gateway.custody import CustodyEngine, SessionSpec
from gateway.custody.rules import CLOSE_SETTLE_S
from gateway.events import to_outbox
from gateway.pipeline.pipeline import (
    CUSTODY_KEY,
    CUSTODY_NAMESPACE,
    CUSTODY_PENDING_KEY,
    _pending_json,
)
from gateway.state import STATE_FILE_NAME, StateStore
from tests.fixtures.mosquitto import Broker
from tests.gateway.pipeline.test_custody_events import bridge_for
from tests.gateway.uplink.paho_platform import GATEWAY, platform, run_daemon, write_config


def reported_state() -> tuple[JsonValue, list[JsonValue], str]:
    """An engine whose session H-9 has reported, its snapshot, and the report's outbox row as
    the pipeline saves it beside the snapshot."""
    bridge = bridge_for()
    engine = CustodyEngine(door_zones={"door-9"})
    bridge.engine = engine
    spec = SessionSpec("H-9", "door-9", "Northline Freight", "4012345000009", ("A",), 0.0, 100.0)
    engine.open_session(spec, 0.0)
    engine.close_session("H-9", 10.0)
    (report,) = bridge.events(engine.tick(10.0 + CLOSE_SETTLE_S))
    assert engine.handoffs.state_of("H-9") == "reported"
    row = to_outbox(report)
    return engine.snapshot(), [_pending_json(row)], row.event_id


def test_a_report_the_state_moved_past_is_published_after_a_restart(
    mosquitto: Broker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto)
    with config.open("a") as f:
        f.write('[custody]\ndoor_zones = ["door-9"]\n')
    snapshot, pending, event_id = reported_state()
    # The state as a kill -9 right after the save leaves it: the session reported, its report
    # not in the outbox.
    (tmp_path / "state").mkdir()
    with StateStore(tmp_path / "state" / STATE_FILE_NAME, SystemClock()) as store:
        store.put_many(CUSTODY_NAMESPACE, {CUSTODY_KEY: snapshot, CUSTODY_PENDING_KEY: pending})

    def published() -> list[dict[str, object]]:
        out = []
        for seen in p.since(0):
            if seen.topic.startswith(f"tagrelay/v1/{GATEWAY}/events/"):
                value = json.loads(seen.payload)
                out += [e for e in (value if isinstance(value, list) else [value])]
        return [e for e in out if e.get("event_id") == event_id]

    with platform(mosquitto) as p:
        with run_daemon(tmp_path, config) as proc:
            p.wait(lambda: len(published()) == 1, 60.0)
            (event,) = published()
            assert event["kind"] == "handoff.report"
            assert event["session_id"] == "H-9"
            assert event["missing"] == ["A"]
            proc.terminate()
            proc.wait(20)
        # Started again: the saved events are given again and the outbox knows them already.
        mark = p.mark()
        with run_daemon(tmp_path, config):
            p.wait_online(mark)
            p.ping()  # a round trip: anything queued at start has gone out before the answer
        assert len(published()) == 1
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log
    assert "saved custody event(s) given to the outbox again" in log
