"""The gateway's retained presence on ``.../status``: birth after every connect, death as the
last will (published by the broker if we vanish) and by ourselves on a clean shutdown."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["GatewayStatus"]


class GatewayStatus(BaseModel):
    """The ``gateway.status`` payload (JSON, retained)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["gateway.status"] = "gateway.status"
    gateway_id: str
    state: Literal["online", "offline"]
    version: str
    config_hash: str
    clock_state: str
    outbox_depth: int | None  # None in the will: unknown at the time the broker sends it
    time: datetime | None  # None in the will, for the same reason
    reason: str | None = None  # why offline: "shutdown" or "connection lost" (the will)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
