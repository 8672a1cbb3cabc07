"""Shared pieces of the outbox tests: a fake clock and event builders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gateway.outbox import EventClass, OutboxConfig, OutboxEvent

#: A config whose cap and TTLs no test hits by accident; tests override what they exercise.
ROOMY: OutboxConfig = OutboxConfig(
    max_bytes=1 << 30,
    ttl_s={c: None for c in EventClass},
    group_commit_window_ms=2.0,
    ack_flush_delay_ms=5.0,
    sweep_interval_s=3600.0,
)


class FakeClock:
    """Time that moves only when told: monotonic and wall clock independently."""

    def __init__(self, monotonic: float = 5000.0) -> None:
        self.mono = monotonic
        self.wall = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)

    def jump_wall(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)


def event(
    event_id: str,
    event_class: EventClass = EventClass.TELEMETRY,
    *,
    source: str = "label-1",
    dedup_key: str | None = None,
    size: int = 300,
) -> OutboxEvent:
    """A ~``size``-byte JSON event."""
    body = {"event_id": event_id, "class": event_class.name.lower(), "source": source}
    payload = json.dumps(body).encode()
    payload += b" " * max(0, size - len(payload))
    return OutboxEvent(
        event_id=event_id,
        event_class=event_class,
        kind="telemetry.reading" if event_class is EventClass.TELEMETRY else "condition.shock",
        payload=payload,
        dedup_key=dedup_key,
        source=source,
    )
