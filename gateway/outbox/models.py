"""Values that cross the outbox boundary: what the pipeline hands in, what the uplink leases.

All are immutable and slotted; the uplink and the pipeline depend on these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, IntEnum
from typing import NamedTuple


class EventClass(IntEnum):
    """Priority class of an event; a lower value is sent first."""

    ALARM = 0
    HANDOFF = 1
    PRESENCE = 2
    STATUS = 3
    TELEMETRY = 4


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event the pipeline asks the outbox to keep until the broker has it."""

    event_id: str
    event_class: EventClass
    kind: str
    payload: bytes
    #: Idempotency key (e.g. ``label:0011223344556677:seq:42``); ``None`` means ``event_id``.
    dedup_key: str | None = None
    #: Device / label id: order is kept within (class, source).
    source: str = ""

    @property
    def key(self) -> str:
        return self.event_id if self.dedup_key is None else self.dedup_key


class AcceptStatus(Enum):
    """What happened to one event handed to ``accept``."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    #: No room, and nothing the rules allow to evict for this class.
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """Per-event outcome, aligned with the input sequence; everything ACCEPTED is committed."""

    statuses: tuple[AcceptStatus, ...]


class LeasedEvent(NamedTuple):
    """An event handed to the uplink; it stays stored until ``ack`` / ``reject``.

    Immutable like the others, but a named tuple: the uplink leases tens of thousands a
    second, and a tuple is built several times faster than a frozen dataclass."""

    row_id: int
    event_id: str
    event_class: EventClass
    kind: str
    payload: bytes
    source: str
    #: Wall clock at accept (POSIX seconds), for information only: TTL never uses it.
    accepted_wall_s: float
    #: Remaining TTL on the store's monotonic clock; ``None`` = no TTL (MQTT 5 message expiry).
    expires_in_s: float | None

    @property
    def accepted_at(self) -> datetime:
        """:attr:`accepted_wall_s` as a UTC datetime (made on demand: leasing is hot)."""
        return datetime.fromtimestamp(self.accepted_wall_s, UTC)


@dataclass(frozen=True, slots=True)
class ClassStats:
    """Depth of one class."""

    event_class: EventClass
    depth: int
    bytes: int
    oldest_age_s: float | None


@dataclass(frozen=True, slots=True)
class LossCount:
    """Events of one class lost for one reason since the store was created."""

    event_class: EventClass
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """A snapshot of the store for metrics, ``gateway.status`` and ``tagrelay outbox stats``."""

    store_epoch: str
    schema_version: int
    classes: tuple[ClassStats, ...]
    total_bytes: int
    max_bytes: int
    #: Set after the disk filled up below ``max_bytes``: the store evicts down to this.
    disk_full_cap_bytes: int | None
    leased: int
    dead_letters: int
    losses: tuple[LossCount, ...]
    #: Files moved aside at start-up because the store was corrupt (empty when healthy).
    quarantined: tuple[str, ...]
    #: Process-lifetime counters (commits = transactions = fsyncs of the WAL).
    duplicates: int
    refused: int
    commits: int
    #: De-duplication keys remembered (accepted within ``dedup_retention_s``, up to the cap).
    dedup_keys: int = 0
    #: Set while the key cap, not the retention, limits the memory: it covers only this long.
    dedup_shortened_to_s: float | None = None

    @property
    def depth(self) -> int:
        return sum(c.depth for c in self.classes)

    @property
    def lost(self) -> int:
        return sum(loss.count for loss in self.losses)
