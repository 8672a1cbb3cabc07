"""Telemetry rate limiting: per source, a minimum interval, deadbands and a maximum interval.

A tag advertising at 10 Hz repeats the same temperature ten times a second; a cellular link
should carry it about once a minute unless it changes. :class:`TelemetryLimiter` decides, per
source, whether a reading goes out: always the first one; a reading that moved beyond its
quantity's deadband once ``min_interval_s`` has passed; and anything once ``max_interval_s``
has passed, so the platform sees the value is still alive. Positions use a distance deadband.
Pure: time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from gateway.pipeline.config import TelemetryConfig

__all__ = ["MAX_SOURCES", "TelemetryLimiter", "distance_m"]

#: Sources remembered at most (the least recently sent is forgotten first, which only means
#: its next reading goes out at once): far more than the tags one gateway can hear.
MAX_SOURCES: Final = 20_000
#: Mean Earth radius (IUGG), for the haversine distance.
EARTH_RADIUS_M: Final = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class _Last:
    __slots__ = ("at", "values")

    def __init__(self, at: float, values: Mapping[str, float]) -> None:
        self.at = at
        self.values = values


class TelemetryLimiter:
    """Decides which readings and positions of each source are sent."""

    def __init__(self, config: TelemetryConfig, *, max_sources: int = MAX_SOURCES) -> None:
        self._min_s = config.min_interval_s
        self._max_s = config.max_interval_s
        self._deadband: dict[str, float] = {
            "temperature_c": config.temperature_c,
            "humidity_pct": config.humidity_pct,
            "pressure_pa": config.pressure_pa,
            "battery_mv": config.battery_mv,
            "acc_x_g": config.acceleration_g,
            "acc_y_g": config.acceleration_g,
            "acc_z_g": config.acceleration_g,
        }
        self._position_m = config.position_m
        self._max_sources = max_sources
        self._last: dict[str, _Last] = {}
        self.sent = 0
        self.suppressed = 0
        self.forgotten = 0

    def offer(self, source: str, values: Mapping[str, float], monotonic: float) -> bool:
        """True when this reading of ``source`` should be sent (it is then remembered)."""
        last = self._last.get(source)
        if last is not None:
            elapsed = monotonic - last.at
            if elapsed < self._max_s and (
                elapsed < self._min_s or not self._changed(last.values, values)
            ):
                self.suppressed += 1
                return False
            del self._last[source]  # re-inserted below: the dict stays in send order
        self._remember(source, _Last(monotonic, dict(values)))
        return True

    def offer_position(self, source: str, lat: float, lon: float, monotonic: float) -> bool:
        """As :meth:`offer`, for a position: the deadband is a distance."""
        key = "\x00pos:" + source
        last = self._last.get(key)
        if last is not None:
            elapsed = monotonic - last.at
            moved = distance_m(last.values["lat"], last.values["lon"], lat, lon)
            if elapsed < self._max_s and (elapsed < self._min_s or moved <= self._position_m):
                self.suppressed += 1
                return False
            del self._last[key]
        self._remember(key, _Last(monotonic, {"lat": lat, "lon": lon}))
        return True

    def _changed(self, before: Mapping[str, float], after: Mapping[str, float]) -> bool:
        if before.keys() != after.keys():
            return True
        deadband = self._deadband
        for name, value in after.items():
            if abs(value - before[name]) > deadband.get(name, 0.0):
                return True
        return False

    def _remember(self, key: str, last: _Last) -> None:
        self._last[key] = last
        self.sent += 1
        if len(self._last) > self._max_sources:
            del self._last[next(iter(self._last))]
            self.forgotten += 1

    def __len__(self) -> int:
        return len(self._last)
