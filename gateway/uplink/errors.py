"""Errors of the uplink, with the reason as data (an enum), not as a message to parse."""

from __future__ import annotations

from enum import Enum

from gateway.errors import GatewayError

__all__ = ["UplinkError", "UplinkErrorReason"]


class UplinkErrorReason(Enum):
    """Why a connection attempt or an operation on the broker failed."""

    TLS_HANDSHAKE = "tls_handshake"  # protocol / version / client certificate refused
    TLS_VERIFY = "tls_verify"  # the server certificate or its host name did not verify
    TLS_CONFIG = "tls_config"  # our CA / certificate / key files could not be loaded
    CONNECT_FAILED = "connect_failed"  # TCP connect refused, unreachable, DNS
    CONNECT_TIMEOUT = "connect_timeout"  # no CONNACK in time
    CONNECT_REFUSED = "connect_refused"  # the broker answered CONNACK with a failure code
    CONNECTION_LOST = "connection_lost"  # an established connection dropped
    #: Another client with our client id (a cloned gateway_id) took the session over.
    SESSION_TAKEN_OVER = "session_taken_over"
    SUBSCRIBE_REFUSED = "subscribe_refused"
    SECRET_UNAVAILABLE = "secret_unavailable"  # password file / variable missing


class UplinkError(GatewayError):
    """The uplink could not do what was asked; ``reason`` says which kind of failure."""

    def __init__(self, reason: UplinkErrorReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
