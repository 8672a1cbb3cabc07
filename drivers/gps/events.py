"""What the GPS drivers hand inward: position fixes, and the trusted time derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from protocols.gps import FixQuality, PositionFix

__all__ = ["TIME_SOURCE_GPS", "GpsFixEvent", "TrustedTime"]

#: The time-source name events carry when their time came from GPS.
TIME_SOURCE_GPS: Final = "gps"

#: Qualities that are a fix, but not of a position (a timing receiver's time-only fix).
_NO_POSITION: Final = frozenset({FixQuality.NONE, FixQuality.TIME_ONLY})


@dataclass(frozen=True, slots=True)
class GpsFixEvent:
    """One complete position fix (an assembled NMEA epoch, a UBX NAV-PVT, or a gpsd TPV)."""

    fix: PositionFix
    source: Literal["serial", "gpsd"]
    #: The tty the receiver is on (or the device gpsd named).
    device: str
    #: Monotonic receive time.
    monotonic: float
    #: The gateway's wall clock at receipt (compare with ``fix.time`` to see the clock error).
    received_at: datetime

    @property
    def valid(self) -> bool:
        """A real position: the receiver reports a position fix and coordinates.

        A time-only fix (``FixQuality.TIME_ONLY``) is not a position: it is not valid, but its
        time is (see :attr:`time_source`).
        """
        return (
            self.fix.fix is not None
            and self.fix.fix not in _NO_POSITION
            and self.fix.lat is not None
            and self.fix.lon is not None
        )

    @property
    def time_valid(self) -> bool:
        """The fix carries a full UTC time the receiver vouches for: a valid position fix, or a
        time-only fix."""
        if self.fix.time is None:
            return False
        return self.valid or self.fix.fix is FixQuality.TIME_ONLY

    @property
    def time_source(self) -> str | None:
        """``"gps"`` when this fix's time can be trusted to stamp events, else None."""
        return TIME_SOURCE_GPS if self.time_valid else None


@dataclass(frozen=True, slots=True)
class TrustedTime:
    """GPS time pinned to the monotonic clock at the moment it was received.

    ``now(monotonic)`` extrapolates with the monotonic clock, whose drift (tens of ppm) is
    negligible over the holdover the driver allows. The NMEA / UBX transmission delay (tens to
    hundreds of milliseconds after the epoch) is not removed: good for stamping events, not for
    disciplining a clock (that is what PPS and chrony are for).
    """

    utc: datetime
    monotonic: float
    source: str = TIME_SOURCE_GPS

    def now(self, monotonic: float) -> datetime:
        return self.utc + timedelta(seconds=monotonic - self.monotonic)
