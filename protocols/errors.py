"""The exception root of the protocols package.

Every decoder raises a subclass of :class:`ProtocolError` for bad input and nothing else, so
that a driver can count the reason, log once per burst, and keep reading.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Input that a decoder or splitter cannot accept."""
