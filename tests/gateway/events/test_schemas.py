"""The JSON Schemas in docs/schemas/: generated from the models and up to date, the generator's
check mode catches a stale or missing file, and every sample event (and every example in
docs/events.md) is valid against its kind's schema, while broken ones are not."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from gateway.events import EVENT_TYPES, MESSAGE_TYPES, Event, parse_message
from gateway.events.schemas import (
    SCHEMA_SUFFIX,
    check_schemas,
    default_schema_dir,
    render_schema,
    write_schemas,
)
from tests.gateway.events import samples
from tests.gateway.events.samples import ALL_SAMPLES

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = ROOT / "docs" / "schemas"
EVENTS_DOC = ROOT / "docs" / "events.md"


def _validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{kind}{SCHEMA_SUFFIX}").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_the_schema_files_are_up_to_date() -> None:
    """Fails when a model changed and ``python -m gateway.events.schemas`` was not run."""
    assert default_schema_dir() == SCHEMA_DIR
    drift = check_schemas(SCHEMA_DIR)
    assert not drift, f"run python -m gateway.events.schemas: {drift.entries()}"
    assert sorted(p.name for p in SCHEMA_DIR.glob(f"*{SCHEMA_SUFFIX}")) == sorted(
        f"{k}{SCHEMA_SUFFIX}" for k in MESSAGE_TYPES
    )


def test_schema_files_are_stable_text() -> None:
    for kind, model in MESSAGE_TYPES.items():
        text = (SCHEMA_DIR / f"{kind}{SCHEMA_SUFFIX}").read_text(encoding="utf-8")
        assert text == render_schema(model)
        assert text.endswith("}\n")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_check_mode_reports_and_write_mode_repairs(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "gateway.events.schemas", "--dir", str(tmp_path)]
    written = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    assert written.stdout.count("written: ") == len(MESSAGE_TYPES)
    ok = subprocess.run([*cmd, "--check"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # A model changed (simulated by an edited file), a kind was dropped, one was renamed away.
    stale = tmp_path / f"presence.enter{SCHEMA_SUFFIX}"
    stale.write_text(stale.read_text().replace("dwell_s", "dwell_seconds"))
    (tmp_path / f"device.status{SCHEMA_SUFFIX}").unlink()
    (tmp_path / f"presence.linger{SCHEMA_SUFFIX}").write_text("{}\n")
    (tmp_path / "README.md").write_text("not a schema\n")
    bad = subprocess.run([*cmd, "--check"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1
    assert sorted(bad.stdout.splitlines()) == sorted(
        [
            f"stale: {stale}",
            f"missing: {tmp_path / f'device.status{SCHEMA_SUFFIX}'}",
            f"orphaned: {tmp_path / f'presence.linger{SCHEMA_SUFFIX}'}",
        ]
    )
    assert "python -m gateway.events.schemas" in bad.stderr
    assert stale.read_text().count("dwell_seconds") > 0  # --check wrote nothing
    drift = write_schemas(tmp_path)
    assert drift.entries(written=True) == [
        ("written", f"device.status{SCHEMA_SUFFIX}"),
        ("rewritten", f"presence.enter{SCHEMA_SUFFIX}"),
        ("removed", f"presence.linger{SCHEMA_SUFFIX}"),
    ]
    assert not check_schemas(tmp_path)
    assert (tmp_path / "README.md").exists()


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=lambda e: e.kind)
def test_samples_are_valid_against_their_schema(event: Event) -> None:
    body = json.loads(event.to_json_bytes())
    errors = [e.message for e in _validator(event.kind).iter_errors(body)]
    assert errors == []


def _schema_errors(kind: str, body: dict[str, Any]) -> list[str]:
    return [e.message for e in _validator(kind).iter_errors(body)]


def test_the_schemas_refuse_what_the_parser_refuses() -> None:
    body = json.loads(samples.presence_enter().to_json_bytes())
    assert _schema_errors("presence.enter", {**body, "colour": "red"})
    assert _schema_errors("presence.enter", {**body, "time": "2026-11-24T06:00:00"})
    assert _schema_errors("presence.enter", {**body, "time": "2026-11-24T07:00:00+01:00"})
    assert _schema_errors("presence.enter", {**body, "sightings": 0})
    assert _schema_errors("presence.enter", {**body, "kind": "presence.exit"})
    without_kind = {k: v for k, v in body.items() if k != "kind"}
    assert any(
        "'kind' is a required property" in m for m in _schema_errors("presence.enter", without_kind)
    )
    reading = json.loads(samples.telemetry_reading().to_json_bytes())
    reading["values"]["temperature_f"] = 41.8
    assert _schema_errors("telemetry.reading", reading)
    reading["values"] = {}
    assert _schema_errors("telemetry.reading", reading)


def _doc_examples() -> list[dict[str, Any]]:
    text = EVENTS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    return [json.loads(b) for b in blocks]


def test_docs_have_a_valid_example_of_every_kind() -> None:
    examples = _doc_examples()
    kinds = [e["kind"] for e in examples]
    assert set(kinds) == set(MESSAGE_TYPES)
    assert len(kinds) == len(MESSAGE_TYPES) + 1  # two telemetry.reading examples
    for example in examples:
        assert _schema_errors(example["kind"], example) == [], example["kind"]
        parsed = parse_message(json.dumps(example))
        # Written back, it is the example (the outbox spells UTC "+00:00", the models "Z").
        respelled = json.loads(json.dumps(example).replace('+00:00"', 'Z"'))
        assert parsed.model_dump(mode="json", by_alias=True) == respelled
    # The envelope kinds' examples are samples the tests build with ``make_id``: their ids
    # follow the documented rule.
    bodies = [json.loads(s.to_json_bytes()) for s in ALL_SAMPLES]
    for example in examples:
        if example["kind"] in EVENT_TYPES:
            assert example in bodies, example["kind"]
