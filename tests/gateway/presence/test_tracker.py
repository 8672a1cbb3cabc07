"""The presence rules one by one, on hand-made RSSI sequences and a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.presence import (
    PresenceChange,
    PresenceConfig,
    PresenceTracker,
    Sighting,
    ZoneConfig,
)
from gateway.presence.tracker import INTERVAL_BLOCK_GAPS, MIN_DECISION_SAMPLES

TAG = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:1"
ZONE = "door-3"
ENTER = ZoneConfig().enter_rssi_dbm
EXIT = ZoneConfig().exit_rssi_dbm


class Feed:
    """A fake clock and a tracker: adverts every ``interval`` seconds, ticks on demand."""

    def __init__(self, config: PresenceConfig | None = None, interval: float = 1.0) -> None:
        self.tracker = PresenceTracker(config or PresenceConfig())
        self.t = 0.0
        self.interval = interval
        self.changes: list[PresenceChange] = []

    def advert(
        self, rssi: int, *, tag: str = TAG, zone: str = ZONE, scanner: str = "hci0"
    ) -> PresenceChange | None:
        change = self.tracker.observe(Sighting(tag, scanner, zone, rssi, self.t))
        if change is not None:
            self.changes.append(change)
        self.t += self.interval
        return change

    def adverts(self, rssi: int, count: int, **kw: str) -> list[PresenceChange]:
        out = [self.advert(rssi, **kw) for _ in range(count)]
        return [c for c in out if c is not None]

    def tick(self, at: float) -> list[PresenceChange]:
        changes = self.tracker.tick(at)
        self.changes.extend(changes)
        return changes

    def enter(self, rssi: int = -60) -> PresenceChange:
        changes = self.adverts(rssi, MIN_DECISION_SAMPLES + ZoneConfig().enter_sightings)
        assert [c.kind for c in changes] == ["enter"]
        return changes[0]


# --- enter -----------------------------------------------------------------------------------


def test_enter_needs_enough_sightings_above_the_level() -> None:
    f = Feed()
    need = ZoneConfig().enter_sightings
    # The first MIN_DECISION_SAMPLES - 1 adverts only fill the window; then ``need`` in a row.
    for _ in range(MIN_DECISION_SAMPLES - 1 + need - 1):
        assert f.advert(-60) is None
        assert f.tracker.state(TAG, ZONE) == "absent"
    change = f.advert(-60)
    assert change is not None
    assert change.kind == "enter"
    assert change.reason == "rssi"
    assert f.tracker.state(TAG, ZONE) == "present"
    assert change.sightings == need
    assert change.first_seen == pytest.approx(MIN_DECISION_SAMPLES - 1)
    assert change.last_seen == change.decided_at == pytest.approx(f.t - 1)
    assert change.dwell_s == pytest.approx(need - 1)
    assert change.rssi_max_dbm == -60
    assert change.rssi_mean_dbm == -60
    assert f.tracker.stats.enters == 1


def test_a_weak_tag_never_enters() -> None:
    f = Feed()
    assert f.adverts(int(ENTER) - 1, 500) == []
    assert f.tracker.state(TAG, ZONE) == "absent"
    assert f.tracker.smoothed_rssi(TAG, ZONE) == pytest.approx(ENTER - 1)


def test_a_broken_run_starts_again() -> None:
    f = Feed()
    need = ZoneConfig().enter_sightings
    f.adverts(int(ENTER) + 1, MIN_DECISION_SAMPLES - 1 + need - 1)
    # Within the fence and enough to pull the mean of the window below the level once.
    f.adverts(int(ENTER) - 8, 1)
    assert f.tracker.state(TAG, ZONE) == "absent"
    changes = f.adverts(-60, 20)
    assert [c.kind for c in changes] == ["enter"]
    # The visit starts with the run that made it present, not at the first advert.
    assert changes[0].first_seen == MIN_DECISION_SAMPLES - 1 + need  # the advert after the break


# --- exit by RSSI ----------------------------------------------------------------------------


def test_hysteresis_keeps_a_tag_between_the_levels() -> None:
    f = Feed()
    f.enter()
    middle = int((ENTER + EXIT) / 2)
    assert f.adverts(middle, 300) == []
    assert f.tracker.state(TAG, ZONE) == "present"


def test_exit_when_the_smoothed_rssi_stays_below_the_exit_level() -> None:
    f = Feed()
    f.enter(-60)
    changes = f.adverts(-90, 20)
    assert [c.kind for c in changes] == ["exit"]
    exit_ = changes[0]
    assert exit_.reason == "rssi"
    assert exit_.smoothed_rssi_dbm is not None
    assert exit_.smoothed_rssi_dbm < EXIT
    # A 30 dB step lands beyond the fence: the window restarts after three adverts, and
    # two smoothed values below the level decide.
    cfg = ZoneConfig()
    assert exit_.decided_at - 7.0 <= (cfg.fence_restart_sightings + cfg.exit_sightings)
    assert f.tracker.state(TAG, ZONE) == "absent"
    assert f.tracker.stats.exits_rssi == 1


def test_one_deep_fade_is_clipped_by_the_fence() -> None:
    f = Feed()
    f.enter(-70)
    f.adverts(-70, ZoneConfig().window_samples)  # a full window
    before = f.tracker.smoothed_rssi(TAG, ZONE)
    assert before is not None
    f.advert(-110)
    after = f.tracker.smoothed_rssi(TAG, ZONE)
    assert after is not None
    cfg = ZoneConfig()
    assert before - after == pytest.approx(cfg.fence_db / cfg.window_samples)
    # Two fades in a row are still not a departure.
    f.advert(-110)
    assert f.adverts(-70, 30) == []
    assert f.tracker.state(TAG, ZONE) == "present"


def test_a_real_move_restarts_the_window_at_the_new_level() -> None:
    f = Feed()
    f.adverts(-90, 30)
    assert f.tracker.smoothed_rssi(TAG, ZONE) == pytest.approx(-90)
    n = ZoneConfig().fence_restart_sightings
    f.adverts(-60, n)
    assert f.tracker.smoothed_rssi(TAG, ZONE) == pytest.approx(-60)


# --- exit by timeout -------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0])
def test_timeout_follows_the_learned_interval_within_floor_and_ceiling(interval: float) -> None:
    f = Feed(interval=interval)
    f.enter()
    f.adverts(-60, INTERVAL_BLOCK_GAPS)
    cfg = ZoneConfig()
    learned = f.tracker.interval(TAG, ZONE)
    assert learned == pytest.approx(interval)
    last = f.t - interval
    timeout = min(cfg.timeout_ceiling_s, max(cfg.timeout_floor_s, 3 * interval))
    assert f.tick(last + timeout - 0.01) == []
    assert f.tracker.state(TAG, ZONE) == "present"
    [exit_] = f.tick(last + timeout)
    assert exit_.kind == "exit"
    assert exit_.reason == "timeout"
    assert exit_.last_seen == pytest.approx(last)
    assert exit_.smoothed_rssi_dbm is None
    assert exit_.interval_s == pytest.approx(interval)
    assert f.tracker.state(TAG, ZONE) == "absent"


@pytest.mark.parametrize("interval", [0.1, 0.3, 1.0, 2.0, 5.0, 10.0])
def test_exit_within_three_intervals_plus_five_seconds_of_leaving(interval: float) -> None:
    """Ticks once a second; the tag leaves at a random moment between two adverts."""
    for phase in (0.0, 0.37, 0.99):
        f = Feed(interval=interval)
        f.t = phase
        f.adverts(-60, 40)
        left = f.t - interval + 0.5 * interval  # after its last advert, before the next
        decided = None
        tick = math.ceil(f.t)
        while decided is None:
            changes = f.tick(tick)
            decided = tick if changes else None
            tick += 1
        assert decided - left <= 3 * interval + 5.0


def test_a_missed_advert_does_not_stretch_the_interval() -> None:
    f = Feed()
    for k in range(40):
        f.t = float(k if k % 5 else k + 0.0)
        if k % 5 == 3:
            continue  # every fifth advert lost
        f.tracker.observe(Sighting(TAG, "hci0", ZONE, -60, float(k)))
    assert f.tracker.interval(TAG, ZONE) == pytest.approx(1.0)


def test_a_slower_interval_is_learned_within_a_block() -> None:
    f = Feed(interval=1.0)
    f.adverts(-60, 20)
    f.interval = 5.0
    f.adverts(-60, 2 * INTERVAL_BLOCK_GAPS)
    assert f.tracker.interval(TAG, ZONE) == pytest.approx(5.0)


def test_duplicates_and_other_scanners_say_nothing_about_the_interval() -> None:
    tr = PresenceTracker(PresenceConfig())
    for k in range(30):
        tr.observe(Sighting(TAG, "hci0", ZONE, -60, float(k)))
        tr.observe(Sighting(TAG, "hci0", ZONE, -60, k + 0.001))  # a duplicate report
        tr.observe(Sighting(TAG, "hci1", ZONE, -60, k + 0.3))  # a second adapter
    assert tr.interval(TAG, ZONE) is None  # every same-scanner gap was a duplicate


# --- scanners ----------------------------------------------------------------------------------


def test_a_down_scanner_makes_its_tags_unknown_and_holds_them() -> None:
    f = Feed()
    f.enter()
    f.tracker.scanner_down("hci0", f.t)
    assert f.tracker.state(TAG, ZONE) == "unknown"
    assert f.tracker.smoothed_rssi(TAG, ZONE) is None
    for k in range(600):
        assert f.tick(f.t + k) == []
    assert f.tracker.state(TAG, ZONE) == "unknown"
    assert f.tracker.stats.present == 1


def test_after_a_restart_tags_get_a_grace_period_then_time_out() -> None:
    f = Feed()
    f.enter()
    down = f.t
    f.tracker.scanner_down("hci0", down)
    up = down + 30.0
    f.tracker.scanner_up("hci0", up)
    grace = ZoneConfig().restart_grace_s
    assert f.tracker.state(TAG, ZONE) == "unknown"  # not heard since the restart
    for k in range(int(grace)):
        assert f.tick(up + k) == []
    [exit_] = f.tick(up + grace)
    assert exit_.reason == "timeout"


def test_a_tag_heard_again_after_a_restart_is_present_without_a_blip() -> None:
    f = Feed()
    f.enter()
    f.tracker.scanner_down("hci0", f.t)
    f.t += 20.0
    f.tracker.scanner_up("hci0", f.t)
    f.t += 1.5
    assert f.adverts(-60, 30) == []
    assert f.tracker.state(TAG, ZONE) == "present"
    assert [c.kind for c in f.changes] == ["enter"]


def test_a_sighting_from_a_down_scanner_means_it_is_up_again() -> None:
    f = Feed()
    f.enter()
    f.tracker.scanner_down("hci0", f.t)
    f.advert(-60)
    assert f.tracker.state(TAG, ZONE) == "present"
    assert f.tracker.stats.implicit_up == 1


def test_zone_state_is_unknown_while_its_only_scanner_is_down() -> None:
    f = Feed()
    assert f.tracker.state(TAG, ZONE) == "unknown"  # nothing heard from the zone yet
    f.adverts(-95, 3, tag="other")
    f.t += ZoneConfig().restart_grace_s
    f.tracker.tick(f.t)
    assert f.tracker.state(TAG, ZONE) == "absent"
    f.tracker.scanner_down("hci0", f.t)
    assert f.tracker.state(TAG, ZONE) == "unknown"
    f.tracker.scanner_up("hci0", f.t + 1)
    assert f.tracker.state(TAG, ZONE) == "unknown"  # in its grace period
    f.tracker.tick(f.t + 1 + ZoneConfig().restart_grace_s)
    assert f.tracker.state(TAG, ZONE) == "absent"


# --- stale RSSI ------------------------------------------------------------------------------


def test_a_stale_rssi_is_never_returned_or_mixed_in() -> None:
    f = Feed()
    f.adverts(-60, 10)
    assert f.tracker.smoothed_rssi(TAG, ZONE) == pytest.approx(-60)
    f.tracker.tick(f.t + ZoneConfig().timeout_floor_s + 1)
    assert f.tracker.smoothed_rssi(TAG, ZONE) is None
    f.t += 100.0
    f.advert(-85)
    # The window restarted: the new value is not averaged with the old ones.
    assert f.tracker.smoothed_rssi(TAG, ZONE) == pytest.approx(-85)


def test_out_of_order_sightings_are_ignored_and_counted() -> None:
    tr = PresenceTracker(PresenceConfig())
    tr.observe(Sighting(TAG, "hci0", ZONE, -60, 10.0))
    assert tr.observe(Sighting(TAG, "hci0", ZONE, -99, 9.0)) is None
    assert tr.stats.out_of_order == 1
    assert tr.smoothed_rssi(TAG, ZONE) == pytest.approx(-60)


# --- the table ---------------------------------------------------------------------------------


def test_the_cap_evicts_the_least_recently_heard_and_counts_it() -> None:
    tr = PresenceTracker(PresenceConfig(max_tags=3))
    for k, tag in enumerate(["a", "b", "c"]):
        tr.observe(Sighting(tag, "hci0", ZONE, -90, float(k)))
    tr.observe(Sighting("a", "hci0", ZONE, -90, 3.0))  # a is now the most recent
    tr.observe(Sighting("d", "hci0", ZONE, -90, 4.0))
    assert tr.stats.tracked == 3
    assert tr.stats.evicted == 1
    assert tr.smoothed_rssi("b", ZONE) is None  # b was the least recently heard
    assert tr.smoothed_rssi("a", ZONE) is not None
    for k in range(5, 1005):
        tr.observe(Sighting(f"phone-{k}", "hci0", ZONE, -80, float(k)))
    assert tr.stats.tracked == 3
    assert tr.stats.evicted == 1001


def test_evicting_a_present_tag_is_counted_apart() -> None:
    f = Feed(PresenceConfig(max_tags=1))
    f.enter()
    f.advert(-90, tag="other")
    assert f.tracker.stats.evicted_present == 1
    assert f.tracker.stats.present == 0


def test_silent_absent_tags_are_forgotten() -> None:
    f = Feed(PresenceConfig(forget_after_s=30.0))
    f.adverts(-90, 5, tag="weak")
    f.enter()
    f.tracker.scanner_down("hci0", f.t)  # the present one is held, not forgotten
    f.tracker.tick(f.t + 100)
    assert f.tracker.stats.forgotten == 1
    assert f.tracker.stats.tracked == 1
    assert f.tracker.state(TAG, ZONE) == "unknown"


# --- configuration ---------------------------------------------------------------------------


def test_zones_inherit_defaults_and_override_what_they_name() -> None:
    cfg = PresenceConfig.model_validate(
        {
            "defaults": {"enter_rssi_dbm": -70, "exit_rssi_dbm": -80, "timeout_floor_s": 6},
            "zones": {"cargo": {"enter_rssi_dbm": -88, "exit_rssi_dbm": -94}},
        }
    )
    assert cfg.zone("cargo").enter_rssi_dbm == -88
    assert cfg.zone("cargo").timeout_floor_s == 6
    assert cfg.zone("door-3").enter_rssi_dbm == -70
    f = Feed(cfg)
    f.adverts(-85, 20, zone="cargo")
    f.adverts(-85, 20, zone="door-3")
    assert f.tracker.state(TAG, "cargo") == "present"
    assert f.tracker.state(TAG, "door-3") == "absent"


@pytest.mark.parametrize(
    "zone",
    [
        {"enter_rssi_dbm": -80, "exit_rssi_dbm": -80},
        {"timeout_floor_s": 10, "timeout_ceiling_s": 5},
        {"window_samples": 2},
        {"enter_sightings": 0},
        {"fence_db": math.nan},
        {"enter_rsi_dbm": -70},
    ],
)
def test_bad_zone_settings_are_refused(zone: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        PresenceConfig.model_validate({"zones": {"door-3": zone}})


def test_config_is_frozen() -> None:
    cfg = PresenceConfig()
    with pytest.raises(ValidationError):
        cfg.max_tags = 5


# --- invariants under any input ----------------------------------------------------------------

_sightings = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2", "t3"]),
        st.sampled_from(["hci0", "hci1"]),
        st.sampled_from(["door-3", "cargo"]),
        st.integers(-127, 20),
        st.floats(0.0, 30.0),
        st.sampled_from(["observe", "observe", "observe", "tick", "down", "up"]),
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(_sightings)
def test_enters_and_exits_alternate_and_counters_agree(ops: list[tuple[object, ...]]) -> None:
    tr = PresenceTracker(PresenceConfig(max_tags=4))
    now = 0.0
    last: dict[tuple[str, str], str] = {}
    for tag, scanner, zone, rssi, dt, op in ops:
        assert isinstance(tag, str)
        assert isinstance(scanner, str)
        assert isinstance(zone, str)
        assert isinstance(rssi, int)
        assert isinstance(dt, float)
        now += dt / 10
        changes: list[PresenceChange] = []
        if op == "observe":
            c = tr.observe(Sighting(tag, scanner, zone, rssi, now))
            changes = [] if c is None else [c]
        elif op == "tick":
            changes = tr.tick(now)
        elif op == "down":
            tr.scanner_down(scanner, now)
        else:
            tr.scanner_up(scanner, now)
        for c in changes:
            key = (c.tag, c.zone)
            if tr.stats.evicted_present == 0:
                assert last.get(key, "exit") != c.kind
            last[key] = c.kind
            assert c.first_seen <= c.last_seen <= c.decided_at
            assert c.sightings >= 1
            assert c.rssi_max_dbm >= c.rssi_mean_dbm
        s = tr.stats
        assert s.present == s.enters - s.exits - s.evicted_present
        assert s.tracked <= 4
        assert tr.state(tag, zone) in ("present", "absent", "unknown")
