"""Why a SmartLabel frame was rejected, as data.

The splitter and the decoder raise or report :class:`FrameError` with a :class:`RejectReason`;
drivers count by reason and keep reading, so a reason is an enum, never a parsed message.
"""

from __future__ import annotations

import enum

from protocols.errors import ProtocolError

__all__ = ["BuildError", "FrameError", "RejectReason"]


class RejectReason(enum.StrEnum):
    """Every way a frame on the serial link can be refused (docs/protocol.md, "Rejects")."""

    BAD_COBS = "bad_cobs"
    """The bytes between two delimiters are not a valid COBS encoding."""
    TOO_LONG = "too_long"
    """More bytes than the maximum frame length arrived without a delimiter."""
    TRUNCATED = "truncated"
    """The frame is shorter than a header plus the CRC."""
    BAD_CRC = "bad_crc"
    """The CRC-16/IBM-3740 trailer does not match the frame."""
    UNKNOWN_VERSION = "unknown_version"
    """The version byte is not one this gateway speaks."""
    UNKNOWN_TYPE = "unknown_type"
    """The message type byte is not assigned."""
    BAD_LENGTH = "bad_length"
    """The frame length does not match what its message type requires."""
    BAD_VALUE = "bad_value"
    """A field holds a value outside its documented range (an enum code, a latitude...)."""


class FrameError(ProtocolError):
    """A frame that cannot be accepted; ``reason`` says why, ``detail`` is for the log line."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class BuildError(ProtocolError):
    """A message that cannot be put on the wire: a field is outside its wire range."""

    def __init__(self, message_format: str, detail: str) -> None:
        super().__init__(f"cannot build {message_format}: {detail}")
        self.message_format = message_format
        self.detail = detail
