"""The clock moved to :mod:`foundation.clock` (time is not the drivers' own); re-exported here so
that ``from drivers import Clock`` and ``from drivers.clock import Clock`` keep working."""

from foundation.clock import Clock, ScaledClock, SystemClock

__all__ = ["Clock", "ScaledClock", "SystemClock"]
