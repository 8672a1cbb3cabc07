"""Early warning: how early it fires on a warming load, how often it fires on a stable one.

Both through :class:`~gateway.conditions.ConditionMonitor` on the ``pharma-2-8`` preset with
its default warning settings (the code the daemon runs), 30 s readings, fixed seeds:

- **Lead**: the cross-dock scenario's cold pallet, its temperature read from the simulator's
  world (``World.sensor_value``) every 30 s, at 30 reading phases (first reading at 0..29 s);
  the lead is the truth's crossing of 8 °C minus the time of the ``raised`` warning.
- **False warnings**: ``--hours`` hours of stable readings, shared equally among the levels
  3, 4, 5, 6 and 7 °C, each level one continuous series per noise kind: uniform ±0.3 °C and
  Gaussian σ = 0.3 °C (``--edge`` adds 2.5 and 7.5 °C, noise reaching within 0.2 °C of a
  limit). Every ``raised`` warning is false (the readings never leave 2..8 °C on purpose; an
  excursion from noise would be counted separately). An hour is a clock hour of a series.

Last line: one JSON object with the figures and ``checks`` (the issue's goals: at least
5 minutes of lead at every phase; no false warning in any hour measured).
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime
from typing import Final

from gateway.conditions import (
    PRESETS,
    ConditionMonitor,
    ExcursionResult,
    Profile,
    Quantity,
    WarningPhase,
    WarningResult,
    WarningSettings,
)
from simulator.world import World, load_scenario

START_S: Final = datetime(2026, 3, 2, 6, 0, tzinfo=UTC).timestamp()
PERIOD_S: Final = 30
PROFILE: Final = "pharma-2-8"
#: The issue's goal: a warning at least 5 minutes ahead on the cross-dock pallet.
TARGET_LEAD_S: Final = 300.0
LEVELS_C: Final = (3.0, 4.0, 5.0, 6.0, 7.0)
EDGE_LEVELS_C: Final = (2.5, 7.5)
NOISE_C: Final = 0.3
SEED: Final = 20261202


def bench_profile(window_points: int | None, min_r2: float | None) -> Profile:
    """``pharma-2-8``, with the warning window or R² threshold changed when given."""
    preset = PRESETS[PROFILE]
    if window_points is None and min_r2 is None:
        return preset
    assert preset.warning is not None
    changes: dict[str, object] = {}
    if window_points is not None:
        changes["window_points"] = window_points
    if min_r2 is not None:
        changes["min_r2"] = min_r2
    warning = WarningSettings.model_validate({**preset.warning.model_dump(), **changes})
    return preset.model_copy(update={"name": f"{PROFILE}-bench", "warning": warning})


def _monitor(profile: Profile, subject: str) -> ConditionMonitor:
    return ConditionMonitor([profile], {subject: profile.name})


def pallet_leads(profile: Profile) -> dict[str, object]:
    """Warning lead on the cross-dock pallet for each reading phase, seconds."""
    scenario = load_scenario("cross-dock")
    (truth,) = scenario.ground_truth.excursions
    world = World(scenario)
    leads: list[float] = []
    for phase in range(PERIOD_S):
        monitor = _monitor(profile, "pallet")
        raised: float | None = None
        t = float(phase)
        while t < truth.start_s and raised is None:
            value = world.sensor_value(truth.item, "temperature_c", t)
            for r in monitor.observe_s("pallet", Quantity.TEMPERATURE_C, value, START_S + t):
                if isinstance(r, WarningResult) and r.phase is WarningPhase.RAISED:
                    raised = t
            t += PERIOD_S
        leads.append(-1.0 if raised is None else truth.start_s - raised)
    return {
        "crossing_s": truth.start_s,
        "lead_s_min": min(leads),
        "lead_s_max": max(leads),
        "lead_s_phase0": leads[0],
        "phases_without_warning": sum(1 for lead in leads if lead < 0),
    }


def _stable_series(
    profile: Profile, level: float, hours: int, gaussian: bool, seed: int
) -> tuple[int, int, int]:
    """(raised warnings, hours with at least one, excursion results) over ``hours`` hours."""
    rnd = random.Random(seed)
    monitor = _monitor(profile, "s")
    warned_hours: set[int] = set()
    warnings = excursions = 0
    for k in range(hours * 3600 // PERIOD_S):
        noise = rnd.gauss(0.0, NOISE_C) if gaussian else rnd.uniform(-NOISE_C, NOISE_C)
        value = round(level + noise, 2)
        t = k * PERIOD_S
        for r in monitor.observe_s("s", Quantity.TEMPERATURE_C, value, START_S + t):
            if isinstance(r, WarningResult) and r.phase is WarningPhase.RAISED:
                warnings += 1
                warned_hours.add(t // 3600)
            elif isinstance(r, ExcursionResult):
                excursions += 1
    return warnings, len(warned_hours), excursions


def false_warnings(
    profile: Profile, hours: int, levels: tuple[float, ...], gaussian: bool
) -> dict[str, object]:
    per_level = max(1, hours // len(levels))
    by_level: dict[str, int] = {}
    total = warned = excursions = 0
    for i, level in enumerate(levels):
        w, h, e = _stable_series(
            profile, level, per_level, gaussian, SEED + 1000 * i + int(gaussian)
        )
        by_level[f"{level:g}"] = w
        total += w
        warned += h
        excursions += e
    measured = per_level * len(levels)
    return {
        "noise": f"gauss sigma {NOISE_C}" if gaussian else f"uniform +-{NOISE_C}",
        "hours": measured,
        "false_warnings": total,
        "hours_with_a_warning": warned,
        "share_of_hours_clean": round(1 - warned / measured, 4),
        "by_level_c": by_level,
        "excursions": excursions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=int, default=1000, help="stable hours per noise kind")
    parser.add_argument(
        "--edge", action="store_true", help="also 2.5 and 7.5 °C (within 0.2 °C of a limit)"
    )
    parser.add_argument("--window-points", type=int, help="the warning fit's window (default 12)")
    parser.add_argument("--min-r2", type=float, help="the warning fit's R² threshold (default 0.8)")
    args = parser.parse_args()
    profile = bench_profile(args.window_points, args.min_r2)
    assert profile.warning is not None
    print(
        f"warning settings: window_points {profile.warning.window_points}, "
        f"min_r2 {profile.warning.min_r2:g}"
    )
    lead = pallet_leads(profile)
    print(
        f"cross-dock pallet, 30 s readings: warning {lead['lead_s_min']:.0f} to "
        f"{lead['lead_s_max']:.0f} s before the crossing at {lead['crossing_s']:.0f} s "
        f"(phase 0: {lead['lead_s_phase0']:.0f} s)"
    )
    levels = LEVELS_C + EDGE_LEVELS_C if args.edge else LEVELS_C
    noise = [false_warnings(profile, args.hours, levels, gaussian) for gaussian in (False, True)]
    for f in noise:
        print(
            f"{f['noise']:>18}: {f['false_warnings']} false warnings in {f['hours']} h "
            f"({f['hours_with_a_warning']} hours with one; by level {f['by_level_c']}); "
            f"{f['excursions']} excursion results"
        )
    print(
        json.dumps(
            {
                "window_points": profile.warning.window_points,
                "min_r2": profile.warning.min_r2,
                "lead": lead,
                "noise": noise,
                "checks": {
                    "lead_at_least_5_min": float(str(lead["lead_s_min"])) >= TARGET_LEAD_S,
                    "no_false_warning_in_any_hour": all(
                        f["hours_with_a_warning"] == 0 for f in noise
                    ),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
