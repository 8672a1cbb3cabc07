"""``tagrelay conditions evaluate`` as a real process: a logger export in, the engine's verdict out.

The readings are the cross-dock scenario's cold pallet (PAL-0001: above 8 °C from 780 s to
1320 s, 30 s readings), taken from the simulator's world the way its labels report them.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import random
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cli.conditions import _csv_rows, _Errors, _jsonl_rows, _records, _replay
from gateway.conditions import PRESETS, mkt_from_sums_c
from simulator.world import World, load_scenario

ITEM = "PAL-0001"
START_S, END_S = 780, 1320


def _evaluate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "conditions", "evaluate", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def world() -> World:
    return World(load_scenario("cross-dock"))


@pytest.fixture(scope="module")
def period(world: World) -> float:
    item = next(i for i in world.scenario.items if i.id == ITEM)
    return float(item.sensors["temperature_c"].period_s)


@pytest.fixture(scope="module")
def curve(world: World, period: float) -> list[tuple[float, datetime, float]]:
    """(seconds into the scenario, time, °C) every reporting period."""
    steps = int(world.scenario.duration_s // period)
    return [
        (k * period, world.when(k * period), world.sensor_value(ITEM, "temperature_c", k * period))
        for k in range(steps + 1)
    ]


def _csv(curve: list[tuple[float, datetime, float]]) -> str:
    return "time,temperature_c\n" + "".join(f"{w.isoformat()},{v}\n" for _, w, v in curve)


def _mkt(values: list[float], period: float) -> float | None:
    """USP <1079.2> over evenly spaced readings, trapezoids between them, ΔH/R = 10,000 K."""
    weights = [math.exp(-10_000 / (v + 273.15)) for v in values]
    weighted = sum((a + b) / 2 * period for a, b in itertools.pairwise(weights))
    return mkt_from_sums_c(weighted, period * (len(values) - 1))


def _secs(world: World, iso: str) -> float:
    return (datetime.fromisoformat(iso) - world.start).total_seconds()


def test_csv_of_the_cold_pallet_gives_its_excursion_and_summary(
    tmp_path: Path, world: World, period: float, curve: list[tuple[float, datetime, float]]
) -> None:
    path = tmp_path / "pallet.csv"
    path.write_text(_csv(curve))
    result = _evaluate("--profile", "pharma-2-8", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = _lines(result.stdout)
    excursions = [r for r in out if r["kind"] == "excursion"]
    assert len(excursions) == 1
    (exc,) = excursions
    assert exc["phase"] == "close"
    assert exc["close_reason"] == "returned"
    assert exc["limit"] == {
        "quantity": "temperature_c",
        "name": "high",
        "bound": "high",
        "value": 8,
    }
    assert exc["rule"] == {"type": "instant", "duration_s": None}
    assert abs(_secs(world, exc["start"]) - START_S) <= period
    assert abs(_secs(world, exc["end"]) - END_S) <= period
    assert exc["time_beyond_s"] == pytest.approx(END_S - START_S, abs=period)
    values = [v for _, _, v in curve]
    assert exc["max"] == max(values)
    # The MKT on the close: the formula over the readings up to the closing one.
    closing = int(_secs(world, exc["time"]) // period)
    assert exc["mkt_c"] == pytest.approx(_mkt(values[: closing + 1], period))
    summary = out[-1]
    assert summary["kind"] == "summary"
    assert [r["kind"] for r in out].count("summary") == 1
    assert summary["mkt_c"] == pytest.approx(_mkt(values, period))
    temp = summary["quantities"]["temperature_c"]
    assert temp["readings"] == summary["readings"] == len(curve)
    assert (temp["min"], temp["max"]) == (min(values), max(values))
    assert min(values) < temp["mean"] < max(values)
    assert temp["covered_s"] == pytest.approx((len(curve) - 1) * period)
    assert temp["time_out_of_range_s"] == pytest.approx(exc["time_beyond_s"])
    assert temp["time_in_range_s"] + temp["time_out_of_range_s"] == pytest.approx(temp["covered_s"])
    assert summary["errors"] == 0
    assert summary["gaps"] == 0
    assert temp["gaps"] == []
    # Nothing else alarms (the early warning before the crossing is allowed).
    assert {r["kind"] for r in out} <= {"excursion", "warning", "summary"}


def test_json_lines_equivalent_to_the_csv_give_the_same_output(
    tmp_path: Path, curve: list[tuple[float, datetime, float]]
) -> None:
    csv_path = tmp_path / "pallet.csv"
    csv_path.write_text(_csv(curve))
    # Epoch seconds instead of ISO 8601, and shuffled: evaluated in time order all the same.
    rows = [{"time": w.timestamp(), "temperature_c": v} for _, w, v in curve]
    random.Random(7).shuffle(rows)
    jsonl = "".join(json.dumps(r) + "\n" for r in rows)
    from_csv = _evaluate("--profile", "pharma-2-8", "--subject", "PAL-0001", str(csv_path))
    from_stdin = _evaluate("--profile", "pharma-2-8", "--subject", "PAL-0001", "-", stdin=jsonl)
    assert from_csv.returncode == from_stdin.returncode == 0
    assert from_stdin.stderr == ""
    assert from_stdin.stdout == from_csv.stdout
    assert any(r["kind"] == "excursion" for r in _lines(from_csv.stdout))


def test_bad_lines_are_named_and_the_rest_is_evaluated(
    tmp_path: Path, world: World, period: float, curve: list[tuple[float, datetime, float]]
) -> None:
    lines = _csv(curve).splitlines()
    # Line 4 (the third reading): an unparseable time; line 30: a decimal comma.
    lines[3] = "yesterday noon," + lines[3].split(",")[1]
    lines[29] = lines[29].split(",")[0] + ',"8,5"'
    path = tmp_path / "pallet.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _evaluate("--profile", "pharma-2-8", str(path))
    assert result.returncode == 0
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert f"{path}:4: column 'time'" in errors[0]
    assert "yesterday noon" in errors[0]
    assert f"{path}:30: column 'temperature_c'" in errors[1]
    assert "8,5" in errors[1]
    out = _lines(result.stdout)
    summary = out[-1]
    assert summary["errors"] == 2
    assert summary["readings"] == len(curve) - 2
    (exc,) = [r for r in out if r["kind"] == "excursion"]
    assert abs(_secs(world, exc["start"]) - START_S) <= period
    assert abs(_secs(world, exc["end"]) - END_S) <= period

    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(
        '{"time": "2026-03-02T06:00:00Z", "temperature_c": 4}\n'
        "not json\n"
        '{"time": "2026-03-02T06:00:30", "temperature_c": 4}\n'
        '{"time": "2026-03-02T06:01:00+01:00", "temperature_c": "warm"}\n'
        '{"time": "2026-03-02T06:01:30Z", "temperature_c": 4.5}\n'
    )
    result = _evaluate("--profile", "pharma-2-8", str(jsonl))
    assert result.returncode == 0
    errors = result.stderr.splitlines()
    assert [e.split(": ", 2)[1] for e in errors] == [
        f"{jsonl}:2",
        f"{jsonl}:3",
        f"{jsonl}:4",
    ]
    assert "column 'time'" in errors[1]
    assert "UTC offset" in errors[1]
    assert "column 'temperature_c'" in errors[2]
    assert _lines(result.stdout)[-1]["readings"] == 2


def test_unknown_profile_exits_2_with_the_known_names(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("time,temperature_c\n0,4\n")
    result = _evaluate("--profile", "pharma-2-9", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "pharma-2-9" in result.stderr
    for name in PRESETS:
        assert name in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[[temperature_c]]\ndirection = "above"\nthreshold = 8\nrules = []\n'
    )
    result = _evaluate("--profile", str(bad), str(path))
    assert result.returncode == 2
    assert "not a valid profile" in result.stderr
    assert "rules" in result.stderr
    result = _evaluate("--profile", "frozen", "--column", "temp", str(path))
    assert result.returncode == 2
    assert "--column" in result.stderr


def test_profile_file_and_column_mapping(tmp_path: Path) -> None:
    profile = tmp_path / "sop.toml"
    profile.write_text(
        'name = "sop-12"\n'
        "[[temperature_c]]\n"
        'direction = "above"\n'
        "threshold = 5.0\n"
        'rules = [{kind = "consecutive", duration_s = 120}]\n'
    )
    # A European export: ';' separated, its own column names; a gap of 20 min in the middle.
    text = "Zeit;Temp;Batterie\n" + "".join(
        f"{t};{v};3.0\n"
        for t, v in [(0, 4.0), (60, 6.0), (120, 6.0), (180, 6.0), (240, 4.0), (1440, 4.0)]
    )
    path = tmp_path / "export.txt"
    path.write_text(text)
    result = _evaluate(
        "--profile", str(profile), "--column", "Zeit=time", "--column", "Temp=temperature_c",
        str(path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = _lines(result.stdout)
    (exc,) = [r for r in out if r["kind"] == "excursion"]
    assert exc["profile"] == "sop-12"
    assert exc["rule"] == {"type": "consecutive", "duration_s": 120}
    assert exc["start"] == "1970-01-01T00:00:30Z"  # 4 -> 6 °C crosses 5 °C half way
    assert exc["end"] == "1970-01-01T00:03:30Z"
    summary = out[-1]
    assert summary["gaps"] == 1
    (gap,) = summary["quantities"]["temperature_c"]["gaps"]
    assert gap["duration_s"] == 1200
    assert summary["quantities"]["temperature_c"]["gap_s"] == 1200


def test_an_excursion_open_at_the_end_is_reported_open(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("time,temperature_c\n0,4\n60,9\n120,9.5\n")
    out = _lines(_evaluate("--profile", "pharma-2-8", str(path)).stdout)
    (exc,) = [r for r in out if r["kind"] == "excursion"]
    assert exc["phase"] == "open"
    assert exc["end"] is None
    assert exc["close_reason"] is None
    assert exc["max"] == 9.5


def test_shocks_are_reported_with_their_alarm(tmp_path: Path) -> None:
    path = tmp_path / "parcel.csv"
    path.write_text(
        "time,shock_g,duration_ms\n"
        "2026-03-02T06:00:00Z,,\n"
        "2026-03-02T06:01:00Z,12,1\n"
        "2026-03-02T06:02:00Z,60,8\n"
        "2026-03-02T06:03:00Z,0,\n"
    )
    result = _evaluate("--profile", "parcel", str(path))
    assert result.returncode == 0, result.stderr
    out = _lines(result.stdout)
    shocks = [r for r in out if r["kind"] == "shock"]
    assert [(s["peak_g"], s["alarm"]) for s in shocks] == [(12, False), (60, True)]
    assert out[-1]["shock_alarms"] == 1


def test_table_is_human_readable(
    tmp_path: Path, curve: list[tuple[float, datetime, float]]
) -> None:
    path = tmp_path / "pallet.csv"
    path.write_text(_csv(curve))
    result = _evaluate("--profile", "pharma-2-8", "--table", str(path))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "{" not in text
    mkt = _lines(_evaluate("--profile", "pharma-2-8", str(path)).stdout)[-1]["mkt_c"]
    assert text.splitlines()[0].startswith("profile pharma-2-8: 61 readings, 0 errors")
    assert f"MKT {mkt:.2f} °C" in text
    assert "temperature_c" in text
    assert "9m00s" in text  # 540 s out of range
    assert "excursion  temperature_c high (high 8), instant" in text


def test_nothing_readable_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("when,temperature_c\n0,4\n60,5\n")
    result = _evaluate("--profile", "pharma-2-8", str(path))
    assert result.returncode == 1
    assert f"{path}:1: no 'time' column among ['when', 'temperature_c']" in result.stderr
    assert "no reading could be read" in result.stderr


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('time,temperature_c{}":;\n 0123456789.-eZT+naf')))
def test_parsers_and_replay_never_raise_on_arbitrary_input(text: str) -> None:
    """Whatever the file holds, bad cells are reported and counted, never raised, and what
    was read replays through the engine."""
    for parse in (_csv_rows, _jsonl_rows):
        errors = _Errors(io.StringIO(), "fuzz")
        rows = list(parse(text, {}, errors))
        run = _replay(rows, "fuzz", PRESETS["pharma-2-8"], [])
        summary = _records(run, PRESETS["pharma-2-8"], len(rows), errors.count)[-1]
        assert summary["readings"] == sum(len(r.values) for r in rows)
        json.dumps(summary)
