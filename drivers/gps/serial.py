"""A GPS receiver on a serial line: NMEA and / or UBX bytes in, position fixes out.

The line is kept open by the same reconnecting :class:`~drivers.serial.SerialLink` as a
SmartLabel reader (a GPS puck on USB is unplugged just as often). Bytes go through
``protocols.gps.GpsStreamDecoder``; NMEA sentences of one epoch are merged by ``FixAssembler``
into one fix; UBX NAV-PVT fixes are complete already.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

from drivers.base import DEFAULT_QUEUE_SIZE
from drivers.gps.base import GpsDriver
from drivers.serial import LinkStats, SerialConfig, SerialLink, SerialPort
from foundation.clock import Clock
from protocols.gps import FixAssembler, GpsRejected, GpsRejectReason, GpsStreamDecoder

__all__ = ["GpsSerialDriver"]


class GpsSerialDriver(GpsDriver):
    """A receiver on ``config.path`` (tty, by-id symlink, or ``socket://`` URL)."""

    def __init__(
        self,
        config: SerialConfig,
        *,
        clock: Clock,
        name: str | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        name = name or f"gps:{config.path}"
        super().__init__(name=name, clock=clock, queue_size=queue_size)
        self.config = config
        self.link = SerialLink(config, name=name, clock=clock)
        self._rejected: collections.Counter[GpsRejectReason] = collections.Counter()

    @property
    def rejected(self) -> Mapping[GpsRejectReason, int]:
        """Sentences and frames refused, by reason, over all connections."""
        return dict(self._rejected)

    @property
    def link_stats(self) -> LinkStats:
        return self.link.stats

    async def _run(self) -> None:
        await self.link.run(self._session)

    async def _session(self, port: SerialPort) -> None:
        # Fresh state per connection: half a sentence or epoch from before an unplug is stale.
        decoder = GpsStreamDecoder()
        assembler = FixAssembler()
        while True:
            data = await port.read()
            self.link.count_in(len(data))
            for item in decoder.feed(data):
                if isinstance(item, GpsRejected):
                    self._rejected[item.reason] += 1
                    self._log_reject(
                        f"{item.reason.value}: {item.detail}",
                        {r.value: n for r, n in self._rejected.items()},
                    )
                    continue
                for fix in assembler.feed(item):
                    self._emit_fix(fix, "serial", port.device)

    async def _close(self) -> None:
        self.link.close()
