"""The JSON form of a decoded message: what ``tagrelay decode`` prints and checks compare.

Any frozen dataclass message becomes a JSON-able dict: ``format`` first, then the fields in
declaration order. Bytes become lower-case hex, datetimes ISO 8601 in UTC (``Z``), times of day
ISO 8601, enums their value, nested dataclasses dicts, tuples lists; None stays null.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from collections.abc import Mapping
from typing import Any, TypeAlias

__all__ = ["JsonValue", "to_json_value", "to_jsonable"]

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


def to_jsonable(message: Any) -> dict[str, JsonValue]:
    """``{"format": ..., field: value, ...}`` for a dataclass message.

    ``format`` is taken from the class attribute (or the field, for messages whose format is
    per instance) and always comes first.
    """
    if not dataclasses.is_dataclass(message) or isinstance(message, type):
        raise TypeError(f"not a dataclass message: {message!r}")
    out: dict[str, JsonValue] = {}
    fmt = getattr(message, "format", None)
    if fmt is not None:
        out["format"] = to_json_value(fmt)
    for field in dataclasses.fields(message):
        if field.name != "format":
            out[field.name] = to_json_value(getattr(message, field.name))
    return out


def to_json_value(value: Any) -> JsonValue:
    """The JSON form of one field value."""
    # bool and enum before int: both are ints, and IntFlag/IntEnum must print their value.
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        return to_json_value(value.value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: messages carry UTC times")
        return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dict(to_jsonable(value))
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")
