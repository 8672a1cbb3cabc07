"""Reading a captured event log: the demo's ``events.jsonl``, a subscriber's, or an outbox export.

Three line shapes are understood, one JSON object a line:

- a recorded MQTT message ``{"topic", "payload", "received"}`` (``tagrelay demo``);
- an outbox row ``{"row_id", "event_id", "kind", "payload", "accepted_at", ...}``
  (``tagrelay outbox export``);
- a bare event ``{"event_id", "kind", ...}`` or a batch (a JSON array of them), as a subscriber
  that writes payloads one a line would keep them.

Lines that are none of these (or not JSON) are counted, not fatal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EventLog", "Record", "parse_log", "read_log"]


@dataclass(frozen=True, slots=True)
class Record:
    """One captured message: its topic (None when the log kept no topics) and payload."""

    topic: str | None
    payload: Any
    received: str | None = None


@dataclass(frozen=True, slots=True)
class EventLog:
    records: tuple[Record, ...]
    unreadable: int
    """Lines that were not JSON or not one of the known shapes."""


def parse_log(lines: Iterable[str]) -> EventLog:
    records: list[Record] = []
    unreadable = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        record = _record(value)
        if record is None:
            unreadable += 1
        else:
            records.append(record)
    return EventLog(tuple(records), unreadable)


def read_log(path: Path) -> EventLog:
    with path.open(encoding="utf-8", errors="replace") as lines:
        return parse_log(lines)


def _record(value: Any) -> Record | None:
    if isinstance(value, list):
        return Record(None, value)
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("topic"), str) and "payload" in value:
        received = value.get("received")
        return Record(
            value["topic"], value["payload"], received if isinstance(received, str) else None
        )
    if "row_id" in value and "payload" in value:
        payload = value["payload"]
        if isinstance(payload, str):  # an export that kept the payload as text
            try:
                payload = json.loads(payload)
            except ValueError:
                return None
        accepted = value.get("accepted_at")
        return Record(None, payload, accepted if isinstance(accepted, str) else None)
    if isinstance(value.get("kind"), str) or value.get("type") == "EPCISDocument":
        return Record(None, value)
    return None
