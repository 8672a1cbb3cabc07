"""The JSON Schema of every kind, generated from the models into ``docs/schemas/``.

``python -m gateway.events.schemas`` (re)writes ``docs/schemas/<kind>.schema.json`` and removes
schema files of kinds that no longer exist; ``--check`` writes nothing and exits 1 listing every
file that is missing, stale or orphaned (a test runs it, so a model change without regenerated
schemas fails). Files are JSON with sorted keys, two-space indent and a trailing newline, so
that a diff shows what changed in the wire format.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from gateway.events.registry import MESSAGE_TYPES

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "SCHEMA_SUFFIX",
    "SchemaDrift",
    "check_schemas",
    "default_schema_dir",
    "main",
    "render_schema",
    "schema_for",
    "write_schemas",
]

#: The dialect pydantic generates.
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_SUFFIX: Final = ".schema.json"


def default_schema_dir() -> Path:
    """``docs/schemas`` of the source tree this module was imported from."""
    return Path(__file__).resolve().parents[2] / "docs" / "schemas"


def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of one kind's model (validation mode: what :func:`parse_message`
    accepts), with its dialect."""
    return {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema()}


def render_schema(model: type[BaseModel]) -> str:
    """The exact text of a schema file."""
    return json.dumps(schema_for(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _expected(types: Mapping[str, type[BaseModel]]) -> dict[str, str]:
    return {f"{kind}{SCHEMA_SUFFIX}": render_schema(model) for kind, model in types.items()}


@dataclass(frozen=True, slots=True)
class SchemaDrift:
    """What differs between the models and a schema directory (file names)."""

    missing: tuple[str, ...]
    stale: tuple[str, ...]
    orphaned: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.missing or self.stale or self.orphaned)

    def entries(self, *, written: bool = False) -> list[tuple[str, str]]:
        """(what, file name) pairs; ``written`` names what :func:`write_schemas` did."""
        words = ("written", "rewritten", "removed") if written else ("missing", "stale", "orphaned")
        groups = (self.missing, self.stale, self.orphaned)
        return [(word, name) for word, names in zip(words, groups, strict=True) for name in names]


def check_schemas(
    directory: Path, types: Mapping[str, type[BaseModel]] = MESSAGE_TYPES
) -> SchemaDrift:
    """Compare ``directory`` with the models; nothing is written."""
    expected = _expected(types)
    present = {p.name for p in directory.glob(f"*{SCHEMA_SUFFIX}")} if directory.is_dir() else set()
    missing = sorted(set(expected) - present)
    stale = sorted(
        name
        for name in set(expected) & present
        if (directory / name).read_text(encoding="utf-8") != expected[name]
    )
    orphaned = sorted(present - set(expected))
    return SchemaDrift(tuple(missing), tuple(stale), tuple(orphaned))


def write_schemas(
    directory: Path, types: Mapping[str, type[BaseModel]] = MESSAGE_TYPES
) -> SchemaDrift:
    """Bring ``directory`` in line with the models; returns what it changed."""
    drift = check_schemas(directory, types)
    directory.mkdir(parents=True, exist_ok=True)
    expected = _expected(types)
    for name in (*drift.missing, *drift.stale):
        (directory / name).write_text(expected[name], encoding="utf-8")
    for name in drift.orphaned:
        (directory / name).unlink()
    return drift


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.events.schemas",
        description="Generate the JSON Schema of every event kind.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="schema directory (default: docs/schemas)"
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir if args.dir is not None else default_schema_dir()
    if args.check:
        drift = check_schemas(directory)
        for what, name in drift.entries():
            print(f"{what}: {directory / name}")
        if drift:
            print("the models changed: run python -m gateway.events.schemas", file=sys.stderr)
            return 1
        print(f"{len(MESSAGE_TYPES)} schemas up to date in {directory}")
        return 0
    drift = write_schemas(directory)
    for what, name in drift.entries(written=True):
        print(f"{what}: {directory / name}")
    print(f"{len(MESSAGE_TYPES)} schemas in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
