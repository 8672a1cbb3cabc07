"""chronyd's monitoring protocol (cmdmon), the TRACKING request and its reply.

The protocol as data, with the field names of chrony's ``candm.h`` (protocol version 6): the
request and reply headers and the ``RPY_Tracking`` record, big-endian on the wire. chronyd
answers monitoring requests such as TRACKING over UDP (port 323, bound to 127.0.0.1 and ::1 by
default) to any local process, without privileges or authentication.

:func:`build_tracking_request` and :func:`decode_tracking_reply` are pure: the socket lives in
:mod:`gateway.timekeeping.chrony`. A reply that is not a successful TRACKING answer to our
request becomes a :class:`ChronyError` with a :class:`ChronyRejectReason`; nothing else is
raised. :func:`build_tracking_reply` writes the bytes chronyd sends, for tests and fakes.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from dataclasses import dataclass
from typing import Any, Final

from construct import Bytes, ConstructError, Int8ub, Int16ub, Int32sb, Int32ub, Struct

from protocols.errors import ProtocolError

__all__ = [
    "CMDMON_PORT",
    "LOCAL_REFERENCE_ID",
    "MAX_SYNCED_ERROR_S",
    "PROTO_VERSION_NUMBER",
    "REPLY_HEADER",
    "REQUEST_HEADER",
    "REQ_TRACKING",
    "RPY_TRACKING",
    "RPY_TRACKING_DATA",
    "STT_SUCCESS",
    "TRACKING_PACKET_BYTES",
    "ChronyError",
    "ChronyRejectReason",
    "ChronyTracking",
    "LeapStatus",
    "build_tracking_reply",
    "build_tracking_request",
    "decode_float",
    "decode_tracking_reply",
    "encode_float",
]

#: chronyd's default command port (``cmdport``).
CMDMON_PORT: Final = 323
#: ``PROTO_VERSION_NUMBER`` of candm.h: chronyd 2.2 and later (padded requests, no auth).
PROTO_VERSION_NUMBER: Final = 6
PKT_TYPE_CMD_REQUEST: Final = 1
PKT_TYPE_CMD_REPLY: Final = 2
REQ_TRACKING: Final = 33
RPY_TRACKING: Final = 5
STT_SUCCESS: Final = 0
#: chronyd's reference id while it serves its own clock (``local stratum``): not synchronised.
LOCAL_REFERENCE_ID: Final = 0x7F7F0101
#: The bound below which systemd (and :mod:`gateway.timekeeping.system`) calls a clock
#: synchronised: the kernel's NTP_PHASE_LIMIT, 16 s.
MAX_SYNCED_ERROR_S: Final = 16.0

#: ``TV_NOHIGHSEC``: the high word of a 32-bit timestamp.
_TV_NOHIGHSEC: Final = 0x7FFF_FFFF
_FLOAT_EXP_BITS: Final = 7
_FLOAT_COEF_BITS: Final = 32 - _FLOAT_EXP_BITS
_FLOAT_EXP_MIN: Final = -(1 << (_FLOAT_EXP_BITS - 1))
_FLOAT_EXP_MAX: Final = -_FLOAT_EXP_MIN - 1
_FLOAT_COEF_MAX: Final = (1 << (_FLOAT_COEF_BITS - 1)) - 1
_IPADDR_UNSPEC: Final = 0
_IPADDR_INET4: Final = 1
_IPADDR_INET6: Final = 2
_IPADDR_ID: Final = 3

#: ``CMD_Request`` up to its ``data`` union.
REQUEST_HEADER: Final = Struct(
    "version" / Int8ub,
    "pkt_type" / Int8ub,
    "res1" / Int8ub,
    "res2" / Int8ub,
    "command" / Int16ub,
    "attempt" / Int16ub,
    "sequence" / Int32ub,
    "pad1" / Int32ub,
    "pad2" / Int32ub,
)
#: ``CMD_Reply`` up to its ``data`` union.
REPLY_HEADER: Final = Struct(
    "version" / Int8ub,
    "pkt_type" / Int8ub,
    "res1" / Int8ub,
    "res2" / Int8ub,
    "command" / Int16ub,
    "reply" / Int16ub,
    "status" / Int16ub,
    "pad1" / Int16ub,
    "pad2" / Int16ub,
    "pad3" / Int16ub,
    "sequence" / Int32ub,
    "pad4" / Int32ub,
    "pad5" / Int32ub,
)
IP_ADDR: Final = Struct("addr" / Bytes(16), "family" / Int16ub, "_pad" / Int16ub)
TIMESPEC: Final = Struct("tv_sec_high" / Int32ub, "tv_sec_low" / Int32ub, "tv_nsec" / Int32ub)
#: ``RPY_Tracking``; the ``Float`` fields stay raw 32-bit words here (see :func:`decode_float`).
RPY_TRACKING_DATA: Final = Struct(
    "ref_id" / Int32ub,
    "ip_addr" / IP_ADDR,
    "stratum" / Int16ub,
    "leap_status" / Int16ub,
    "ref_time" / TIMESPEC,
    "current_correction" / Int32sb,
    "last_offset" / Int32sb,
    "rms_offset" / Int32sb,
    "freq_ppm" / Int32sb,
    "resid_freq_ppm" / Int32sb,
    "skew_ppm" / Int32sb,
    "root_delay" / Int32sb,
    "root_dispersion" / Int32sb,
    "last_update_interval" / Int32sb,
)
#: A TRACKING reply's length; the request is padded to the same length (chronyd refuses a
#: shorter one: its padding rule stops the command port from amplifying traffic).
TRACKING_PACKET_BYTES: Final = REPLY_HEADER.sizeof() + RPY_TRACKING_DATA.sizeof()


class ChronyRejectReason(enum.StrEnum):
    """Why a datagram was not taken as chronyd's tracking report."""

    #: Shorter than the reply header, or than a TRACKING reply.
    TOO_SHORT = "too_short"
    #: Not a cmdmon reply of protocol version 6 (another protocol, another version, a request).
    BAD_HEADER = "bad_header"
    #: A reply to another request (sequence number) or another command.
    NOT_OUR_REPLY = "not_our_reply"
    #: chronyd refused the request (its status code is in the detail).
    REFUSED = "refused"
    #: Field values chronyd never sends (leap status, address family, nanoseconds).
    BAD_VALUE = "bad_value"


class ChronyError(ProtocolError):
    """A datagram that is not chronyd's successful TRACKING reply to our request."""

    def __init__(self, reason: ChronyRejectReason, detail: str, status: int | None = None) -> None:
        self.reason = reason
        self.detail = detail
        #: chronyd's ``STT_*`` status code when it refused the request.
        self.status = status
        super().__init__(f"{reason.value} ({detail})")


class LeapStatus(enum.IntEnum):
    """chronyd's ``NTP_Leap``: UNSYNCHRONISED until it has selected a source."""

    NORMAL = 0
    INSERT_SECOND = 1
    DELETE_SECOND = 2
    UNSYNCHRONISED = 3


@dataclass(frozen=True, slots=True)
class ChronyTracking:
    """chronyd's tracking report (what ``chronyc tracking`` prints)."""

    #: The reference id: an IPv4 address, a refclock's name ("PPS", "GPS") as 4 ASCII bytes,
    #: 0 with no reference, :data:`LOCAL_REFERENCE_ID` while serving the local clock.
    ref_id: int
    #: The selected NTP server's address; None for a refclock or no reference.
    address: str | None
    stratum: int
    leap_status: LeapStatus
    #: When the reference was last updated, UTC nanoseconds since the epoch (0 if never).
    ref_time_ns: int
    #: What chronyd is still slewing into the system clock, seconds: positive while the clock
    #: is behind true time (``chronyc``: "System time ... slow of NTP time").
    current_correction_s: float
    last_offset_s: float
    rms_offset_s: float
    frequency_ppm: float
    residual_frequency_ppm: float
    skew_ppm: float
    root_delay_s: float
    root_dispersion_s: float
    update_interval_s: float

    @property
    def system_offset_s(self) -> float:
        """How far the system clock is ahead of true time, seconds (negative: behind)."""
        return -self.current_correction_s

    @property
    def max_error_s(self) -> float:
        """The bound on the system clock's error: its offset plus the reference's distance
        (root dispersion + half the root delay), as chronyd gives the kernel's ``maxerror``."""
        return abs(self.current_correction_s) + self.root_dispersion_s + self.root_delay_s / 2

    @property
    def synchronized(self) -> bool:
        """True when chronyd follows a real reference (not none, not its own local clock) with a
        normal or announced leap status, a stratum below 16 and an error bound below 16 s."""
        return (
            self.leap_status is not LeapStatus.UNSYNCHRONISED
            and self.ref_id not in (0, LOCAL_REFERENCE_ID)
            and 0 < self.stratum < 16
            and self.max_error_s < MAX_SYNCED_ERROR_S
        )

    @property
    def reference_name(self) -> str:
        """The reference as ``chronyc`` names it: the address, else the id's ASCII (PPS)."""
        if self.address is not None:
            return self.address
        raw = self.ref_id.to_bytes(4, "big").rstrip(b"\x00")
        if raw and all(0x20 < b < 0x7F for b in raw):
            return raw.decode("ascii")
        return f"{self.ref_id:08X}"


def decode_float(raw: int) -> float:
    """chrony's 32-bit ``Float``: a 7-bit signed exponent and a 25-bit signed coefficient,
    value ``coef * 2 ** (exp - 25)`` (``UTI_FloatNetworkToHost``). ``raw`` as signed or
    unsigned 32-bit word."""
    word = raw & 0xFFFF_FFFF
    exp = word >> _FLOAT_COEF_BITS
    if exp >= 1 << (_FLOAT_EXP_BITS - 1):
        exp -= 1 << _FLOAT_EXP_BITS
    coef = word % (1 << _FLOAT_COEF_BITS)
    if coef >= 1 << (_FLOAT_COEF_BITS - 1):
        coef -= 1 << _FLOAT_COEF_BITS
    return math.ldexp(coef, exp - _FLOAT_COEF_BITS)


def encode_float(value: float) -> int:
    """The inverse of :func:`decode_float` as chronyd computes it (``UTI_FloatHostToNetwork``):
    rounded to 24 significant bits, saturated, NaN as 0. Returns the signed 32-bit word."""
    neg = 0
    x = value
    if x < 0.0:
        x, neg = -x, 1
    elif not x >= 0.0:  # NaN
        x = 0.0
    if x < 1.0e-100:
        exp = coef = 0
    elif x > 1.0e100:
        exp, coef = _FLOAT_EXP_MAX, _FLOAT_COEF_MAX + neg
    else:
        exp = int(math.log(x) / math.log(2)) + 1
        coef = int(x * 2.0 ** (-exp + _FLOAT_COEF_BITS) + 0.5)
        while coef > _FLOAT_COEF_MAX + neg:
            coef >>= 1
            exp += 1
        if exp > _FLOAT_EXP_MAX:
            exp, coef = _FLOAT_EXP_MAX, _FLOAT_COEF_MAX + neg
        elif exp < _FLOAT_EXP_MIN:
            if exp + _FLOAT_COEF_BITS >= _FLOAT_EXP_MIN:
                coef >>= _FLOAT_EXP_MIN - exp
                exp = _FLOAT_EXP_MIN
            else:
                exp = coef = 0
    if neg:
        coef = (-coef) & ((1 << _FLOAT_COEF_BITS) - 1)
    word = ((exp & ((1 << _FLOAT_EXP_BITS) - 1)) << _FLOAT_COEF_BITS) | coef
    return word - (1 << 32) if word >= 1 << 31 else word


def build_tracking_request(sequence: int, attempt: int = 0) -> bytes:
    """A TRACKING request, zero-padded to the reply's length as protocol version 6 requires."""
    header: bytes = REQUEST_HEADER.build(
        {
            "version": PROTO_VERSION_NUMBER,
            "pkt_type": PKT_TYPE_CMD_REQUEST,
            "res1": 0,
            "res2": 0,
            "command": REQ_TRACKING,
            "attempt": attempt,
            "sequence": sequence,
            "pad1": 0,
            "pad2": 0,
        }
    )
    return header + bytes(TRACKING_PACKET_BYTES - len(header))


def _address(ip_addr: Any) -> str | None:
    family: int = ip_addr.family
    raw: bytes = ip_addr.addr
    if family == _IPADDR_INET4:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == _IPADDR_INET6:
        return str(ipaddress.IPv6Address(raw))
    if family in (_IPADDR_UNSPEC, _IPADDR_ID):
        return None
    raise ChronyError(ChronyRejectReason.BAD_VALUE, f"address family {family}")


def decode_tracking_reply(datagram: bytes, sequence: int) -> ChronyTracking:
    """chronyd's answer to :func:`build_tracking_request` with this ``sequence``.

    Raises :class:`ChronyError` for anything else: a short or foreign datagram, a reply to
    another request, chronyd's refusal (``status``), or values chronyd never sends.
    """
    if len(datagram) < REPLY_HEADER.sizeof():
        raise ChronyError(ChronyRejectReason.TOO_SHORT, f"{len(datagram)} bytes, no reply header")
    try:
        header = REPLY_HEADER.parse(datagram)
    except ConstructError as exc:  # pragma: no cover - the length is checked above
        raise ChronyError(ChronyRejectReason.TOO_SHORT, str(exc)) from exc
    if (
        header.version != PROTO_VERSION_NUMBER
        or header.pkt_type != PKT_TYPE_CMD_REPLY
        or header.res1 != 0
        or header.res2 != 0
    ):
        raise ChronyError(
            ChronyRejectReason.BAD_HEADER,
            f"version {header.version}, packet type {header.pkt_type}",
        )
    if header.sequence != sequence or header.command != REQ_TRACKING:
        raise ChronyError(
            ChronyRejectReason.NOT_OUR_REPLY,
            f"command {header.command}, sequence {header.sequence} (expected {sequence})",
        )
    if header.status != STT_SUCCESS:
        raise ChronyError(
            ChronyRejectReason.REFUSED, f"chronyd status {header.status}", status=header.status
        )
    if header.reply != RPY_TRACKING:
        raise ChronyError(ChronyRejectReason.NOT_OUR_REPLY, f"reply type {header.reply}")
    if len(datagram) < TRACKING_PACKET_BYTES:
        raise ChronyError(
            ChronyRejectReason.TOO_SHORT,
            f"{len(datagram)} bytes, a TRACKING reply has {TRACKING_PACKET_BYTES}",
        )
    try:
        data = RPY_TRACKING_DATA.parse(datagram[REPLY_HEADER.sizeof() :])
    except ConstructError as exc:  # pragma: no cover - the length is checked above
        raise ChronyError(ChronyRejectReason.TOO_SHORT, str(exc)) from exc
    if data.leap_status not in LeapStatus.__members__.values():
        raise ChronyError(ChronyRejectReason.BAD_VALUE, f"leap status {data.leap_status}")
    ref_time = data.ref_time
    if ref_time.tv_nsec >= 1_000_000_000:
        raise ChronyError(ChronyRejectReason.BAD_VALUE, f"tv_nsec {ref_time.tv_nsec}")
    high = 0 if ref_time.tv_sec_high == _TV_NOHIGHSEC else ref_time.tv_sec_high
    return ChronyTracking(
        ref_id=data.ref_id,
        address=_address(data.ip_addr),
        stratum=data.stratum,
        leap_status=LeapStatus(data.leap_status),
        ref_time_ns=((high << 32) | ref_time.tv_sec_low) * 1_000_000_000 + ref_time.tv_nsec,
        current_correction_s=decode_float(data.current_correction),
        last_offset_s=decode_float(data.last_offset),
        rms_offset_s=decode_float(data.rms_offset),
        frequency_ppm=decode_float(data.freq_ppm),
        residual_frequency_ppm=decode_float(data.resid_freq_ppm),
        skew_ppm=decode_float(data.skew_ppm),
        root_delay_s=decode_float(data.root_delay),
        root_dispersion_s=decode_float(data.root_dispersion),
        update_interval_s=decode_float(data.last_update_interval),
    )


def build_tracking_reply(
    tracking: ChronyTracking, sequence: int, *, status: int = STT_SUCCESS
) -> bytes:
    """The datagram chronyd sends for ``tracking`` (tests and fakes). ``address`` must be an
    IP address or None."""
    if tracking.address is None:
        family, raw = _IPADDR_UNSPEC, bytes(16)
    else:
        ip = ipaddress.ip_address(tracking.address)
        family = _IPADDR_INET4 if ip.version == 4 else _IPADDR_INET6
        raw = ip.packed.ljust(16, b"\x00")
    seconds, nanos = divmod(tracking.ref_time_ns, 1_000_000_000)
    header: bytes = REPLY_HEADER.build(
        {
            "version": PROTO_VERSION_NUMBER,
            "pkt_type": PKT_TYPE_CMD_REPLY,
            "res1": 0,
            "res2": 0,
            "command": REQ_TRACKING,
            "reply": RPY_TRACKING if status == STT_SUCCESS else 1,
            "status": status,
            "pad1": 0,
            "pad2": 0,
            "pad3": 0,
            "sequence": sequence,
            "pad4": 0,
            "pad5": 0,
        }
    )
    if status != STT_SUCCESS:
        return header
    data: bytes = RPY_TRACKING_DATA.build(
        {
            "ref_id": tracking.ref_id,
            "ip_addr": {"addr": raw, "family": family, "_pad": 0},
            "stratum": tracking.stratum,
            "leap_status": int(tracking.leap_status),
            "ref_time": {
                "tv_sec_high": seconds >> 32,
                "tv_sec_low": seconds & 0xFFFF_FFFF,
                "tv_nsec": nanos,
            },
            "current_correction": encode_float(tracking.current_correction_s),
            "last_offset": encode_float(tracking.last_offset_s),
            "rms_offset": encode_float(tracking.rms_offset_s),
            "freq_ppm": encode_float(tracking.frequency_ppm),
            "resid_freq_ppm": encode_float(tracking.residual_frequency_ppm),
            "skew_ppm": encode_float(tracking.skew_ppm),
            "root_delay": encode_float(tracking.root_delay_s),
            "root_dispersion": encode_float(tracking.root_dispersion_s),
            "last_update_interval": encode_float(tracking.update_interval_s),
        }
    )
    return header + data
