"""cmdmon datagrams recorded from a real chronyd 4.3 and chronyc on loopback.

The replies come from ``chronyd -x`` (clock control disabled): one following an NTP server on
loopback (stratum 2), one with no source at all, one serving its own clock (``local stratum
10``), and its refusal of a request of protocol version 5. The request is ``chronyc
tracking``'s.
"""

from __future__ import annotations

from typing import Final

from protocols.chrony import TRACKING_PACKET_BYTES

#: Where a reply carries its request's sequence number.
SEQUENCE_SLICE: Final = slice(16, 20)

#: The sequence number of the recorded replies' request.
SEQUENCE: Final = 0x1234ABCD
#: ``chronyc tracking``'s request (sequence 0x87521f63): 104 bytes, zero padding after the header.
CHRONYC_REQUEST: Final = bytes.fromhex(
    "060100000021000087521f63" + "00" * (TRACKING_PACKET_BYTES - 12)
)
#: Following 127.0.0.1 (an NTP server on loopback), stratum 2, leap normal.
SYNCED: Final = bytes.fromhex(
    "060200000021000500000000000000001234abcd00000000000000007f0000017f0000010000000000000000"
    "000000000001000000020000000000006b11ab8f25e76129db64f36bbe8c3ae4d0d83829fb3c0cbcef715125"
    "feb2a08dde930918dccbacd7fa826a59"
)
#: No source: reference 0, stratum 0, leap unsynchronised, root delay and dispersion 1 s.
UNSYNCED: Final = bytes.fromhex(
    "060200000021000500000000000000001234abcd000000000000000000000000000000000000000000000000"
    "0000000000000000000000030000000000000000000000000000000000000000000000000000000000000000"
    "00000000048000000480000000000000"
)
#: ``local stratum 10``: reference LOCL (0x7F7F0101), leap normal, but no real source.
LOCAL: Final = bytes.fromhex(
    "060200000021000500000000000000001234abcd00000000000000007f7f0101000000000000000000000000"
    "0000000000000000000a0000000000006b11ab8f0ddc1e2e0000000000000000000000000000000000000000"
    "00000000000000000000000000000000"
)
#: chronyd's answer to a version-5 request (sequence 7): status 18, STT_BADPKTVERSION.
BAD_VERSION: Final = bytes.fromhex("06020000002100010012000000000000000000070000000000000000")


def with_sequence(reply: bytes, sequence: bytes) -> bytes:
    """A recorded reply answering another request (``sequence``: the request's bytes 8-11)."""
    return reply[: SEQUENCE_SLICE.start] + sequence + reply[SEQUENCE_SLICE.stop :]
