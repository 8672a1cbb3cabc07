"""The published golden vectors, from the verbatim copy in tests/fixtures/vectors/.

Sources per vector are in the file; where the copy came from is in
tests/fixtures/vectors/SOURCES.md. A missing or changed copy fails collection, never skips.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

VECTORS_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "vectors"
VECTORS_FILE = VECTORS_PATH / "beacons-and-framing.json"
SOURCES_FILE = VECTORS_PATH / "SOURCES.md"


@cache
def vectors_data() -> dict[str, Any]:
    """The whole vectors file, checked against the digest recorded in SOURCES.md."""
    raw = VECTORS_FILE.read_bytes()  # FileNotFoundError: the fixture is part of the repository
    recorded = re.search(r"^sha256: ([0-9a-f]{64})$", SOURCES_FILE.read_text(), re.MULTILINE)
    if recorded is None or hashlib.sha256(raw).hexdigest() != recorded.group(1):
        raise AssertionError(f"{VECTORS_FILE} is not the verbatim copy SOURCES.md records")
    data: dict[str, Any] = json.loads(raw)
    return data


def vectors(key: str) -> list[dict[str, Any]]:
    """The vectors of one key; a key that is absent or empty is an error."""
    found: list[dict[str, Any]] = vectors_data()[key]
    if not found:
        raise AssertionError(f"no vectors under {key!r} in {VECTORS_FILE}")
    return found


def load_vectors(*keys: str) -> list[Any]:
    """``pytest.param`` per vector of the given keys, id ``key/name [source]``."""
    return [
        pytest.param((key, vector), id=f"{key}/{vector['name']} [{_short_source(vector)}]")
        for key in keys
        for vector in vectors(key)
    ]


def _short_source(vector: dict[str, Any]) -> str:
    """The vector's source up to its first parenthesis, e.g. 'citruz/beacontools tests/...'."""
    source: str = vector["source"]
    return source.split(" (", 1)[0].split(";", 1)[0]
