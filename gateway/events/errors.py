"""The typed error of the events package: a payload that is not a valid event."""

from __future__ import annotations

import enum

from gateway.errors import GatewayError

__all__ = ["EventError", "EventErrorReason"]


class EventErrorReason(enum.StrEnum):
    """Why a payload was refused."""

    #: Not JSON (or not UTF-8).
    MALFORMED_JSON = "malformed_json"
    #: JSON, but not an object.
    NOT_AN_OBJECT = "not_an_object"
    #: No ``kind``, or one that this version does not know.
    UNKNOWN_KIND = "unknown_kind"
    #: A known kind whose fields do not validate (missing, extra, wrong type, naive time ...).
    INVALID = "invalid"


class EventError(GatewayError):
    """A payload that is not a valid event; ``reason`` says which way, ``detail`` where."""

    def __init__(self, reason: EventErrorReason, detail: str, *, kind: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        #: The ``kind`` the payload claimed, when it had a string one.
        self.kind = kind
