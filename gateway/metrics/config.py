"""The ``[metrics]`` section: a Prometheus endpoint on a loopback port, off by default."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_METRICS_PORT", "MetricsConfig"]

#: The port tagrelay's examples use (a free one in the range Prometheus exporters register in).
DEFAULT_METRICS_PORT: Final = 9466


class MetricsConfig(BaseModel):
    """Where ``/metrics`` is served. Only loopback addresses: the endpoint has no
    authentication, and a node exporter or an SSH tunnel is how a scraper reaches it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_METRICS_PORT, ge=1, le=65_535)

    @field_validator("bind")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        try:
            address = ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        if not address.is_loopback:
            raise ValueError(f"{value} is not a loopback address (127.0.0.0/8 or ::1)")
        return value

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}/metrics"
