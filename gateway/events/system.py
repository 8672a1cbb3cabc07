"""The gateway's own messages: ``gateway.status`` (the retained birth / will the uplink publishes)
and ``outbox.loss`` (the outbox's report of events it had to evict or expire).

Neither is built by the pipeline, and neither carries the event envelope: these models describe
the payloads exactly as the uplink and the outbox write them, so that they have a JSON Schema
and a parser like every other kind. ``GatewayStatus`` here is field for field the uplink's
model (a test holds them together); the events package does not import the uplink, so that the
domain packages, which import events, do not pull in the MQTT stack.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.events.base import UtcDatetime, require_kind

__all__ = ["GatewayStatus", "LossEntry", "OutboxLoss"]


class GatewayStatus(BaseModel):
    """Published retained on ``<prefix>/<gateway_id>/status`` (not on the event topics): the
    birth after every connect, the death as the last will (broker) or on a clean shutdown."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, json_schema_extra=require_kind
    )

    kind: Literal["gateway.status"] = "gateway.status"
    gateway_id: str
    state: Literal["online", "offline"]
    version: str
    """The tagrelay version."""
    config_hash: str
    """A SHA-256 prefix of the effective configuration, secrets redacted."""
    clock_state: str
    """The time source (``gps``, ``ntp``, ``rtc``, ``unsynced``) once known; ``unknown``
    otherwise. Treat any other value as not known to be synchronised."""
    outbox_depth: int | None
    """Events waiting in the outbox; null in the will (unknown when the broker sends it)."""
    time: datetime | None
    """When the status was published; null in the will."""
    reason: str | None = None
    """Why offline: ``shutdown`` or ``connection lost`` (the will)."""


class LossEntry(BaseModel):
    """Events of one class lost for one reason."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )

    event_class: Literal["alarm", "handoff", "presence", "status", "telemetry"] = Field(
        alias="class"
    )
    """The outbox class (``class`` on the wire)."""
    reason: Literal["evicted", "expired"]
    """``evicted`` to make room (lowest class, oldest first); ``expired`` past its class TTL."""
    count: int = Field(ge=1)


def _absent(value: object) -> bool:
    return value is None


class OutboxLoss(BaseModel):
    """Emitted by the outbox (class ``status``, on the event topic ``.../events/outbox/loss``)
    when it evicted or expired events, or started a new store after finding the old one
    corrupt. Losses are merged into a report that has not been sent yet."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, json_schema_extra=require_kind
    )

    kind: Literal["outbox.loss"] = "outbox.loss"
    event_id: str = Field(min_length=1)
    """``outbox.loss:<store_epoch>:<sequence>``: unique per store, not content-derived."""
    store_epoch: str
    """The store's epoch: a new one after a corrupt store was replaced."""
    since: UtcDatetime
    """The first loss this report covers."""
    at: UtcDatetime
    """The latest loss this report covers."""
    count: int = Field(ge=0)
    """Events lost in total (the sum of ``losses``)."""
    losses: tuple[LossEntry, ...]
    first_row_id: int | None
    """The lowest outbox row id lost (null when none: a corrupt-store report)."""
    last_row_id: int | None
    first_event_id: str | None
    """The ``event_id`` of the first row lost."""
    last_event_id: str | None
    reason: Literal["store_corrupt"] | None = Field(default=None, exclude_if=_absent)
    """Present only when the store was found corrupt and replaced."""
    quarantined: tuple[str, ...] | None = Field(default=None, exclude_if=_absent)
    """With ``store_corrupt``: the files moved aside."""
