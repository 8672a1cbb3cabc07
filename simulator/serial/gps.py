"""A simulated GPS receiver on a pty: NMEA 0183 (GGA, RMC, VTG, GSA) or u-blox UBX NAV-PVT.

Once it has a position it transmits one epoch every ``1 / rate_hz`` seconds, built with
``protocols.gps.build_nmea_fix`` / ``build_ubx_nav_pvt`` (pynmeagps / pyubx2 underneath), so the
bytes are what a real receiver sends. Without a position it stays silent, like a receiver that
has not yet had its first fix configured to report only fixes. ``lose_fix`` keeps transmitting
epochs that say "no fix" (a tunnel), ``inject_garbage`` adds line noise.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final, Self

from foundation.lifecycle import TaskOwner
from protocols.gps import FixQuality, PositionFix, build_nmea_fix, build_ubx_nav_pvt
from simulator.serial.pty import PtyPort

__all__ = ["GpsReceiverSim"]

#: What a receiver with open sky reports: a 3D fix from 9 satellites with good geometry.
DEFAULT_NUM_SATS: Final = 9
DEFAULT_HDOP: Final = 0.9


@dataclass(slots=True)
class _Position:
    lat: float
    lon: float
    alt_m: float
    speed_mps: float
    heading_deg: float
    #: The receiver's UTC at ``set_at``; None means "the host's clock".
    when: datetime | None
    set_at: float


class GpsReceiverSim:
    """A GPS receiver behind a :class:`PtyPort`; use as an async context manager."""

    def __init__(self, port: PtyPort, *, rate_hz: float = 1.0, ubx: bool = False) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.port = port
        self.rate_hz = rate_hz
        self.ubx = ubx
        self.epochs = 0
        self._position: _Position | None = None
        self._quality = FixQuality.FIX_3D
        self._owner = TaskOwner("gps-sim")

    def set_position(
        self,
        lat: float,
        lon: float,
        *,
        alt_m: float = 0.0,
        speed_mps: float = 0.0,
        heading_deg: float = 0.0,
        when: datetime | None = None,
    ) -> None:
        """Where the receiver is from now on; ``when`` sets its UTC (it runs on from there)."""
        self._position = _Position(
            lat, lon, alt_m, speed_mps, heading_deg, when, asyncio.get_running_loop().time()
        )
        self._quality = FixQuality.FIX_3D

    def lose_fix(self) -> None:
        """Keep transmitting, but epochs say "no fix" (tunnel, depot roof)."""
        self._quality = FixQuality.NONE

    def inject_garbage(self, n: int) -> None:
        """Transmit ``n`` random bytes now (line noise)."""
        self.port.write(os.urandom(n))

    def current_fix(self) -> PositionFix | None:
        """The fix the next epoch will describe (None while there is no position)."""
        pos = self._position
        if pos is None:
            return None
        now = asyncio.get_running_loop().time()
        if pos.when is None:
            when = datetime.now(UTC)
        else:
            when = pos.when + timedelta(seconds=now - pos.set_at)
        # NMEA carries centiseconds: truncate so that NMEA and UBX name the same epoch time.
        when = when.replace(microsecond=when.microsecond // 10_000 * 10_000)
        fix = PositionFix(
            format="simulated",
            time=when,
            lat=pos.lat,
            lon=pos.lon,
            alt_m=pos.alt_m,
            speed_mps=pos.speed_mps,
            heading_deg=pos.heading_deg,
            fix=self._quality,
            num_sats=DEFAULT_NUM_SATS if self._quality is not FixQuality.NONE else 0,
            hdop=DEFAULT_HDOP,
        )
        return fix if self._quality is not FixQuality.NONE else replace(fix, hdop=None)

    def epoch_bytes(self) -> bytes:
        """The bytes of one epoch now (empty while there is no position)."""
        fix = self.current_fix()
        if fix is None:
            return b""
        return build_ubx_nav_pvt(fix) if self.ubx else build_nmea_fix(fix)

    async def _transmit(self) -> None:
        period_s = 1.0 / self.rate_hz
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            data = self.epoch_bytes()
            if data:
                self.port.write(data)
                self.epochs += 1
            # Fixed schedule, not sleep(period): epochs must not drift with write time.
            next_at += period_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def __aenter__(self) -> Self:
        await self._owner.start()
        self._owner.spawn(self._transmit(), name="transmit")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._owner.stop(exc_type, exc, tb)
