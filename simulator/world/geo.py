"""Geometry for the simulated world: WGS-84 points, distances and a local metric plane.

Scenario positions are latitude / longitude (what a GPS receiver reports); distances for radio
path loss and geofences are metres. A site or a delivery route spans at most tens of kilometres,
so an equirectangular projection around the scenario's origin is accurate to well under a metre
there, and it is cheap and exactly invertible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["EARTH_RADIUS_M", "GeoPoint", "Projection", "bearing_deg", "distance_m"]

#: Mean Earth radius (IUGG); the error against WGS-84 is far below GPS noise at site scale.
EARTH_RADIUS_M: Final = 6_371_008.8


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A position in degrees (WGS-84)."""

    lat: float
    lon: float


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle (haversine) distance in metres."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(a: GeoPoint, b: GeoPoint) -> float:
    """Initial bearing from ``a`` to ``b``, degrees clockwise from true north, in [0, 360)."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dlmb = math.radians(b.lon - a.lon)
    y = math.sin(dlmb) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlmb)
    return math.degrees(math.atan2(y, x)) % 360.0


@dataclass(frozen=True, slots=True)
class Projection:
    """Metres east / north of an origin, and back (equirectangular around the origin)."""

    origin: GeoPoint

    def to_xy(self, p: GeoPoint) -> tuple[float, float]:
        k = math.radians(1.0) * EARTH_RADIUS_M
        x = (p.lon - self.origin.lon) * k * math.cos(math.radians(self.origin.lat))
        y = (p.lat - self.origin.lat) * k
        return x, y

    def to_geo(self, x: float, y: float) -> GeoPoint:
        k = math.radians(1.0) * EARTH_RADIUS_M
        lat = self.origin.lat + y / k
        lon = self.origin.lon + x / (k * math.cos(math.radians(self.origin.lat)))
        return GeoPoint(lat, lon)

    def offset(self, p: GeoPoint, east_m: float, north_m: float) -> GeoPoint:
        x, y = self.to_xy(p)
        return self.to_geo(x + east_m, y + north_m)
