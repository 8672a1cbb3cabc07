"""The exception root of the gateway package."""

from __future__ import annotations


class GatewayError(Exception):
    """A gateway component failed in a way its caller must handle."""
