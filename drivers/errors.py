"""The exception root of the drivers package; foreign errors are translated at the edge."""

from __future__ import annotations


class DriverError(Exception):
    """A device or transport failed in a way the driver reports upward."""
