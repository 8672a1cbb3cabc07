"""The gateway's clock: which time source to trust, event stamps that survive wall-clock jumps,
correction of events stamped before a trusted source appeared, and SmartLabel time mapping.

:class:`TimeKeeper` is pure (time and the NTP probe are injected); :func:`system_ntp_synchronized`
and :func:`read_boot_id` are the two reads of the system it needs. See docs/time.md.
"""

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
    KernelClock,
    read_boot_id,
    read_kernel_clock,
    system_ntp_synchronized,
)

__all__ = [
    "BACKSTEP_HOLD_MAX_S",
    "GPS_TIME_MIN",
    "LABEL_CLOCK_AHEAD_MAX_S",
    "LABEL_FRAME_MAX_AGE_S",
    "LABEL_HISTORY_MAX_AGE_S",
    "ClockState",
    "KernelClock",
    "LabelStamp",
    "LabelTimeIssue",
    "Stamp",
    "TimeKeeper",
    "TimeKeeperStats",
    "TimeSyncValue",
    "read_boot_id",
    "read_kernel_clock",
    "system_ntp_synchronized",
]
