"""snapshot() / restore(): a restart continues open excursions, totals and assignments."""

from __future__ import annotations

import json

import pytest
from pydantic import JsonValue

from gateway.conditions import (
    CloseReason,
    ConditionMonitor,
    ExcursionPhase,
    ShockResult,
    WarningPhase,
)
from tests.gateway.conditions.helpers import (
    INSTANT,
    TEMP,
    at,
    cumulative,
    excursions,
    feed,
    high_limit,
    monitor_for,
    profile,
    secs,
    warnings,
)

OPEN, UPDATE, CLOSE = ExcursionPhase.OPEN, ExcursionPhase.UPDATE, ExcursionPhase.CLOSE

PROFILE = profile(high_limit(INSTANT, cumulative(1200)), name="custom")
WARM = [(float(t), 5.0 if t < 600 or t >= 2400 else 9.0) for t in range(0, 3000, 60)]


def _through_json(data: JsonValue) -> JsonValue:
    loaded: JsonValue = json.loads(json.dumps(data, allow_nan=False))
    return loaded


def _by_command() -> ConditionMonitor:
    """The profile and the assignment made by commands, over an empty config."""
    m = ConditionMonitor()
    assert m.define(PROFILE) == []
    assert m.assign("pal", PROFILE.name) == []
    return m


def test_a_restored_monitor_continues_an_excursion_without_a_second_open() -> None:
    whole = _by_command()
    expected = feed(whole, WARM)
    before, after = WARM[:20], WARM[20:]  # the restart at 1200 s, mid-excursion
    first = _by_command()
    got = feed(first, before)
    snapshot = _through_json(first.snapshot())
    # A new process: the same (empty) config and the snapshot.
    second = ConditionMonitor()
    second.restore(snapshot)
    got += feed(second, after)
    opens = excursions(got, OPEN)
    assert [r.result_id for r in opens] == [r.result_id for r in excursions(expected, OPEN)]
    closes = excursions(got, CLOSE)
    assert [(r.excursion_id, r.time_beyond_s, r.mean, r.mkt_c) for r in closes] == [
        (r.excursion_id, r.time_beyond_s, r.mean, r.mkt_c) for r in excursions(expected, CLOSE)
    ]
    assert all(r.close_reason is CloseReason.RETURNED for r in closes)
    assert second.assignments == {"pal": "custom"}
    assert second.profiles["custom"] == PROFILE
    assert second.time_beyond_s("pal", TEMP, "high") == whole.time_beyond_s("pal", TEMP, "high")


def test_a_replay_of_the_same_readings_after_a_restart_gives_the_same_ids() -> None:
    first = monitor_for(PROFILE)
    original = feed(first, WARM)
    # A restart from an empty state that sees the same readings again (say the outbox lost
    # nothing but the state file was older): every result has the same id.
    again = feed(monitor_for(PROFILE), WARM)
    assert [r.result_id for r in again] == [r.result_id for r in original]


def test_readings_from_before_the_restart_are_not_counted_again() -> None:
    m = monitor_for(PROFILE)
    feed(m, WARM[:30])
    restored = monitor_for(PROFILE)  # the same config
    restored.restore(_through_json(m.snapshot()))
    total = restored.time_beyond_s("pal", TEMP, "high")
    assert feed(restored, WARM[10:30]) == []
    assert restored.time_beyond_s("pal", TEMP, "high") == total
    assert restored.counters["too_late"] == 20


def test_a_raised_warning_survives_a_restart_and_is_withdrawn_once() -> None:
    m = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    ramp = [(k * 30.0, 4.0 + 0.125 * k) for k in range(14)]  # up to 5.6 °C
    raised = warnings(feed(m, ramp))
    assert [w.phase for w in raised] == [WarningPhase.RAISED]
    restored = ConditionMonitor(assignments={"pal": "pharma-2-8"})
    restored.restore(_through_json(m.snapshot()))
    cooling = [(420 + k * 30.0, 5.6 - 0.01 * k) for k in range(30)]
    withdrawn = warnings(feed(restored, cooling))
    assert [(w.phase, w.warning_id) for w in withdrawn] == [
        (WarningPhase.WITHDRAWN, raised[0].warning_id)
    ]


def test_a_subject_moved_to_another_profile_since_the_snapshot_starts_afresh() -> None:
    m = monitor_for(PROFILE)
    feed(m, WARM[:20])
    assert m.open_excursions()
    data = _through_json(m.snapshot())
    # The config changed while the gateway was down: the subject is on "frozen" now.
    restored = ConditionMonitor([PROFILE], {"pal": "frozen"})
    restored.restore(data)
    assert restored.open_excursions() == []
    assert restored.profile_of("pal") == restored.profiles["frozen"]
    assert restored.mkt_c("pal") is None


def test_config_changes_apply_after_a_restart_and_commands_lie_over_them() -> None:
    m = ConditionMonitor([PROFILE], {"a": "custom", "b": "custom"})
    m.assign("b", "frozen")
    m.assign("c", "pharma-2-8")
    data = _through_json(m.snapshot())
    assert isinstance(data, dict)
    assert data["assignments"] == {"b": "frozen", "c": "pharma-2-8"}
    assert data["profiles"] == []  # config profiles are the config's, not the snapshot's
    # The new config moves "a" and adds "d"; the command-made assignments still hold.
    restored = ConditionMonitor([PROFILE], {"a": "frozen", "b": "custom", "d": "custom"})
    restored.restore(data)
    assert restored.assignments == {"a": "frozen", "b": "frozen", "c": "pharma-2-8", "d": "custom"}
    # A command assignment to a profile the new config no longer has is dropped and counted.
    m2 = ConditionMonitor([PROFILE])
    m2.assign("x", "custom")
    gone = ConditionMonitor()
    gone.restore(_through_json(m2.snapshot()))
    assert gone.assignments == {}
    assert gone.counters["restore_dropped"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"version": 2},
        {"version": 1, "profiles": [], "assignments": {"a": 5}, "series": [], "shocks": {}},
        {
            "version": 1,
            "profiles": [{"name": "X Y"}],
            "assignments": {},
            "series": [],
            "shocks": {},
        },
        {"version": 1, "profiles": [], "assignments": {}, "series": [{"subject": 3}], "shocks": {}},
    ],
)
def test_a_snapshot_that_does_not_parse_is_refused_and_changes_nothing(bad: JsonValue) -> None:
    m = monitor_for(PROFILE)
    feed(m, WARM[:20])
    before = m.snapshot()
    with pytest.raises(ValueError, match="snapshot"):
        m.restore(bad)
    assert m.snapshot() == before


def test_shock_rate_limit_state_survives_a_restart() -> None:
    m = ConditionMonitor(assignments={"box": "parcel"})
    assert m.observe_shock("box", at(0), (0.0, 0.0, 40.0), 5.0)
    restored = ConditionMonitor(assignments={"box": "parcel"})
    restored.restore(_through_json(m.snapshot()))
    (again,) = restored.observe_shock("box", at(60), (0.0, 0.0, 50.0), 5.0)
    assert isinstance(again, ShockResult)
    assert not again.alarm
    assert secs(at(60)) == 60
