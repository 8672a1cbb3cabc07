"""The early-warning bench (``python -m bench.warnings``): the figures docs/conditions.md cites
come from it, and its last line is the JSON summary with ``checks``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_warning_bench_measures_the_lead_and_counts_false_warnings() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.warnings", "--hours", "50"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=100,
    )
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    lead = summary["lead"]
    # The cross-dock pallet crosses 8 °C at 780 s; the warning is the 5 min ahead at
    # every reading phase (a deterministic curve: these are the figures the doc cites).
    assert lead["crossing_s"] == 780.0
    assert lead["phases_without_warning"] == 0
    assert 300.0 <= lead["lead_s_min"] <= lead["lead_s_phase0"] <= lead["lead_s_max"] < 480.0
    assert summary["checks"]["lead_at_least_5_min"]["ok"] is True
    assert (summary["min_slope_z"], summary["min_r2"], summary["noise_points"]) == (5.0, 0.5, 120)
    # The pallet's curve with noise added: every run measured, and a learned noise (an hour
    # of readings before) never gives a shorter median lead than a fresh series.
    noisy = {(f["history_s"], f["sigma_c"]): f for f in summary["noisy_pallet"]}
    assert set(noisy) == {(h, s) for h in (0.0, 3600.0) for s in (0.1, 0.2, 0.3)}
    for (history, sigma), f in noisy.items():
        assert f["runs"] == 200
        if history:
            assert f["lead_s_median"] >= noisy[(0.0, sigma)]["lead_s_median"]
    fresh = summary["fresh"]
    assert [f["fresh_hours"] for f in fresh] == [50, 50]
    for f in fresh:
        assert sum(f["by_level_c"].values()) == f["hours_with_a_warning"]
    uniform, gaussian = summary["noise"]
    assert (uniform["hours"], gaussian["hours"]) == (50, 50)
    for f in (uniform, gaussian):
        assert sum(f["by_level_c"].values()) == f["false_warnings"]
        assert f["hours_with_a_warning"] <= f["false_warnings"]
        assert f["share_of_hours_clean"] == round(1 - f["hours_with_a_warning"] / 50, 4)
    # Uniform ±0.3 °C around 3..7 °C never leaves 2..8 °C: no excursion, only warnings.
    assert uniform["excursions"] == 0
    assert summary["checks"]["no_false_warning_in_any_hour"]["ok"] == (
        sum(f["hours_with_a_warning"] for f in (uniform, gaussian, *fresh)) == 0
    )
