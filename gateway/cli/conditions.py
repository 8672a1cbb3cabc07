"""``tagrelay conditions evaluate``: replay a logger export through the gateway's condition engine.

A claims or QA desk gives it a profile (a preset name, or a TOML / JSON file holding one
profile) and the readings of one logger, and gets what the gateway would have reported:

  tagrelay conditions evaluate --profile pharma-2-8 export.csv
  tagrelay conditions evaluate --profile my-sop.toml --column Temp=temperature_c log.csv --table

Input: CSV with a header, or JSON lines (one object per line), chosen by the extension
(.csv; .jsonl, .ndjson, .json) or else by the content; ``-`` reads standard input. A ``time``
column (ISO 8601 with a UTC offset, or POSIX seconds) and value columns named like the event
fields: ``temperature_c``, ``humidity_pct``, ``shock_g`` (a shock's resultant peak; an empty or
0 cell is no shock) with an optional ``duration_ms``. ``--column SRC=FIELD`` maps another name.
Readings are evaluated in time order whatever the order of the file.

Output: JSON lines, one per closed excursion (``kind: "excursion"``; one still open at the last
reading has ``phase: "open"`` and no ``end``), warning, shock and sensor fault, then one
``kind: "summary"`` object; ``--table`` prints a short table instead. A bad cell is reported on
stderr with its line and column and the rest of the file is still evaluated.

Exit status: 0 the file was evaluated (even with bad lines), 1 no reading could be read,
2 unusable arguments or profile.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from gateway.conditions import ConditionMonitor, ConditionResult, Profile, SeriesSummary

__all__ = ["register"]

EXIT_OK: Final = 0
EXIT_NO_READINGS: Final = 1
EXIT_USAGE: Final = 2

#: The fields a column can carry (after ``--column`` mapping).
TIME_FIELD: Final = "time"
SHOCK_FIELD: Final = "shock_g"
DURATION_FIELD: Final = "duration_ms"
_VALUE_FIELDS: Final = ("temperature_c", "humidity_pct", SHOCK_FIELD, DURATION_FIELD)
#: At most this many bad-cell messages on stderr; the rest are only counted (a wrong column
#: mapping on a year of minute readings must not print half a million lines).
MAX_ERROR_LINES: Final = 100

_JSONL_SUFFIXES: Final = (".jsonl", ".ndjson", ".json")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "conditions",
        help="evaluate condition profiles offline (a logger export)",
        description="Condition monitoring tools. See 'tagrelay conditions evaluate --help'.",
    )
    sub = parser.add_subparsers(dest="conditions_command", metavar="ACTION", required=True)
    evaluate = sub.add_parser(
        "evaluate",
        help="replay a logger export (CSV or JSON lines) against a profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "--profile",
        required=True,
        metavar="NAME|FILE",
        help="a preset name (pharma-2-8, frozen, ...) or a TOML / JSON file with one profile",
    )
    evaluate.add_argument(
        "readings", metavar="READINGS", help="CSV or JSON lines file; '-' for standard input"
    )
    evaluate.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="SRC=FIELD",
        help="read column SRC as FIELD (time, temperature_c, humidity_pct, shock_g, "
        "duration_ms); repeatable",
    )
    evaluate.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        default=None,
        help="input format (default: from the extension, else from the content)",
    )
    evaluate.add_argument(
        "--subject",
        default=None,
        help="the subject named in the results (default: the file name without extension)",
    )
    evaluate.add_argument(
        "--table", action="store_true", help="print a short human-readable table instead of JSON"
    )
    evaluate.set_defaults(func=_evaluate)


# --- reading the input -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    t: float
    values: dict[str, float]


@dataclass(slots=True)
class _Errors:
    out: TextIO
    source: str
    count: int = 0

    def report(self, line: int, column: str | None, message: str) -> None:
        self.count += 1
        if self.count <= MAX_ERROR_LINES:
            where = f"{self.source}:{line}" + (f": column {column!r}" if column else "")
            print(f"tagrelay conditions evaluate: {where}: {message}", file=self.out)
        elif self.count == MAX_ERROR_LINES + 1:
            print("tagrelay conditions evaluate: further errors are only counted", file=self.out)


def _parse_time(raw: object) -> float:
    """POSIX seconds from a number or an ISO 8601 string with a UTC offset."""
    if isinstance(raw, bool):
        raise ValueError(f"not a time: {raw!r}")
    if isinstance(raw, int | float):
        t = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            t = float(text)
        except ValueError:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"not ISO 8601 or epoch seconds: {raw!r}") from None
            if when.tzinfo is None:
                raise ValueError(f"no UTC offset in {raw!r} (add one, e.g. +00:00 or Z)") from None
            t = when.timestamp()
    else:
        raise ValueError(f"not a time: {raw!r}")
    try:
        datetime.fromtimestamp(t, UTC)  # NaN, infinity, beyond year 9999
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"not a time: {raw!r}") from None
    return t


def _parse_value(raw: object) -> float | None:
    """A number; ``None`` for an empty cell or JSON null."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"not a number: {raw!r}")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            raise ValueError(f"not a number: {raw!r}") from None
    raise ValueError(f"not a number: {raw!r}")


def _row(
    line: int, record: Mapping[str, object], mapping: Mapping[str, str], errors: _Errors
) -> _Row | None:
    fields: dict[str, tuple[str, object]] = {}
    for name, raw in record.items():
        target = mapping.get(name, name)
        fields[target] = (name, raw)
    if TIME_FIELD not in fields:
        errors.report(line, None, f"no {TIME_FIELD!r} column")
        return None
    time_column, raw_time = fields[TIME_FIELD]
    try:
        t = _parse_time(raw_time)
    except ValueError as exc:
        errors.report(line, time_column, str(exc))
        return None
    values: dict[str, float] = {}
    for target in _VALUE_FIELDS:
        if target not in fields:
            continue
        column, raw = fields[target]
        try:
            value = _parse_value(raw)
        except ValueError as exc:
            errors.report(line, column, str(exc))
            continue
        if value is not None:
            values[target] = value
    return _Row(line, t, values)


def _is_jsonl(name: str, text: str, forced: str | None) -> bool:
    if forced is not None:
        return forced == "jsonl"
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return False
    if suffix in _JSONL_SUFFIXES:
        return True
    return text.lstrip().startswith("{")


def _csv_rows(text: str, mapping: Mapping[str, str], errors: _Errors) -> Iterator[_Row]:
    first = text.split("\n", 1)[0]
    # Loggers exported for European spreadsheets use ';', some tabs.
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip() for h in header]
    if TIME_FIELD not in {mapping.get(n, n) for n in names}:
        errors.report(
            reader.line_num,
            None,
            f"no {TIME_FIELD!r} column among {names} (map one with --column SRC={TIME_FIELD})",
        )
        return
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(names):
            errors.report(line, None, f"{len(cells)} cells for {len(names)} columns")
            continue
        cells += [""] * (len(names) - len(cells))  # a short row: its last cells are empty
        row = _row(line, dict(zip(names, cells, strict=True)), mapping, errors)
        if row is not None:
            yield row


def _jsonl_rows(text: str, mapping: Mapping[str, str], errors: _Errors) -> Iterator[_Row]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.report(line, None, f"not JSON: {exc.msg} (character {exc.pos + 1})")
            continue
        if not isinstance(record, dict):
            errors.report(line, None, "not a JSON object")
            continue
        row = _row(line, record, mapping, errors)
        if row is not None:
            yield row


# --- the profile -------------------------------------------------------------------------------


class _UsageError(Exception):
    pass


def _load_profile(spec: str) -> tuple[Profile, list[Profile]]:
    """The profile to use, and the extra profiles the monitor must know (a file's)."""
    import tomllib

    from pydantic import ValidationError

    from gateway.conditions import PRESETS, Profile

    path = Path(spec)
    if spec in PRESETS and not path.is_file():
        return PRESETS[spec], []
    if not path.is_file():
        known = ", ".join(sorted(PRESETS))
        raise _UsageError(f"unknown profile {spec!r}: not a file, nor one of {known}")
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _UsageError(f"profile file {spec}: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"profile"}:
        data = data["profile"]
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise _UsageError(f"profile file {spec} is not a valid profile:\n{exc}") from exc
    return profile, [profile]


def _column_mapping(specs: Sequence[str]) -> dict[str, str]:
    allowed = (TIME_FIELD, *_VALUE_FIELDS)
    mapping: dict[str, str] = {}
    for spec in specs:
        source, sep, target = spec.partition("=")
        if not sep or not source or target not in allowed:
            raise _UsageError(
                f"--column {spec!r}: expected SRC=FIELD with FIELD one of {', '.join(allowed)}"
            )
        mapping[source] = target
    return mapping


# --- evaluation --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    results: list[ConditionResult] = field(default_factory=list)
    still_open: list[ConditionResult] = field(default_factory=list)
    summaries: list[SeriesSummary] = field(default_factory=list)
    gaps: list[dict[str, object]] = field(default_factory=list)
    readings: int = 0
    duplicates: int = 0


def _replay(rows: list[_Row], subject: str, profile: Profile, extra: list[Profile]) -> _Run:
    from gateway.conditions import (
        HUMIDITY_MAX_PCT,
        HUMIDITY_MIN_PCT,
        TEMPERATURE_MAX_C,
        TEMPERATURE_MIN_C,
        ConditionMonitor,
        Quantity,
    )

    monitor: ConditionMonitor = ConditionMonitor(extra, {subject: profile.name})
    run = _Run()
    plausible = {
        Quantity.TEMPERATURE_C: (TEMPERATURE_MIN_C, TEMPERATURE_MAX_C),
        Quantity.HUMIDITY_PCT: (HUMIDITY_MIN_PCT, HUMIDITY_MAX_PCT),
    }
    last_t: dict[Quantity, float] = {}
    # A file is all there up front: evaluated in time order (stable for equal times).
    for row in sorted(rows, key=lambda r: r.t):
        at = datetime.fromtimestamp(row.t, UTC)
        for quantity in Quantity:
            value = row.values.get(quantity.value)
            if value is None:
                continue
            run.readings += 1
            run.results += monitor.observe_s(subject, quantity, value, row.t)
            low, high = plausible[quantity]
            if not low <= value <= high:
                continue
            before = last_t.get(quantity)
            if before is not None and row.t - before > profile.max_gap_s:
                run.gaps.append(
                    {
                        "quantity": quantity.value,
                        "start": _iso(datetime.fromtimestamp(before, UTC)),
                        "end": _iso(at),
                        "duration_s": row.t - before,
                    }
                )
            last_t[quantity] = row.t
        shock = row.values.get(SHOCK_FIELD)
        if shock is not None and shock != 0:
            run.readings += 1
            duration = row.values.get(DURATION_FIELD)
            run.results += monitor.observe_shock(subject, at, (shock, 0.0, 0.0), duration)
    run.duplicates = monitor.counters["duplicate"]
    run.summaries = monitor.summary(subject)
    # Excursions still open at the last reading: closing the monitoring period (back to no
    # profile) reports each with its figures so far; shown as open, without an end.
    run.still_open = monitor.assign(subject, None)
    return run


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _result_json(result: ConditionResult, still_open: bool = False) -> dict[str, Any]:
    from gateway.conditions import (
        Direction,
        ExcursionResult,
        RuleKind,
        SensorFaultResult,
        ShockResult,
        WarningResult,
    )

    if isinstance(result, ExcursionResult):
        return {
            "kind": "excursion",
            "excursion_id": result.excursion_id,
            "phase": "open" if still_open else result.phase.value,
            "subject": result.subject,
            "profile": result.profile,
            "limit": {
                "quantity": result.quantity.value,
                "name": result.limit,
                "bound": "high" if result.direction is Direction.ABOVE else "low",
                "value": result.threshold,
            },
            "rule": {
                "type": result.rule.value,
                "duration_s": None if result.rule is RuleKind.INSTANT else result.rule_duration_s,
            },
            "time": _iso(result.at),
            "start": _iso(result.start),
            "end": None if still_open else _iso(result.end),
            "time_beyond_s": result.time_beyond_s,
            "min": result.min,
            "max": result.max,
            "mean": result.mean,
            "mkt_c": result.mkt_c,
            "close_reason": None if still_open else result.close_reason,
        }
    if isinstance(result, WarningResult):
        return {
            "kind": "warning",
            "warning_id": result.warning_id,
            "phase": result.phase.value,
            "subject": result.subject,
            "profile": result.profile,
            "limit": {
                "quantity": result.quantity.value,
                "name": result.limit,
                "bound": "high" if result.direction is Direction.ABOVE else "low",
                "value": result.threshold,
            },
            "time": _iso(result.at),
            "value": result.value,
            "slope_per_h": result.slope_per_h,
            "r2": result.r2,
            "predicted_crossing": _iso(result.predicted_crossing),
        }
    if isinstance(result, ShockResult):
        return {
            "kind": "shock",
            "subject": result.subject,
            "profile": result.profile,
            "time": _iso(result.at),
            "peak_g": result.peak_g,
            "duration_ms": result.duration_ms,
            "threshold_g": result.threshold_g,
            "alarm": result.alarm,
            "running_peak_g": result.running_peak_g,
            "suppressed": result.suppressed,
        }
    assert isinstance(result, SensorFaultResult)
    return {
        "kind": "fault",
        "fault_id": result.fault_id,
        "phase": result.phase.value,
        "subject": result.subject,
        "quantity": result.quantity,
        "time": _iso(result.at),
        "value": result.value,
        "detail": result.detail,
    }


def _records(run: _Run, profile: Profile, rows: int, errors: int) -> list[dict[str, Any]]:
    from gateway.conditions import Direction, ExcursionPhase, ExcursionResult, Quantity

    out: list[dict[str, Any]] = []
    for result in run.results:
        if isinstance(result, ExcursionResult) and result.phase is not ExcursionPhase.CLOSE:
            continue  # one line per excursion: its close carries the final figures
        out.append(_result_json(result))
    out += [_result_json(r, still_open=True) for r in run.still_open]
    quantities: dict[str, Any] = {}
    for s in run.summaries:
        limits = profile.limits(s.quantity)
        # Limits on one side nest (beyond 45 °C is beyond 30 °C too): the time out of range
        # is the longest time beyond on each side, the two sides together.
        above = max(
            (s.time_beyond_s[lim.name] for lim in limits if lim.direction is Direction.ABOVE),
            default=0.0,
        )
        below = max(
            (s.time_beyond_s[lim.name] for lim in limits if lim.direction is Direction.BELOW),
            default=0.0,
        )
        out_s = min(above + below, s.covered_s)
        quantities[s.quantity.value] = {
            "readings": s.readings,
            "first": _iso(s.period_start),
            "last": _iso(s.last_reading),
            "min": s.min,
            "max": s.max,
            "mean": s.mean,
            **({"mkt_c": s.mkt_c} if s.quantity is Quantity.TEMPERATURE_C else {}),
            "covered_s": s.covered_s,
            "time_in_range_s": s.covered_s - out_s,
            "time_out_of_range_s": out_s,
            "time_beyond_s": s.time_beyond_s,
            "gap_s": s.gap_s,
            "gaps": [g for g in run.gaps if g["quantity"] == s.quantity.value],
        }
    temperature = quantities.get(Quantity.TEMPERATURE_C.value)
    excursions = sum(1 for r in out if r["kind"] == "excursion")
    out.append(
        {
            "kind": "summary",
            "profile": profile.name,
            "rows": rows,
            "readings": run.readings,
            "errors": errors,
            "duplicates": run.duplicates,
            "mkt_c": None if temperature is None else temperature["mkt_c"],
            "excursions": excursions,
            "warnings": sum(1 for r in out if r["kind"] == "warning"),
            "shocks": sum(1 for r in out if r["kind"] == "shock"),
            "shock_alarms": sum(1 for r in out if r["kind"] == "shock" and r["alarm"]),
            "faults": sum(1 for r in out if r["kind"] == "fault"),
            "gaps": len(run.gaps),
            "quantities": quantities,
        }
    )
    return out


def _num(value: object, unit: str = "") -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.2f}{unit}"


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _table(records: list[dict[str, Any]], out: TextIO) -> None:
    summary = records[-1]
    print(
        f"profile {summary['profile']}: {summary['readings']} readings, "
        f"{summary['errors']} errors, MKT {_num(summary['mkt_c'], ' °C')}",
        file=out,
    )
    print(file=out)
    header = (
        f"{'quantity':<14}{'min':>9}{'mean':>9}{'max':>9}{'in range':>13}{'out':>13}{'gaps':>6}"
    )
    print(header, file=out)
    for name, q in summary["quantities"].items():
        print(
            f"{name:<14}{_num(q['min']):>9}{_num(q['mean']):>9}{_num(q['max']):>9}"
            f"{_duration(q['time_in_range_s']):>13}{_duration(q['time_out_of_range_s']):>13}"
            f"{len(q['gaps']):>6}",
            file=out,
        )
    events = [r for r in records[:-1] if r["kind"] != "fault"]
    print(file=out)
    if not events:
        print("no excursions, warnings or shocks", file=out)
    for r in events:
        if r["kind"] == "excursion":
            lim, rule = r["limit"], r["rule"]
            rule_text = rule["type"] + (
                "" if rule["duration_s"] is None else f" {_duration(rule['duration_s'])}"
            )
            print(
                f"excursion  {lim['quantity']} {lim['name']} ({lim['bound']} "
                f"{lim['value']:g}), {rule_text}: {r['start']} .. {r['end'] or 'still open'}, "
                f"{_duration(r['time_beyond_s'])} beyond, max {_num(r['max'])}, "
                f"MKT {_num(r['mkt_c'], ' °C')}",
                file=out,
            )
        elif r["kind"] == "warning":
            lim = r["limit"]
            print(
                f"warning    {lim['quantity']} {lim['name']} {r['phase']} at {r['time']}"
                + (
                    f", crossing predicted {r['predicted_crossing']}"
                    if r["predicted_crossing"]
                    else ""
                ),
                file=out,
            )
        else:
            print(
                f"shock      {_num(r['peak_g'], ' g')} at {r['time']}"
                + (" ALARM" if r["alarm"] else " (recorded)"),
                file=out,
            )


def _evaluate(args: argparse.Namespace) -> int:
    try:
        profile, extra = _load_profile(args.profile)
        mapping = _column_mapping(args.column)
    except _UsageError as exc:
        print(f"tagrelay conditions evaluate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    name = "<stdin>" if args.readings == "-" else args.readings
    try:
        if args.readings == "-":
            text = sys.stdin.read()
        else:
            text = Path(args.readings).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"tagrelay conditions evaluate: cannot read {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = text.removeprefix("\ufeff")
    errors = _Errors(sys.stderr, name)
    parse = _jsonl_rows if _is_jsonl(name, text, args.format) else _csv_rows
    rows = list(parse(text, mapping, errors))
    if not any(row.values for row in rows):
        print(
            f"tagrelay conditions evaluate: {name}: no reading could be read "
            f"({errors.count} errors)",
            file=sys.stderr,
        )
        return EXIT_NO_READINGS
    subject = args.subject or ("stdin" if args.readings == "-" else Path(args.readings).stem)
    run = _replay(rows, subject, profile, extra)
    records = _records(run, profile, len(rows), errors.count)
    if args.table:
        _table(records, sys.stdout)
    else:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return EXIT_OK
