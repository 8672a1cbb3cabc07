"""Typed errors of the GPS decoders (NMEA 0183 and u-blox UBX).

Every bad sentence or frame becomes a :class:`GpsError` with a :class:`GpsRejectReason`; the
stream decoder counts them per reason and keeps reading.
"""

from __future__ import annotations

import enum

from protocols.errors import ProtocolError

__all__ = ["GpsError", "GpsRejectReason"]


class GpsRejectReason(enum.StrEnum):
    """Why a sentence or frame was not turned into a position."""

    #: NMEA XOR checksum or UBX Fletcher checksum does not match.
    BAD_CHECKSUM = "bad_checksum"
    #: Not a well-formed sentence or frame (missing fields, bad numbers, broken framing).
    MALFORMED = "malformed"
    #: A valid message that carries no position tagrelay uses (TXT, ZDA, UBX-ACK, ...).
    UNSUPPORTED_MESSAGE = "unsupported_message"
    #: Longer than any sentence or frame we accept: line noise, not GPS.
    TOO_LONG = "too_long"


class GpsError(ProtocolError):
    """A GPS sentence or frame that could not be decoded."""

    def __init__(self, reason: GpsRejectReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value} ({detail})")
