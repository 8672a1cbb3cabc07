"""What the operating system knows about its clock: the time daemon's state and the boot id.

These are the only reads of the system in :mod:`gateway.timekeeping`; the
:class:`~gateway.timekeeping.TimeKeeper` receives a :class:`SystemClockProbe` as its injected
NTP probe, so its logic is tested with a fake. Three sources, first answer wins
(:func:`decide_system_clock`, pure):

1. chronyd, asked over its monitoring port on loopback (:mod:`gateway.timekeeping.chrony`): no
   privilege and nothing the unit's sandbox refuses; it also gives the offset and error bound.
2. The kernel, through ``adjtimex(2)`` in read-only mode (``modes = 0``), the call
   ``timedatectl`` uses; it works whichever daemon (timesyncd, chrony, ntpd) disciplines the
   clock, but the unit's ``ProtectClock=yes`` refuses it (EPERM) unless a drop-in lifts it.
3. systemd-timesyncd's flag file.

:class:`SystemClockProbe` reads them on a worker thread and answers the event loop from its
cache, so a stuck chronyd never blocks the daemon.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.timekeeping.chrony import ChronyUnavailable, query_chrony_tracking
from protocols.chrony import ChronyError, ChronyTracking

__all__ = [
    "BOOT_ID_PATH",
    "CLOCK_STATE_MAX_AGE_S",
    "MAX_SYNCED_ERROR_US",
    "STA_UNSYNC",
    "TIMESYNCD_FLAG_PATH",
    "TIME_ERROR",
    "ClockStateSource",
    "KernelClock",
    "SystemClockProbe",
    "SystemClockState",
    "decide_system_clock",
    "read_boot_id",
    "read_kernel_clock",
    "read_system_clock",
    "system_ntp_synchronized",
    "timesyncd_synchronized",
]

_log = logging.getLogger(__name__)

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


def timesyncd_synchronized() -> bool:
    """True while systemd-timesyncd's flag file exists. Never raises."""
    try:
        return TIMESYNCD_FLAG_PATH.exists()
    except OSError:
        return False


#: How old the cached clock state may be before :class:`SystemClockProbe` asks again.
CLOCK_STATE_MAX_AGE_S: Final = 1.0


class ClockStateSource(enum.StrEnum):
    """Which source decided the system clock's state."""

    CHRONY = "chrony"
    KERNEL = "kernel"
    TIMESYNCD = "timesyncd"
    #: Not read yet (the probe's first answer comes from its worker).
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SystemClockState:
    """Whether a time daemon keeps the system clock synchronised, and who said so."""

    synchronized: bool
    source: ClockStateSource
    #: How far the system clock is ahead of true time, seconds (chrony only).
    offset_s: float | None = None
    #: The bound on the clock's error, seconds (chrony: offset + root distance; kernel:
    #: maxerror).
    max_error_s: float | None = None
    #: chronyd's reference ("PPS", "GPS", a server's address); None for the other sources.
    reference: str | None = None


def decide_system_clock(
    chrony: ChronyTracking | None,
    kernel: KernelClock | None,
    timesyncd: bool,
) -> SystemClockState:
    """The system clock's state from what could be read (None: that source could not be asked).

    chronyd, when it answers, decides alone: it knows its reference, and the kernel's status
    bits are not its whole story (without ``rtcsync`` it keeps STA_UNSYNC set on purpose).
    Otherwise the kernel's error bound (below 16 s, as systemd decides), else timesyncd's flag.
    """
    if chrony is not None:
        return SystemClockState(
            synchronized=chrony.synchronized,
            source=ClockStateSource.CHRONY,
            offset_s=chrony.system_offset_s,
            max_error_s=chrony.max_error_s,
            reference=chrony.reference_name,
        )
    if kernel is not None:
        return SystemClockState(
            synchronized=kernel.synchronized,
            source=ClockStateSource.KERNEL,
            max_error_s=kernel.maxerror_us / 1e6,
        )
    return SystemClockState(synchronized=timesyncd, source=ClockStateSource.TIMESYNCD)


class SystemClockProbe:
    """The :class:`~gateway.timekeeping.TimeKeeper`'s NTP probe: ``probe()`` is True while the
    system clock is synchronised.

    A call never waits for chronyd: it answers from the latest state read and, when that is
    older than ``max_age_s``, starts one worker thread to read again (at most one at a time).
    Until the first read completes the answer is "not synchronised". The readers are injected
    (tests pass fakes); chronyd's failures are counted per reason in :attr:`chrony_failures`.
    """

    def __init__(
        self,
        *,
        ask_chrony: Callable[[], ChronyTracking] = query_chrony_tracking,
        read_kernel: Callable[[], KernelClock | None] = read_kernel_clock,
        read_timesyncd: Callable[[], bool] = timesyncd_synchronized,
        monotonic: Callable[[], float] = time.monotonic,
        max_age_s: float = CLOCK_STATE_MAX_AGE_S,
    ) -> None:
        self._ask_chrony = ask_chrony
        self._read_kernel = read_kernel
        self._read_timesyncd = read_timesyncd
        self._monotonic = monotonic
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._state = SystemClockState(synchronized=False, source=ClockStateSource.NONE)
        self._read_at: float | None = None
        self._worker: threading.Thread | None = None
        #: chronyd queries that failed, by reason ("unavailable" or a ChronyRejectReason).
        self.chrony_failures: Counter[str] = Counter()
        self._last_source: ClockStateSource | None = None

    @property
    def state(self) -> SystemClockState:
        """The latest state read (source NONE before the first read)."""
        return self._state

    def __call__(self) -> bool:
        with self._lock:
            now = self._monotonic()
            stale = self._read_at is None or now - self._read_at >= self._max_age_s
            if stale and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(
                    target=self.read, name="tagrelay-clock-state", daemon=True
                )
                self._worker.start()
        return self._state.synchronized

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait for a running read to finish (tests, shutdown); True when none is running."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout_s)
            return not worker.is_alive()
        return True

    def read(self) -> SystemClockState:
        """Read every source now (blocking: up to chronyd's query timeout) and cache the result.
        Never raises."""
        chrony: ChronyTracking | None = None
        try:
            chrony = self._ask_chrony()
        except ChronyUnavailable:
            self.chrony_failures["unavailable"] += 1
        except ChronyError as exc:
            self.chrony_failures[exc.reason.value] += 1
            _log.warning("chronyd's tracking reply was refused: %s", exc)
        except Exception:  # an injected reader must not stop the probe
            self.chrony_failures["error"] += 1
            _log.exception("asking chronyd failed")
        kernel = None
        timesyncd = False
        if chrony is None:
            kernel = self._read_kernel()
            if kernel is None:
                timesyncd = self._read_timesyncd()
        state = decide_system_clock(chrony, kernel, timesyncd)
        if state.source is not self._last_source:
            _log.info(
                "system clock state from %s: %s",
                state.source.value,
                "synchronised" if state.synchronized else "not synchronised",
            )
            self._last_source = state.source
        self._state = state
        self._read_at = self._monotonic()
        return state


def read_system_clock() -> SystemClockState:
    """The system clock's state from chronyd, the kernel or timesyncd, read now (blocks for up
    to chronyd's query timeout). Never raises."""
    return SystemClockProbe().read()


def system_ntp_synchronized() -> bool:
    """True when the system clock is synchronised by NTP (any daemon); a blocking read of
    :func:`read_system_clock`. The daemon uses a :class:`SystemClockProbe`, which does not
    block. Never raises."""
    return read_system_clock().synchronized


def read_boot_id() -> str:
    """The kernel's boot id; where it cannot be read, a random id for this process (monotonic
    readings of this process then never match another's, which is the safe side)."""
    try:
        text = BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return f"process-{uuid.uuid4()}"
    return text or f"process-{uuid.uuid4()}"
