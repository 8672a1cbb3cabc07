"""Telemetry rate limiting with a fake clock: first reading, deadbands, min / max interval."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from gateway.pipeline.config import TelemetryConfig
from gateway.pipeline.telemetry import TelemetryLimiter, distance_m

CFG = TelemetryConfig(min_interval_s=10, max_interval_s=60, temperature_c=0.3)


def test_first_reading_goes_out_then_unchanged_ones_wait_for_the_max_interval() -> None:
    lim = TelemetryLimiter(CFG)
    assert lim.offer("t", {"temperature_c": 5.0}, 0.0)
    assert not lim.offer("t", {"temperature_c": 5.0}, 30.0)
    assert not lim.offer("t", {"temperature_c": 5.2}, 59.9)  # inside the deadband
    assert lim.offer("t", {"temperature_c": 5.2}, 60.0)  # heartbeat of the value
    assert (lim.sent, lim.suppressed) == (2, 2)


def test_a_change_beyond_the_deadband_waits_only_for_the_min_interval() -> None:
    lim = TelemetryLimiter(CFG)
    assert lim.offer("t", {"temperature_c": 5.0}, 0.0)
    assert not lim.offer("t", {"temperature_c": 9.0}, 5.0)  # too soon
    assert lim.offer("t", {"temperature_c": 9.0}, 10.0)
    # The deadband is against what was last SENT, so a slow drift is sent once it adds up.
    assert not lim.offer("t", {"temperature_c": 9.2}, 25.0)
    assert lim.offer("t", {"temperature_c": 9.4}, 30.0)


def test_sources_are_independent_and_new_quantities_count_as_a_change() -> None:
    lim = TelemetryLimiter(CFG)
    assert lim.offer("a", {"temperature_c": 5.0}, 0.0)
    assert lim.offer("b", {"temperature_c": 5.0}, 0.0)
    assert lim.offer("a", {"temperature_c": 5.0, "humidity_pct": 50.0}, 10.0)


def test_a_tag_at_10_hz_with_noisy_stable_readings_gives_at_most_60_events_an_hour() -> None:
    lim = TelemetryLimiter(TelemetryConfig())
    rng = random.Random(7)
    sent = 0
    for i in range(36_000):  # one hour at 10 Hz
        values = {"temperature_c": 4.0 + rng.gauss(0, 0.05), "humidity_pct": 60 + rng.gauss(0, 0.3)}
        sent += lim.offer("tag", values, i / 10)
    assert 55 <= sent <= 60


def test_positions_use_a_distance_deadband() -> None:
    lim = TelemetryLimiter(TelemetryConfig(min_interval_s=1, max_interval_s=60, position_m=25))
    assert lim.offer_position("gw", 51.0, 6.0, 0.0)
    assert not lim.offer_position("gw", 51.0001, 6.0, 5.0)  # 11 m
    assert lim.offer_position("gw", 51.001, 6.0, 6.0)  # 111 m
    assert 111 < distance_m(51.0, 6.0, 51.001, 6.0) < 112


def test_the_source_table_is_capped() -> None:
    lim = TelemetryLimiter(CFG, max_sources=100)
    for i in range(1_000):
        lim.offer(f"t{i}", {"temperature_c": 1.0}, 0.0)
    assert len(lim) == 100
    assert lim.forgotten == 900


@given(st.lists(st.tuples(st.floats(-40, 80), st.floats(0, 5)), min_size=1, max_size=200))
def test_never_two_sends_closer_than_the_min_interval(steps: list[tuple[float, float]]) -> None:
    lim = TelemetryLimiter(CFG)
    now = 0.0
    last_sent: float | None = None
    for value, dt in steps:
        now += dt
        if lim.offer("t", {"temperature_c": value}, now):
            assert last_sent is None or now - last_sent >= CFG.min_interval_s
            last_sent = now
