"""The JSON form of messages: format first, bytes hex, UTC ISO times, enums by value, null."""

from __future__ import annotations

import datetime
import enum
import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from protocols import to_json_value, to_jsonable


class Colour(enum.StrEnum):
    RED = "red"


class Bits(enum.IntFlag):
    A = 1
    B = 4


@dataclass(frozen=True, slots=True)
class Inner:
    time: datetime.time


@dataclass(frozen=True, slots=True)
class Sample:
    format: ClassVar[str] = "sample"

    raw: bytes
    when: datetime.datetime
    colour: Colour
    bits: Bits
    missing: int | None
    inner: tuple[Inner, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class PerInstance:
    value: int
    format: str = "per-instance"


def test_format_first_then_fields_in_order() -> None:
    cet = datetime.timezone(datetime.timedelta(hours=1))
    sample = Sample(
        raw=b"\x00\xab",
        when=datetime.datetime(2026, 3, 2, 8, 45, tzinfo=cet),
        colour=Colour.RED,
        bits=Bits.A | Bits.B,
        missing=None,
        inner=(Inner(datetime.time(7, 45, tzinfo=datetime.UTC)),),
    )
    got = to_jsonable(sample)
    assert list(got) == ["format", "raw", "when", "colour", "bits", "missing", "inner"]
    assert got == {
        "format": "sample",
        "raw": "00ab",
        "when": "2026-03-02T07:45:00Z",  # converted to UTC
        "colour": "red",
        "bits": 5,
        "missing": None,
        "inner": [{"time": "07:45:00+00:00"}],
    }
    assert json.loads(json.dumps(got)) == got


def test_per_instance_format_still_comes_first() -> None:
    assert list(to_jsonable(PerInstance(3)).items()) == [("format", "per-instance"), ("value", 3)]


def test_refuses_what_has_no_faithful_json_form() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_json_value(datetime.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="no JSON form"):
        to_json_value(object())
    with pytest.raises(TypeError, match="not a dataclass"):
        to_jsonable({"format": "x"})
