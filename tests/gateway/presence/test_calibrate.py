"""Calibration: levels suggested from a tag stood at the zone's edge (the simulator's radio)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.presence import (
    CalibrationError,
    PresenceConfig,
    PresenceTracker,
    Sighting,
    ZoneConfig,
    suggest_thresholds,
)
from simulator.world.radio import mean_rssi_dbm, seeded_gauss


def _samples(seed: int, distance_m: float, count: int = 60, sigma: float = 4.0) -> list[int]:
    """What a door gateway hears from a tag ``distance_m`` away, as the simulator draws it."""
    mean = mean_rssi_dbm(-59.0, distance_m, 2.2)
    return [round(mean + seeded_gauss(seed, "rssi", "edge", k, sigma=sigma)) for k in range(count)]


@pytest.mark.parametrize("seed", range(8))
def test_the_suggestion_puts_the_boundary_at_the_edge(seed: int) -> None:
    edge = _samples(seed, 4.0)
    s = suggest_thresholds(edge)
    mean = mean_rssi_dbm(-59.0, 4.0, 2.2)
    assert abs(s.enter_rssi_dbm - mean) <= 2.0
    assert s.enter_rssi_dbm - s.exit_rssi_dbm >= 6.0
    assert 2.0 <= s.edge_sigma_db <= 6.5
    assert s.warnings == ()
    # Used as a zone's levels: a tag 1.5 m inside the edge enters, one 3 m outside never does.
    zone = s.apply(ZoneConfig())
    tracker = PresenceTracker(PresenceConfig(defaults=zone))
    for tag, d in (("inside", 2.5), ("outside", 7.0)):
        for k, rssi in enumerate(_samples(seed + 1000, d, count=300)):
            tracker.observe(Sighting(tag, "hci0", "door-3", rssi, float(k)))
    assert tracker.state("inside", "door-3") == "present"
    assert tracker.state("outside", "door-3") == "absent"


def test_a_neighbour_too_close_raises_the_enter_level_and_says_so() -> None:
    # The edge marked 8 m out, the neighbour's nearest spot 8.2 m away: indistinguishable.
    s = suggest_thresholds(_samples(1, 8.0), neighbour_samples=_samples(2, 8.2))
    assert s.neighbour_median_dbm is not None
    assert s.enter_rssi_dbm >= s.neighbour_median_dbm + 3.0
    assert any("neighbour" in w for w in s.warnings)
    far = suggest_thresholds(_samples(1, 3.0), neighbour_samples=_samples(2, 8.2))
    assert not any("enter raised" in w for w in far.warnings)
    assert far.enter_rssi_dbm == round(far.edge_median_dbm)
    # Its exit level is under the neighbour's: a tag carried there is held a while; said so.
    assert far.neighbour_median_dbm is not None
    assert far.exit_rssi_dbm <= far.neighbour_median_dbm
    assert any("stay present here" in w for w in far.warnings)
    near = suggest_thresholds(_samples(1, 1.5), neighbour_samples=_samples(2, 8.2))
    assert near.warnings == ()


def test_short_or_noisy_or_far_measurements_are_flagged() -> None:
    assert any("samples" in w for w in suggest_thresholds(_samples(3, 4.0, count=20)).warnings)
    noisy = suggest_thresholds(_samples(3, 4.0, sigma=12.0))
    assert any("scatters" in w for w in noisy.warnings)
    far = suggest_thresholds(_samples(3, 40.0))
    assert any("receiver floor" in w for w in far.warnings)


@pytest.mark.parametrize(
    "samples", [[], [-70] * 5, [-70] * 20 + [-300], [-70] * 20 + [30], [-70.5] * 20]
)
def test_unusable_samples_are_a_typed_error(samples: list[int]) -> None:
    with pytest.raises(CalibrationError) as err:
        suggest_thresholds(samples)
    assert err.value.reason


@given(st.lists(st.integers(-127, 20), min_size=10, max_size=200))
def test_any_rssi_samples_give_valid_zone_levels_or_a_typed_error(samples: list[int]) -> None:
    error: CalibrationError | None = None
    try:
        s = suggest_thresholds(samples)
    except CalibrationError as exc:
        error = exc
    if error is not None:  # only when there is no room for an exit level under the edge
        assert "no room for an exit level" in error.reason
        return
    zone = s.apply(ZoneConfig())
    assert zone.exit_rssi_dbm < zone.enter_rssi_dbm


def test_presence_is_pure() -> None:
    """No I/O, no asyncio, no clock, no outbox / uplink / drivers in gateway.presence."""
    allowed = {"pydantic", "protocols", "gateway"}
    forbidden = {"time", "asyncio", "socket", "sqlite3", "os", "io", "threading", "datetime"}
    root = Path(__file__).resolve().parents[3] / "gateway" / "presence"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in forbidden, (path.name, name)
                assert top in allowed or top in sys.stdlib_module_names, (path.name, name)
                if top == "gateway":
                    assert name.startswith(("gateway.presence", "gateway.events")), (
                        path.name,
                        name,
                    )
