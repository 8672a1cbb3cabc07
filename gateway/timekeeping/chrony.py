"""Asking chronyd how well it keeps the system clock: one TRACKING request over its UDP
monitoring port on loopback.

chronyd answers monitoring requests (``chronyc tracking``) from local processes without any
privilege, so the daemon needs neither ``adjtimex(2)`` (which the unit's ``ProtectClock=yes``
refuses) nor access to chronyd's Unix socket (``/run/chrony`` is chrony's own 0750 directory,
and a client must bind a reply socket there). The packets are :mod:`protocols.chrony`'s.
"""

from __future__ import annotations

import secrets
import socket
import time
from typing import Final

from protocols.chrony import (
    CMDMON_PORT,
    ChronyError,
    ChronyRejectReason,
    ChronyTracking,
    build_tracking_request,
    decode_tracking_reply,
)

__all__ = [
    "CHRONY_HOST",
    "CHRONY_QUERY_TIMEOUT_S",
    "ChronyUnavailable",
    "query_chrony_tracking",
]

#: chronyd binds its command port to 127.0.0.1 and ::1 by default (``bindcmdaddress``).
CHRONY_HOST: Final = "127.0.0.1"
#: chronyd answers on loopback within a millisecond even on a busy Pi; longer means it is
#: stuck, and the clock state then comes from elsewhere. The query never runs on the event loop.
CHRONY_QUERY_TIMEOUT_S: Final = 0.5
_MAX_DATAGRAM_BYTES: Final = 2048


class ChronyUnavailable(Exception):
    """No answer from chronyd: nothing listens on the port, it did not answer in time, or the
    socket failed (a sandbox refusing it, for example)."""


def query_chrony_tracking(
    host: str = CHRONY_HOST,
    port: int = CMDMON_PORT,
    timeout_s: float = CHRONY_QUERY_TIMEOUT_S,
) -> ChronyTracking:
    """chronyd's tracking report. Blocks for at most ``timeout_s``.

    Raises :class:`ChronyUnavailable` when chronyd cannot be asked and
    :class:`~protocols.chrony.ChronyError` when it answers with something else than a tracking
    report (a refusal, another protocol version). A stray datagram that answers another request
    is skipped, not taken.
    """
    sequence = secrets.randbits(32)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout_s
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        raise ChronyUnavailable(f"no UDP socket: {exc}") from exc
    with sock:
        try:
            # Connected: only chronyd's address is heard, and a closed port is reported
            # (ICMP port unreachable -> ECONNREFUSED) instead of waiting for the timeout.
            sock.connect((host, port))
            sock.send(build_tracking_request(sequence))
        except OSError as exc:
            raise ChronyUnavailable(f"cannot send to {host}:{port}: {exc}") from exc
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChronyUnavailable(f"no answer from {host}:{port} within {timeout_s} s")
            sock.settimeout(remaining)
            try:
                datagram = sock.recv(_MAX_DATAGRAM_BYTES)
            except TimeoutError as exc:
                raise ChronyUnavailable(
                    f"no answer from {host}:{port} within {timeout_s} s"
                ) from exc
            except ConnectionRefusedError as exc:
                raise ChronyUnavailable(f"nothing listens on {host}:{port}") from exc
            except OSError as exc:
                raise ChronyUnavailable(f"receiving from {host}:{port}: {exc}") from exc
            try:
                return decode_tracking_reply(datagram, sequence)
            except ChronyError as exc:
                if exc.reason is not ChronyRejectReason.NOT_OUR_REPLY:
                    raise
