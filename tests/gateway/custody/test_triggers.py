"""Sessions opened by a configured trigger (a vehicle's tag at the door), with a fake clock, and
the trigger's configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import ConfigError, load_config
from gateway.custody import CustodyEngine, TriggerSpec
from gateway.custody.rules import CLOSE_SETTLE_S, DWELL_S, PORTAL_WINDOW_S, VEHICLE_GONE_S
from gateway.custody.rules import VEHICLE_MIN_SIGHTINGS as MIN
from tests.gateway.custody.test_handoff import (
    DOCK_NEAR_DBM,
    DOOR,
    TRAILER_DBM,
    Feed,
    spec,
    unload,
)

TRAILER_TAG = -82  # the trailer's own tag at the door


def engine(pattern: str = "TRL-*", window_s: float = 3600.0) -> CustodyEngine:
    trigger = TriggerSpec(DOOR, pattern, "Northline Freight", "4012345000009", window_s)
    return CustodyEngine(door_zones={DOOR, "door-2"}, triggers=[trigger], trigger_epoch="E1")


def sessions(f: Feed) -> tuple[str, ...]:
    return f.engine.handoffs.session_ids()


def test_a_vehicle_arriving_opens_one_session_and_its_departure_closes_it() -> None:
    f = Feed(engine())
    f.run(MIN - 1, {"TRL-17": TRAILER_TAG})
    assert sessions(f) == ()  # not yet enough evidence of an arrival
    f.run(1, {"TRL-17": TRAILER_TAG})
    (sid,) = sessions(f)
    assert sid == "auto-door-3-E1-1"
    assert f.engine.handoffs.state_of(sid) == "open"
    # It stays for a while: no second session, whatever else is heard.
    f.run(60, {"TRL-17": TRAILER_TAG, "A": TRAILER_DBM, "X": TRAILER_DBM})
    unload(f, "A", DOCK_NEAR_DBM, {"TRL-17": TRAILER_TAG, "X": TRAILER_DBM})
    f.run(PORTAL_WINDOW_S + DWELL_S + 5, {"TRL-17": TRAILER_TAG, "A": DOCK_NEAR_DBM})
    assert sessions(f) == (sid,)
    left = f.t - 1.0
    f.run(VEHICLE_GONE_S + CLOSE_SETTLE_S + 2, {"A": DOCK_NEAR_DBM})
    (report,) = f.reports()
    assert (report.session_id, report.close_reason, report.closed_at_s) == (
        sid,
        "vehicle_departed",
        left,
    )
    assert (report.from_party, report.to_party) == ("Northline Freight", "4012345000009")
    # No manifest: nothing expected, nothing missing; what crossed is reported as seen.
    assert (report.expected, report.confirmed, report.missing) == ((), (), ())
    assert report.unexpected == ("A",)
    assert "TRL-17" not in {e.item for e in report.evidence}
    assert "X" not in report.unexpected  # heard only in the trailer: it did not cross
    assert f.confirmations() == []  # no manifest, no live confirmations
    assert sessions(f) == ()


def test_a_vehicle_that_leaves_and_comes_back_opens_a_new_session() -> None:
    f = Feed(engine())
    f.run(30, {"TRL-17": TRAILER_TAG})
    f.run(VEHICLE_GONE_S + CLOSE_SETTLE_S + 2, {})
    assert [r.session_id for r in f.reports()] == ["auto-door-3-E1-1"]
    f.run(MIN, {"TRL-17": TRAILER_TAG})
    assert sessions(f) == ("auto-door-3-E1-2",)


def test_a_gap_shorter_than_a_departure_is_the_same_arrival() -> None:
    f = Feed(engine())
    f.run(MIN, {"TRL-17": TRAILER_TAG})
    f.run(VEHICLE_GONE_S - 2, {})
    f.run(MIN * 3, {"TRL-17": TRAILER_TAG})
    assert sessions(f) == ("auto-door-3-E1-1",)
    assert f.engine.handoffs.state_of("auto-door-3-E1-1") == "open"


def test_a_passing_vehicle_another_vehicle_or_another_door_opens_nothing() -> None:
    f = Feed(engine())
    for _ in range(5):  # passes by now and then: never MIN adverts without a departure's gap
        f.run(MIN - 1, {"TRL-17": TRAILER_TAG})
        f.run(VEHICLE_GONE_S, {})
    f.run(100, {"VAN-3": TRAILER_TAG})
    f.run(100, {"TRL-18": TRAILER_TAG}, zone="door-2")
    assert sessions(f) == ()


def test_an_open_session_on_the_door_takes_the_arrival_no_duplicate() -> None:
    f = Feed(engine())
    f.engine.open_session(spec("CMD-1", end=5000.0), 0.0)
    f.run(200, {"TRL-17": TRAILER_TAG, "A": TRAILER_DBM})
    assert sessions(f) == ("CMD-1",)
    assert f.engine.triggers.suppressed == 1
    # The command's session closes while the trailer is still there: still the same arrival.
    f.engine.close_session("CMD-1", f.t)
    f.run(CLOSE_SETTLE_S + 30, {"TRL-17": TRAILER_TAG})
    assert sessions(f) == ()
    assert [r.session_id for r in f.reports()] == ["CMD-1"]


def test_a_tag_pattern_matches_the_tag_id_or_the_asset_and_the_window_closes_it() -> None:
    f = Feed(engine("tag-TRL-*", window_s=100.0))
    f.run(MIN, {"TRL-9": TRAILER_TAG})  # Feed sends tag "tag-TRL-9" with asset "TRL-9"
    (sid,) = sessions(f)
    f.run(100, {"TRL-9": TRAILER_TAG})
    assert f.engine.handoffs.state_of(sid) == "closing"
    f.run(CLOSE_SETTLE_S + 1, {"TRL-9": TRAILER_TAG})
    (report,) = f.reports()
    assert report.close_reason == "window_end"
    assert sessions(f) == ()  # the vehicle is still there: the arrival was handled once


def test_a_triggered_session_survives_a_restart_and_is_not_opened_again() -> None:
    f = Feed(engine())
    f.run(30, {"TRL-17": TRAILER_TAG, "A": TRAILER_DBM})
    (sid,) = sessions(f)
    restarted = engine()
    restarted.triggers.epoch = "E2"
    assert restarted.restore(json.loads(json.dumps(f.engine.snapshot())))
    f.engine = restarted
    f.run(60, {"TRL-17": TRAILER_TAG, "A": TRAILER_DBM})
    assert sessions(f) == (sid,)
    f.run(VEHICLE_GONE_S + CLOSE_SETTLE_S + 2, {})
    (report,) = f.reports()
    assert (report.session_id, report.close_reason) == (sid, "vehicle_departed")


def test_the_revision_moves_with_what_a_restart_must_not_forget() -> None:
    f = Feed(CustodyEngine(door_zones={DOOR}))
    r0 = f.engine.revision
    f.engine.open_session(spec(end=5000.0), 0.0)
    r1 = f.engine.revision
    f.run(60, {"A": TRAILER_DBM, "B": TRAILER_DBM})
    assert f.engine.revision == r1 > r0  # sightings alone: the periodic save covers them
    unload(f, "A", DOCK_NEAR_DBM, {"B": TRAILER_DBM})
    f.run(PORTAL_WINDOW_S + DWELL_S + 5, {"A": DOCK_NEAR_DBM, "B": TRAILER_DBM})
    assert len(f.confirmations()) == 1
    r2 = f.engine.revision
    assert r2 > r1
    f.engine.close_session("S1", f.t)
    assert f.engine.revision > r2


def test_a_trigger_on_a_door_the_engine_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="door-9"):
        CustodyEngine(door_zones={DOOR}, triggers=[TriggerSpec("door-9", "TRL-*", "a", "b", 60.0)])


CONFIG = """
gateway_id = "gw-door-03"
state_dir = "state"
[uplink]
host = "localhost"
transport = "tcp"
port = 1883
[[ble.scanners]]
adapter = "hci0"
zone = "door-3"
[[custody.triggers]]
door = "{door}"
vehicle = "TRL-*"
from_party = "Northline Freight"
to_party = "4012345000009"
"""


def test_config_a_trigger_on_an_unknown_door_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tagrelay.toml"
    path.write_text(CONFIG.format(door="door-4"))
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    (issue,) = exc.value.issues
    assert issue.location == "custody.triggers.0.door"
    assert "'door-4'" in issue.message
    assert "door zones: door-3" in issue.message
    assert main(["config", "check", str(path)]) == 1
    assert "custody.triggers.0.door" in capsys.readouterr().err


def test_config_a_valid_trigger_loads_and_check_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tagrelay.toml"
    path.write_text(CONFIG.format(door="door-3"))
    (trigger,) = load_config(path, environ={}).custody.triggers
    assert (trigger.door, trigger.vehicle, trigger.window_s) == ("door-3", "TRL-*", 14_400.0)
    main(["config", "check", str(path)])
    assert "TRL-* at door-3" in capsys.readouterr().out
    path.write_text(CONFIG.format(door="door-3") + "window_s = 0\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    assert {i.location for i in exc.value.issues} == {"custody.triggers.0.window_s"}


def test_a_receiver_outage_at_the_door_is_no_departure() -> None:
    f = Feed(engine())
    f.engine.receiver(DOOR, "hci0", True, 0.0)
    f.run(30, {"TRL-17": TRAILER_TAG})
    (sid,) = sessions(f)
    # The door's scanner is down (bluetoothd restarted) for longer than a departure's silence.
    f.engine.receiver(DOOR, "hci0", False, f.t)
    f.run(VEHICLE_GONE_S * 2, {})
    assert f.engine.handoffs.state_of(sid) == "open"
    # Back: the silence counts from then on, and the vehicle is heard again.
    f.engine.receiver(DOOR, "hci0", True, f.t)
    f.run(VEHICLE_GONE_S - 2, {})
    f.run(60, {"TRL-17": TRAILER_TAG})
    assert f.engine.handoffs.state_of(sid) == "open"
    assert sessions(f) == (sid,)
    # A real departure still closes it, at the vehicle's last advert.
    left = f.t - 1.0
    f.run(VEHICLE_GONE_S + 1, {})
    assert f.engine.handoffs.state_of(sid) == "closing"
    f.run(CLOSE_SETTLE_S, {})
    (report,) = f.reports()
    assert (report.close_reason, report.closed_at_s) == ("vehicle_departed", left)


def test_after_a_restart_the_time_the_daemon_was_down_is_no_departure() -> None:
    f = Feed(engine())
    f.run(30, {"TRL-17": TRAILER_TAG})
    (sid,) = sessions(f)
    restarted = engine()
    assert restarted.restore(json.loads(json.dumps(f.engine.snapshot())))
    f.engine = restarted
    f.t += 120.0  # down for two minutes; the pipeline reports its scanner as it starts
    f.engine.receiver(DOOR, "hci0", True, f.t)
    f.run(5, {})
    f.run(60, {"TRL-17": TRAILER_TAG})
    assert f.engine.handoffs.state_of(sid) == "open"
