"""Loading the published advert vectors that live beside the repository (../shared/vectors/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
VECTORS_FILE = VECTORS_PATH / "beacons-and-framing.json"


def load_vectors(*keys: str) -> list[Any]:
    """``pytest.param`` per vector of the given keys, id ``key/name [source]``.

    One skipped param when the file is absent.
    """
    if not VECTORS_FILE.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{VECTORS_FILE} is absent"))]
    data = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return [
        pytest.param((key, vector), id=f"{key}/{vector['name']} [{_short_source(vector)}]")
        for key in keys
        for vector in data[key]
    ]


def _short_source(vector: dict[str, Any]) -> str:
    """The vector's source up to its first parenthesis, e.g. 'citruz/beacontools tests/...'."""
    source: str = vector["source"]
    return source.split(" (", 1)[0].split(";", 1)[0]
