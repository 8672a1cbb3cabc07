"""The uplink's own configuration section (``[uplink]`` in the TOML file).

Parsed once at start by :mod:`gateway.config` and handed to :class:`gateway.uplink.Uplink`.
Secrets (the MQTT password) are :class:`pydantic.SecretStr` so that ``repr``, logs and
``tagrelay config show`` print them redacted; they come from a file or an environment variable,
resolved by the loader, never from deep inside the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["BatchingConfig", "BrokerEndpoint", "TlsConfig", "UplinkConfig", "parse_endpoint"]

#: How long the broker keeps the gateway's session (its command subscription and the commands
#: queued for it) after the connection is gone: a van spends a shift, a weekend in a depot
#: without coverage or a week in the workshop offline, and a ``route.load`` sent meanwhile must
#: still arrive. Longer than a week and the platform has long since re-planned the route; the
#: broker's memory for a gateway that was scrapped is bounded too. docs/mqtt.md, "Sessions".
SESSION_EXPIRY_DEFAULT_S: Final = 7 * 24 * 3600
#: MQTT 5's session expiry is a four-byte count of seconds; 0xFFFFFFFF means "never expires",
#: which we do not allow (a scrapped gateway would hold broker memory forever).
SESSION_EXPIRY_MAX_S: Final = 0xFFFF_FFFE
#: A site's claim summary: a few hundred items of about 120 bytes each. Bigger messages are
#: refused both ways (a neighbour's bug or a hostile publisher must not cost us memory).
SITE_MAX_BYTES_DEFAULT: Final = 65_536
#: Fallback brokers a gateway may rotate through: the nodes of one cluster (three to five in
#: practice) or a second site; more is a configuration mistake, not a fleet.
FALLBACK_BROKERS_MAX: Final = 16


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """One broker node the uplink may connect to."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str, default_port: int) -> BrokerEndpoint:
    """``host``, ``host:port``, ``[v6-address]`` or ``[v6-address]:port``; raises ValueError."""
    text = text.strip()
    if "://" in text:
        raise ValueError(f"{text!r}: give host or host:port, not a URL (transport says tls/tcp)")
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: an IPv6 address is written [address] or [address]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, [address]:port")
    else:
        host = text
    if not host or any(c.isspace() or c in "/#+" for c in host):
        raise ValueError(f"{text!r}: not a host name or address")
    port = default_port
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return BrokerEndpoint(host, port)


class TlsConfig(BaseModel):
    """TLS 1.2+ with server certificate and host name verification; optional mutual TLS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_file: Path | None = Field(
        default=None, description="CA bundle for the broker's certificate; None = system CAs"
    )
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="client private key (mutual TLS)")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (mutual TLS)")
        return self


class BatchingConfig(BaseModel):
    """Telemetry batching: many events in one message per topic (a JSON array)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    max_events: int = Field(default=500, ge=1, le=10_000)
    max_bytes: int = Field(default=64_000, ge=1_000, le=1_000_000, description="before compression")
    max_age_ms: int = Field(default=2_000, ge=0, le=600_000)
    compression: Literal["none", "zlib"] = "zlib"
    max_in_flight: int = Field(
        default=4,
        ge=1,
        le=1_000,
        description=(
            "batches awaiting their PUBACK at once: a few keep the link busy, while a whole "
            "window of 500-event batches would put megabytes ahead of an alarm"
        ),
    )


class UplinkConfig(BaseModel):
    """Where and how the gateway talks MQTT to the platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "localhost"
    port: int = Field(default=8883, ge=1, le=65535)
    fallback_brokers: tuple[str, ...] = Field(
        default=(),
        max_length=FALLBACK_BROKERS_MAX,
        description=(
            'other nodes of the same broker cluster, "host" or "host:port" (port defaults to '
            "port): when a connect fails or a connection is lost the uplink tries the next one, "
            "host first, round and round, with the same backoff, TLS and credentials"
        ),
    )
    protocol: Literal["5", "3.1.1"] = "5"
    transport: Literal["tls", "tcp"] = Field(
        default="tls", description='"tcp" (plaintext) only when asked for explicitly'
    )
    tls: TlsConfig = TlsConfig()
    username: str | None = None
    password: SecretStr | None = Field(
        default=None, description="prefer password_file or password_env over an inline value"
    )
    password_file: Path | None = None
    password_env: str | None = None
    topic_prefix: str = Field(default="tagrelay/v1", pattern=r"^[^#+\s]+[^/#+\s]$")
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    in_flight_window: int = Field(default=50, ge=1, le=1000)
    connect_timeout_s: float = Field(default=15.0, gt=0, le=300)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600)
    batching: BatchingConfig = BatchingConfig()
    command_max_bytes: int = Field(default=16_384, ge=256, le=1_000_000)
    command_results_kept: int = Field(default=1_024, ge=1, le=100_000)
    session_expiry_s: int = Field(
        default=SESSION_EXPIRY_DEFAULT_S,
        ge=0,
        le=SESSION_EXPIRY_MAX_S,
        description=(
            "how long the broker keeps our session and queues commands while we are offline; "
            "0 = no persistent session (commands sent while offline are lost)"
        ),
    )
    site: str | None = Field(
        default=None,
        pattern=r"^[^/#+\s]+$",
        max_length=128,
        description=(
            "the site (cross-dock) whose door gateways exchange claims on "
            "<prefix>/site/<site>/claims/<gateway_id>; None = no site topic"
        ),
    )
    site_max_bytes: int = Field(default=SITE_MAX_BYTES_DEFAULT, ge=256, le=1_000_000)

    @field_validator("fallback_brokers")
    @classmethod
    def _endpoints_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            parse_endpoint(text, 1)  # the port is checked here, the duplicates below
        return value

    def endpoints(self) -> tuple[BrokerEndpoint, ...]:
        """The broker nodes in the order they are tried: ``host:port`` first."""
        primary = BrokerEndpoint(self.host, self.port)
        return (primary, *(parse_endpoint(t, self.port) for t in self.fallback_brokers))

    @model_validator(mode="after")
    def _check(self) -> Self:
        endpoints = self.endpoints()
        if len(set(endpoints)) != len(endpoints):
            raise ValueError("fallback_brokers repeats a broker (or the host and port)")
        sources = [self.password, self.password_file, self.password_env]
        if sum(s is not None for s in sources) > 1:
            raise ValueError("give at most one of password, password_file, password_env")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.transport == "tcp" and (
            self.tls.cert_file is not None or self.tls.ca_file is not None
        ):
            raise ValueError('tls settings given but transport = "tcp" (plaintext)')
        return self
