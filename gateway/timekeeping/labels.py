"""SmartLabel time on the gateway: what a label's clock reading becomes, and why it may not be
used as it is. The mapping itself is :meth:`gateway.timekeeping.TimeKeeper.label_clock`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from protocols.smartlabel import TimeSource as LabelTimeSource

if TYPE_CHECKING:
    from gateway.timekeeping.keeper import Stamp

__all__ = [
    "LABEL_CLOCK_AHEAD_MAX_S",
    "LABEL_FRAME_MAX_AGE_S",
    "LABEL_HISTORY_MAX_AGE_S",
    "LabelStamp",
    "LabelTimeIssue",
    "TimeSyncValue",
]

#: How far a label's clock may run ahead of the gateway before it is called wrong: a label
#: crystal drifts at most ~50 ppm, 30 s over the week a label may go without a sync (the gateway
#: syncs hourly while in range), plus the one-second resolution of label time.
LABEL_CLOCK_AHEAD_MAX_S: Final = 120.0
#: How old a frame's header time may be when it arrives: a reader keeps resending a frame that
#: was not ACKed, through a gateway outage; a day covers a depot's overnight outage. A label
#: clock further behind than this is wrong (a reset clock, a label years off).
LABEL_FRAME_MAX_AGE_S: Final = 86_400.0
#: How far before its frame a history reading may be: a label logs while out of range, for at
#: most a long sea or rail leg; older readings mean the label's clock jumped.
LABEL_HISTORY_MAX_AGE_S: Final = 90 * 86_400.0


class LabelTimeIssue(enum.StrEnum):
    """Why a label's time was not used as it is (counted per reason)."""

    #: The label has no clock yet (uptime below SYNCED_TIME_MIN_S): placed by its distance to
    #: the frame header, i.e. relative to the receive time. The pipeline should send it a sync.
    LABEL_UNSYNCED = "label_unsynced"
    #: The label's clock disagrees with the gateway's by more than a frame's age allows (years
    #: off, reset), or a reading is older than LABEL_HISTORY_MAX_AGE_S: receive time used.
    LABEL_CLOCK_OFF = "label_clock_off"
    #: An uptime reading in a frame whose header is already UTC (logged before the label's
    #: sync): its boot time is unknown, receive time used.
    UPTIME_BEFORE_SYNC = "uptime_before_sync"
    #: A reading later than the frame that carries it: receive time used.
    READING_AFTER_FRAME = "reading_after_frame"


@dataclass(frozen=True, slots=True)
class LabelStamp:
    """A label time in gateway time; ``issue`` says why it is not simply the label's time."""

    stamp: Stamp
    issue: LabelTimeIssue | None


@dataclass(frozen=True, slots=True)
class TimeSyncValue:
    """What a time sync to a label carries: the gateway's UTC now and its source."""

    utc: datetime
    source: LabelTimeSource
