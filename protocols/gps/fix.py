"""The one typed position fix that every GPS source (NMEA, UBX, gpsd) becomes."""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass

__all__ = ["FixQuality", "PositionFix", "SatelliteInView"]


class FixQuality(enum.StrEnum):
    """What kind of fix a position is; JSON shows the value."""

    NONE = "none"
    #: Time only, no position (u-blox timing receivers, UBX fixType 5): the receiver's UTC is
    #: valid (a trusted time source) but there are no coordinates.
    TIME_ONLY = "time-only"
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
class SatelliteInView:
    """One satellite of an NMEA GSV sentence; a field the receiver left empty is None."""

    svid: int
    elevation_deg: int | None
    azimuth_deg: int | None
    #: Carrier-to-noise density, dB-Hz; None while the satellite is not tracked.
    cno_dbhz: int | None


@dataclass(frozen=True, slots=True)
class PositionFix:
    """A position (or part of one) from one sentence, one frame, or one assembled epoch.

    ``format`` names the source (``nmea-gga``, ``nmea-rmc``, ``nmea-gll``, ``nmea-vtg``,
    ``nmea-gsa``, ``nmea-gsv``, ``ubx-nav-pvt``, or ``nmea-fix`` for an epoch merged by the
    FixAssembler). Any value the source does not carry is None. ``time`` is a full UTC datetime
    when the source has a date; ``time_of_day`` is the UTC time of day whenever the source has
    one (GGA has no date).
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
    #: Satellites used in the solution.
    num_sats: int | None = None
    hdop: float | None = None
    #: Satellites in view (GSV: the total its sentence group announces, for its constellation).
    sats_in_view: int | None = None
    #: The satellites one GSV sentence describes (at most four); None for every other source.
    satellites: tuple[SatelliteInView, ...] | None = None
