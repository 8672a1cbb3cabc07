"""Typed errors of the BLE advertisement decoders.

A driver receives an :class:`AdvertError` for a malformed advert of a format it recognised, counts
it by :class:`AdvertErrorReason`, and keeps scanning; the reason is data, never a parsed message.
"""

from __future__ import annotations

import enum

from protocols.errors import ProtocolError

__all__ = ["SKIPPABLE_REASONS", "AdvertError", "AdvertErrorReason"]


class AdvertErrorReason(enum.StrEnum):
    """Why an advertisement record was not decoded."""

    #: Not a format tagrelay decodes (unknown company id, service UUID, prefix or frame type).
    UNKNOWN_FORMAT = "unknown_format"
    #: A known format, but a variant we deliberately leave alone (encrypted TLM, Eddystone-EID).
    UNSUPPORTED = "unsupported"
    #: Our own format with a version this gateway does not know yet.
    UNSUPPORTED_VERSION = "unsupported_version"
    #: Fewer bytes than the format's fixed part.
    TOO_SHORT = "too_short"
    #: A length that the format does not allow (too long, or an AD length running past the end).
    BAD_LENGTH = "bad_length"
    #: A field value that the format does not allow.
    BAD_VALUE = "bad_value"


#: Reasons that mean "not ours to decode": a scanner skips these silently instead of counting
#: them as errors, because every busy dock hears phones, headsets and other vendors' beacons.
SKIPPABLE_REASONS: frozenset[AdvertErrorReason] = frozenset(
    {AdvertErrorReason.UNKNOWN_FORMAT, AdvertErrorReason.UNSUPPORTED}
)


class AdvertError(ProtocolError):
    """An advertisement record that could not be decoded."""

    def __init__(
        self, reason: AdvertErrorReason, detail: str, *, format: str | None = None
    ) -> None:
        self.reason = reason
        self.detail = detail
        #: The advert format that was being decoded, when it was recognised.
        self.format = format
        where = f"{format}: " if format else ""
        super().__init__(f"{reason.value} ({where}{detail})")
