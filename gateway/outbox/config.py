"""Configuration of the outbox: capacity, per-class TTL, group commit and fairness tunables.

Parsed once with the daemon configuration and handed to :class:`gateway.outbox.Outbox`.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from gateway.outbox.models import EventClass

#: 256 MiB holds days of telemetry from a busy truck and fits any SD card we ship on.
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024

#: Alarms and handoffs are evidence for claims: kept a month. Presence / status lose meaning
#: after a few days, raw telemetry after two. ``None`` = never expires.
DEFAULT_TTL_S: Final[dict[EventClass, float | None]] = {
    EventClass.ALARM: 30 * 86400.0,
    EventClass.HANDOFF: 30 * 86400.0,
    EventClass.PRESENCE: 7 * 86400.0,
    EventClass.STATUS: 3 * 86400.0,
    EventClass.TELEMETRY: 2 * 86400.0,
}

#: Share of the uplink each class gets while all are backlogged: alarms dominate, telemetry
#: still gets 1 slot in ~93, so no class starves.
DEFAULT_CLASS_WEIGHTS: Final[dict[EventClass, int]] = {
    EventClass.ALARM: 64,
    EventClass.HANDOFF: 16,
    EventClass.PRESENCE: 8,
    EventClass.STATUS: 4,
    EventClass.TELEMETRY: 1,
}


#: Room for one checkpoint and one eviction on a full disk, a small fraction of any card.
DEFAULT_DISK_RESERVE_BYTES: Final = 512 * 1024


class OutboxConfig(BaseModel):
    """Tunables of one outbox store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Cap on the logical bytes of queued events (payload + ids + a per-row overhead).
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0)
    #: Time to live per class, counted on the store's monotonic clock (see docs/outbox.md).
    ttl_s: dict[EventClass, float | None] = Field(default_factory=lambda: dict(DEFAULT_TTL_S))
    #: How long an accept waits for others to share its transaction (one fsync for all).
    group_commit_window_ms: float = Field(default=5.0, ge=0.0)
    #: A group commits at once when it holds this many events.
    group_commit_max_events: int = Field(default=1000, gt=0)
    #: Acks are deleted in batches: at most this delay, or at once at ``ack_batch_max`` ids.
    ack_flush_delay_ms: float = Field(default=200.0, ge=0.0)
    ack_batch_max: int = Field(default=1000, gt=0)
    #: A dedup key is answered DUPLICATE for at least this long (store clock) after it was
    #: accepted, also across restarts: docs/protocol.md promises 24 h for a (label, seq).
    dedup_retention_s: float = Field(default=86400.0, gt=0.0)
    #: ... as long as fewer than this many keys were accepted since (~10 B of RAM a key, 8 B
    #: on disk): 1,000,000 keys cover 24 h at 11.6 keyed events/s. Past it the oldest keys
    #: are forgotten early, logged once; the platform still de-duplicates by event id.
    dedup_max_keys: int = Field(default=1_000_000, gt=0)
    #: Weighted fair share of each class in ``lease``.
    class_weights: dict[EventClass, int] = Field(
        default_factory=lambda: dict(DEFAULT_CLASS_WEIGHTS)
    )
    #: WAL pages between automatic checkpoints: large so that a page written by an accept and
    #: rewritten by its ack reaches the main file once (SD-card wear), bounded for recovery time.
    checkpoint_pages: int = Field(default=4096, gt=0)
    #: Bytes held in a reserve file beside the store and released when the disk is full, so
    #: that the checkpoint and the eviction that make room can still write (0 = none).
    #: Measured on a full disk: see docs/outbox.md "Disk full and I/O errors".
    disk_reserve_bytes: int = Field(default=DEFAULT_DISK_RESERVE_BYTES, ge=0)
    #: How often expired rows are swept (and the store clock persisted when idle).
    sweep_interval_s: float = Field(default=10.0, gt=0.0)

    @field_validator("ttl_s", "class_weights", mode="before")
    @classmethod
    def _class_names(cls, value: object) -> object:
        """Accept class names as keys (``telemetry = 86400`` in TOML) as well as numbers;
        a TTL that is not > 0 is refused here, named by its class (not by its number)."""
        if not isinstance(value, dict):
            return value
        out: dict[object, object] = {}
        names = ", ".join(c.name.lower() for c in EventClass)
        for key, item in value.items():
            if isinstance(key, str) and key.upper() in EventClass.__members__:
                event_class = EventClass[key.upper()]
            elif isinstance(key, int) and not isinstance(key, bool) and key in set(EventClass):
                event_class = EventClass(key)
            elif isinstance(key, str) and key.isdigit() and int(key) in set(EventClass):
                event_class = EventClass(int(key))
            else:
                raise ValueError(f"{key!r} is not an event class (one of {names})")
            out[event_class] = item
        return out

    @field_validator("ttl_s")
    @classmethod
    def _positive_ttl(cls, value: dict[EventClass, float | None]) -> dict[EventClass, float | None]:
        for event_class, ttl in value.items():
            if ttl is not None and not ttl > 0:  # also rejects NaN
                raise ValueError(f"ttl_s for {event_class.name.lower()} must be > 0 seconds")
        # The classes not given keep their defaults (and show them in ``config show``).
        return {c: value.get(c, DEFAULT_TTL_S[c]) for c in EventClass}

    @field_validator("class_weights")
    @classmethod
    def _all_weights(cls, value: dict[EventClass, int]) -> dict[EventClass, int]:
        return {c: value.get(c, DEFAULT_CLASS_WEIGHTS[c]) for c in EventClass}

    @field_serializer("ttl_s", "class_weights")
    def _by_name(self, value: dict[EventClass, object]) -> dict[str, object]:
        """Classes by name in ``config show`` and every JSON view, not as numbers 0-4."""
        return {c.name.lower(): item for c, item in value.items()}

    def ttl_for(self, event_class: EventClass) -> float | None:
        return self.ttl_s.get(event_class, DEFAULT_TTL_S[event_class])

    def weight_for(self, event_class: EventClass) -> int:
        return max(1, self.class_weights.get(event_class, DEFAULT_CLASS_WEIGHTS[event_class]))
