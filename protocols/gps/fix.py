"""The one typed position fix that every GPS source (NMEA, UBX, gpsd) becomes."""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass

__all__ = ["FixQuality", "PositionFix"]


class FixQuality(enum.StrEnum):
    """What kind of fix a position is; JSON shows the value."""

    NONE = "none"
    #: Dead reckoning only (UBX fixType 1, NMEA mode E / GGA quality 6).
    DEAD_RECKONING = "dr"
    #: A GNSS fix whose dimension the sentence does not say (GGA quality 1, RMC mode A).
    GPS = "gps"
    FIX_2D = "2d"
    FIX_3D = "3d"
    DGPS = "dgps"
    RTK_FLOAT = "rtk-float"
    RTK_FIXED = "rtk-fixed"
    MANUAL = "manual"
    SIMULATION = "simulation"


@dataclass(frozen=True, slots=True)
class PositionFix:
    """A position (or part of one) from one sentence, one frame, or one assembled epoch.

    ``format`` names the source (``nmea-gga``, ``nmea-rmc``, ``nmea-vtg``, ``nmea-gsa``,
    ``ubx-nav-pvt``, or ``nmea-fix`` for an epoch merged by the FixAssembler). Any value the
    source does not carry is None. ``time`` is a full UTC datetime when the source has a date;
    ``time_of_day`` is the UTC time of day whenever the source has one (GGA has no date).
    """

    format: str
    time: datetime.datetime | None = None
    time_of_day: datetime.time | None = None
    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    fix: FixQuality | None = None
    num_sats: int | None = None
    hdop: float | None = None
