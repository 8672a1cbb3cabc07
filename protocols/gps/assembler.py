"""Merging the NMEA sentences of one navigation epoch into one complete position fix.

A receiver reports each epoch as a burst: GGA (position, altitude, satellites, HDOP), RMC
(date, speed, course), GLL (position), VTG (speed, course), GSA (2D / 3D, DOP). No single
sentence has it all. GSV sentences (satellites in view, several per epoch and constellation, and
on many receivers only every few seconds) describe the sky, not the position: the assembler
leaves them out of epochs, so they neither split nor complete one.
The assembler groups sentences by their UTC time of day (VTG and GSA carry none and belong to
the epoch in progress) and emits the merged fix as soon as the epoch holds every sentence type
the previous epoch had, or when the next epoch starts, or on :meth:`FixAssembler.flush`.
UBX NAV-PVT fixes are complete already and pass straight through.
"""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Final, TypeVar

from protocols.gps.fix import FixQuality, PositionFix

__all__ = ["ASSEMBLED_FORMAT", "FixAssembler"]

ASSEMBLED_FORMAT: Final = "nmea-fix"
_GSA: Final = "nmea-gsa"
_GSV: Final = "nmea-gsv"

# Qualities that say more than GSA's 2D / 3D: they win over it when merging.
_SPECIFIC_QUALITIES: Final = frozenset(
    {
        FixQuality.DGPS,
        FixQuality.RTK_FLOAT,
        FixQuality.RTK_FIXED,
        FixQuality.DEAD_RECKONING,
        FixQuality.MANUAL,
        FixQuality.SIMULATION,
    }
)


class FixAssembler:
    """Pure, incremental: ``feed(fix) -> [complete fixes]``; no clock, no I/O."""

    def __init__(self) -> None:
        self._parts: dict[str, PositionFix] = {}
        self._time_of_day: datetime.time | None = None
        self._expected: frozenset[str] = frozenset()

    def feed(self, fix: PositionFix) -> list[PositionFix]:
        """Add one decoded sentence (or UBX fix); return the fixes completed by it."""
        if not fix.format.startswith("nmea-") or fix.format == ASSEMBLED_FORMAT:
            return [fix]
        if fix.format == _GSV:
            return []
        out: list[PositionFix] = []
        previous_gsa = self._parts.get(_GSA)
        if fix.format == _GSA and previous_gsa is not None:
            # Multi-GNSS receivers send one GSA per constellation in the same epoch.
            self._parts[_GSA] = _merge_gsa(previous_gsa, fix)
            return out
        starts_new_epoch = (
            fix.time_of_day is not None
            and self._time_of_day is not None
            and fix.time_of_day != self._time_of_day
        ) or fix.format in self._parts
        if starts_new_epoch and self._parts:
            self._expected = frozenset(self._parts)
            out.extend(self.flush())
        self._parts[fix.format] = fix
        if fix.time_of_day is not None:
            self._time_of_day = fix.time_of_day
        if self._expected and self._expected <= self._parts.keys():
            out.extend(self.flush())
        return out

    def flush(self) -> list[PositionFix]:
        """Emit the epoch in progress, if any, and start afresh."""
        if not self._parts:
            return []
        merged = _merge(self._parts)
        self._parts = {}
        self._time_of_day = None
        return [merged]


def _merge_gsa(first: PositionFix, second: PositionFix) -> PositionFix:
    used = (first.num_sats or 0) + (second.num_sats or 0)
    # The best constellation's 2D / 3D state is the receiver's; DOP is per solution, not summed.
    fix = first.fix if first.fix is FixQuality.FIX_3D else second.fix or first.fix
    return replace(first, num_sats=used, fix=fix, hdop=_first(first.hdop, second.hdop))


def _merge(parts: dict[str, PositionFix]) -> PositionFix:
    gga = parts.get("nmea-gga")
    rmc = parts.get("nmea-rmc")
    gll = parts.get("nmea-gll")
    vtg = parts.get("nmea-vtg")
    gsa = parts.get("nmea-gsa")

    time_of_day = _first(
        gga.time_of_day if gga else None,
        rmc.time_of_day if rmc else None,
        gll.time_of_day if gll else None,
    )

    qualities = [p.fix for p in (gga, rmc, gll, vtg) if p is not None and p.fix is not None]
    fix: FixQuality | None
    if FixQuality.NONE in qualities or (gsa is not None and gsa.fix is FixQuality.NONE):
        fix = FixQuality.NONE
    elif specific := [q for q in qualities if q in _SPECIFIC_QUALITIES]:
        fix = specific[0]
    elif gsa is not None and gsa.fix is not None:
        fix = gsa.fix
    else:
        fix = _first(*qualities)
    merged = PositionFix(
        format=ASSEMBLED_FORMAT,
        time=rmc.time if rmc else None,
        time_of_day=time_of_day,
        lat=_first(gga.lat if gga else None, rmc.lat if rmc else None, gll.lat if gll else None),
        lon=_first(gga.lon if gga else None, rmc.lon if rmc else None, gll.lon if gll else None),
        alt_m=gga.alt_m if gga else None,
        speed_mps=_first(rmc.speed_mps if rmc else None, vtg.speed_mps if vtg else None),
        heading_deg=_first(rmc.heading_deg if rmc else None, vtg.heading_deg if vtg else None),
        fix=fix,
        num_sats=_first(gga.num_sats if gga else None, gsa.num_sats if gsa else None),
        hdop=_first(gga.hdop if gga else None, gsa.hdop if gsa else None),
    )
    return merged


_T = TypeVar("_T")


def _first(*values: _T | None) -> _T | None:
    return next((v for v in values if v is not None), None)
