"""What the operating system knows about its clock: the kernel's NTP state and the boot id.

These are the only reads of the system in :mod:`gateway.timekeeping`; the
:class:`~gateway.timekeeping.TimeKeeper` receives :func:`system_ntp_synchronized` as an injected
function, so its logic is tested with a fake. The kernel is asked through ``adjtimex(2)`` in
read-only mode (``modes = 0``, no privilege needed), the same call ``timedatectl`` and chrony's
tools use: it works whichever NTP daemon (systemd-timesyncd, chrony, ntpd) disciplines the clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "BOOT_ID_PATH",
    "MAX_SYNCED_ERROR_US",
    "STA_UNSYNC",
    "TIMESYNCD_FLAG_PATH",
    "TIME_ERROR",
    "KernelClock",
    "read_boot_id",
    "read_kernel_clock",
    "system_ntp_synchronized",
]

#: The kernel's id of this boot: monotonic readings compare only within one boot.
BOOT_ID_PATH: Final = Path("/proc/sys/kernel/random/boot_id")
#: Touched by systemd-timesyncd once it has synchronised the clock (removed at boot).
TIMESYNCD_FLAG_PATH: Final = Path("/run/systemd/timesync/synchronized")
#: adjtimex(2) return value: the clock is not synchronised (STA_UNSYNC or a clock error).
TIME_ERROR: Final = 5
#: adjtimex(2) status bit set while no NTP daemon has synchronised the clock.
STA_UNSYNC: Final = 0x0040
#: The kernel's maximum error bound (NTP_PHASE_LIMIT, 16 s) that it sets when unsynchronised
#: and that its estimate grows towards (500 ppm) when the NTP daemon stops updating it.
#: systemd calls the clock synchronised below it, and so do we: chrony without ``rtcsync``
#: keeps STA_UNSYNC set on purpose (so that the kernel leaves the RTC alone) while the clock is
#: perfectly disciplined, so the status bit alone would say "unsynced" on such systems.
MAX_SYNCED_ERROR_US: Final = 16_000_000


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of <sys/timex.h> (glibc and musl, 32 and 64 bit: longs and ints)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True, slots=True)
class KernelClock:
    """The kernel's view of the system clock (one read-only ``adjtimex`` call)."""

    #: adjtimex's return value: TIME_OK (0) ... TIME_ERROR (5).
    state: int
    #: The STA_* status bits.
    status: int
    #: Maximum error bound, microseconds.
    maxerror_us: int
    #: Estimated error, microseconds.
    esterror_us: int

    @property
    def synchronized(self) -> bool:
        """True when an NTP daemon keeps the clock within the kernel's error bound."""
        return self.maxerror_us < MAX_SYNCED_ERROR_US


def _libc_adjtimex() -> ctypes._NamedFuncPointer | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "adjtimex", None) or getattr(libc, "ntp_adjtime", None)
    if function is None:
        return None
    function.argtypes = [ctypes.POINTER(_Timex)]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def read_kernel_clock() -> KernelClock | None:
    """The kernel's clock state, or None where there is no ``adjtimex`` (not Linux) or the call
    fails. Never raises."""
    function = _libc_adjtimex()
    if function is None:
        return None
    timex = _Timex()  # modes = 0: read only
    try:
        state = function(ctypes.byref(timex))
    except (OSError, ValueError, ctypes.ArgumentError):
        return None
    if state < 0:
        return None
    return KernelClock(
        state=state,
        status=timex.status,
        maxerror_us=timex.maxerror,
        esterror_us=timex.esterror,
    )


def system_ntp_synchronized() -> bool:
    """True when the system clock is synchronised by NTP (any daemon).

    The kernel's view first (``adjtimex``: the maximum error bound is below 16 s, as systemd
    decides it); where the kernel cannot be asked, systemd-timesyncd's flag file. Never raises.
    """
    kernel = read_kernel_clock()
    if kernel is not None:
        return kernel.synchronized
    try:
        return TIMESYNCD_FLAG_PATH.exists()
    except OSError:
        return False


def read_boot_id() -> str:
    """The kernel's boot id; where it cannot be read, a random id for this process (monotonic
    readings of this process then never match another's, which is the safe side)."""
    try:
        text = BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return f"process-{uuid.uuid4()}"
    return text or f"process-{uuid.uuid4()}"
