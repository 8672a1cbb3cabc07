"""The gateway's clock: which time source to trust, event stamps that survive wall-clock jumps,
correction of events stamped before a trusted source appeared, and SmartLabel time mapping.

:class:`TimeKeeper` is pure (time and the NTP probe are injected); :class:`SystemClockProbe`
(chronyd, the kernel or timesyncd, read off the event loop) and :func:`read_boot_id` are the
two reads of the system it needs. See docs/time.md.
"""

from gateway.timekeeping.chrony import ChronyUnavailable, query_chrony_tracking
from gateway.timekeeping.keeper import (
    BACKSTEP_HOLD_MAX_S,
    GPS_TIME_MIN,
    ClockState,
    Stamp,
    TimeKeeper,
    TimeKeeperStats,
)
from gateway.timekeeping.labels import (
    LABEL_CLOCK_AHEAD_MAX_S,
    LABEL_FRAME_MAX_AGE_S,
    LABEL_HISTORY_MAX_AGE_S,
    LabelStamp,
    LabelTimeIssue,
    TimeSyncValue,
)
from gateway.timekeeping.system import (
    ClockStateSource,
    KernelClock,
    SystemClockProbe,
    SystemClockState,
    decide_system_clock,
    read_boot_id,
    read_kernel_clock,
    read_system_clock,
    system_ntp_synchronized,
)

__all__ = [
    "BACKSTEP_HOLD_MAX_S",
    "GPS_TIME_MIN",
    "LABEL_CLOCK_AHEAD_MAX_S",
    "LABEL_FRAME_MAX_AGE_S",
    "LABEL_HISTORY_MAX_AGE_S",
    "ChronyUnavailable",
    "ClockState",
    "ClockStateSource",
    "KernelClock",
    "LabelStamp",
    "LabelTimeIssue",
    "Stamp",
    "SystemClockProbe",
    "SystemClockState",
    "TimeKeeper",
    "TimeKeeperStats",
    "TimeSyncValue",
    "decide_system_clock",
    "query_chrony_tracking",
    "read_boot_id",
    "read_kernel_clock",
    "read_system_clock",
    "system_ntp_synchronized",
]
