"""Typed failures of the tag registry: a bad tag id, a bad GS1 key.

Both are also ``ValueError``s, so that a pydantic validator that raises them turns into an
ordinary validation error (a command answered ``invalid`` with the reason, a config issue).
"""

from __future__ import annotations

from enum import Enum

from gateway.errors import GatewayError

__all__ = ["Gs1Error", "Gs1ErrorReason", "RegistryError", "TagIdError", "TagIdErrorReason"]


class RegistryError(GatewayError):
    """Root of the registry's errors."""


class TagIdErrorReason(Enum):
    """Why a text is not a tag id."""

    #: No ``scheme:`` prefix, or a scheme we do not know.
    UNKNOWN_SCHEME = "unknown_scheme"
    #: The scheme is known but the rest does not have its syntax.
    BAD_SYNTAX = "bad_syntax"
    #: A number outside its field (an iBeacon major above 65535, ...).
    OUT_OF_RANGE = "out_of_range"


class TagIdError(RegistryError, ValueError):
    """``text`` is not a tag id; ``reason`` says why, the message says what was expected."""

    def __init__(self, reason: TagIdErrorReason, detail: str) -> None:
        super().__init__(f"bad tag id ({reason.value}): {detail}")
        self.reason = reason
        self.detail = detail


class Gs1ErrorReason(Enum):
    """Why a text is not a usable GS1 key."""

    #: Neither a GS1 Digital Link URI nor an EPC URN (or malformed as one).
    BAD_SYNTAX = "bad_syntax"
    #: Digits or length wrong for the key (an SSCC must be 18 digits, ...).
    BAD_LENGTH = "bad_length"
    #: A character outside the key's character set (GS1 AI encodable set 82, digits).
    BAD_CHARACTER = "bad_character"
    #: The check digit does not match; ``expected`` has the right one.
    BAD_CHECK_DIGIT = "bad_check_digit"
    #: A valid key of a kind that cannot stand here (a GTIN without serial as an asset, ...).
    UNSUPPORTED_KEY = "unsupported_key"


class Gs1Error(RegistryError, ValueError):
    """``text`` is not a valid GS1 key; ``expected_check_digit`` is set for BAD_CHECK_DIGIT."""

    def __init__(
        self, reason: Gs1ErrorReason, detail: str, *, expected_check_digit: int | None = None
    ) -> None:
        super().__init__(f"bad GS1 key ({reason.value}): {detail}")
        self.reason = reason
        self.detail = detail
        self.expected_check_digit = expected_check_digit
