"""The SmartLabel reader driver: serial bytes in, decoded label messages out, ACKs back.

A reader relays many labels over one serial line. This driver keeps the line open through
:class:`~drivers.serial.link.SerialLink`, feeds what arrives to
``protocols.smartlabel.StreamDecoder`` (a fresh one per connection, so half a frame from before an
unplug is never glued to the next), and emits each label -> gateway message as a
:class:`ReaderFrame`. Bad frames are counted by reason and logged once per burst; the stream goes
on. Gateway -> reader messages (ACK, NACK, time sync, label configuration) are built with
``protocols.smartlabel.build`` and written on the same line.

At-least-once: the gateway ACKs a frame only after its events are committed to the outbox; the
reader resends what is not ACKed. That is why the event queue drops the *newest* frame when it is
full: nothing dropped is lost (it was never ACKed, so the reader sends it again) and what is
already queued keeps its order.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from drivers.base import DEFAULT_QUEUE_SIZE, BurstLog, Driver, OverflowPolicy
from drivers.serial.config import SerialConfig
from drivers.serial.link import LinkStats, SerialLink
from drivers.serial.port import SerialPort
from foundation.clock import Clock
from protocols.smartlabel import (
    LABEL_TO_GATEWAY,
    Ack,
    FrameRejected,
    LabelConfig,
    Message,
    Nack,
    NackReason,
    RejectReason,
    StreamDecoder,
    TimeSource,
    TimeSync,
    build,
)

__all__ = ["ReaderFrame", "SmartLabelReaderDriver"]

#: Sequence numbers are 32-bit on the wire and wrap.
_SEQ_MODULO: Final = 1 << 32

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReaderFrame:
    """One label -> gateway message as it arrived from a reader."""

    message: Message
    #: The configured path (stable across replugs: the by-id symlink or URL).
    port: str
    #: The tty it actually came through.
    device: str
    #: Monotonic receive time (for ordering, dwell and silence detection).
    monotonic: float
    #: Wall-clock receive time (UTC), as good as the gateway's clock is.
    received_at: datetime


class SmartLabelReaderDriver(Driver[ReaderFrame]):
    """A SmartLabel reader on a serial path: ``events()`` yields :class:`ReaderFrame`."""

    def __init__(
        self,
        config: SerialConfig,
        *,
        clock: Clock,
        name: str | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        name = name or f"smartlabel:{config.path}"
        super().__init__(
            name=name, clock=clock, queue_size=queue_size, overflow=OverflowPolicy.DROP_NEWEST
        )
        self.config = config
        self.link = SerialLink(config, name=name, clock=clock)
        self._rejected: collections.Counter[RejectReason] = collections.Counter()
        self._unexpected = 0
        self._reject_log = BurstLog(_log, name, "bad frame", clock)
        self._down_seq: dict[int, int] = {}

    @property
    def rejected(self) -> Mapping[RejectReason, int]:
        """Frames refused by the decoder, by reason, over all connections."""
        return dict(self._rejected)

    @property
    def unexpected(self) -> int:
        """Well-formed frames that a reader should never send up (gateway -> label types)."""
        return self._unexpected

    @property
    def link_stats(self) -> LinkStats:
        return self.link.stats

    async def ack(self, label_id: int, seq: int) -> None:
        """Tell the reader that frame (``label_id``, ``seq``) is committed: it stops resending."""
        await self._send(
            Ack(
                label_id=label_id,
                seq=self._next_seq(label_id),
                label_time=self._now_s(),
                acked_seq=seq,
            )
        )

    async def nack(self, label_id: int, seq: int, reason: NackReason) -> None:
        """Refuse frame (``label_id``, ``seq``); ``reason`` tells the reader whether to resend."""
        await self._send(
            Nack(
                label_id=label_id,
                seq=self._next_seq(label_id),
                label_time=self._now_s(),
                nacked_seq=seq,
                reason=reason,
            )
        )

    async def time_sync(self, label_id: int, utc: datetime, source: TimeSource) -> None:
        """Give a label (through its reader) the gateway's time and where it came from."""
        if utc.tzinfo is None:
            # A naive time would be taken as local time and sent hours off as "UTC".
            raise ValueError(f"time sync needs an aware UTC time, got {utc!r}")
        await self._send(
            TimeSync(
                label_id=label_id,
                seq=self._next_seq(label_id),
                label_time=self._now_s(),
                utc_time_ms=round(utc.timestamp() * 1000),
                time_source=source,
            )
        )

    async def configure(
        self,
        label_id: int,
        *,
        config_id: int,
        report_interval_s: int,
        heartbeat_interval_s: int,
        temp_low_c: float | None = None,
        temp_high_c: float | None = None,
        humidity_high_pct: float | None = None,
        shock_threshold_mg: int | None = None,
    ) -> None:
        """Send a label its reporting intervals and alarm thresholds (``None``: disabled)."""
        await self._send(
            LabelConfig(
                label_id=label_id,
                seq=self._next_seq(label_id),
                label_time=self._now_s(),
                config_id=config_id,
                report_interval_s=report_interval_s,
                heartbeat_interval_s=heartbeat_interval_s,
                temp_low_c=temp_low_c,
                temp_high_c=temp_high_c,
                humidity_high_pct=humidity_high_pct,
                shock_threshold_mg=shock_threshold_mg,
            )
        )

    async def _send(self, msg: Message) -> None:
        # Raises SerialLinkError while unplugged; the caller logs it, the reader resends.
        await self.link.write(build(msg))

    def _next_seq(self, label_id: int) -> int:
        seq = self._down_seq.get(label_id, 0)
        self._down_seq[label_id] = (seq + 1) % _SEQ_MODULO
        return seq

    def _now_s(self) -> int:
        return int(self._clock.now().timestamp())

    async def _run(self) -> None:
        await self.link.run(self._session)

    async def _session(self, port: SerialPort) -> None:
        decoder = StreamDecoder()
        while True:
            data = await port.read()
            self.link.count_in(len(data))
            mono = self._clock.monotonic()
            wall = self._clock.now()
            for item in decoder.feed(data):
                if isinstance(item, FrameRejected):
                    self._reject(item)
                elif isinstance(item, LABEL_TO_GATEWAY):
                    self._emit(ReaderFrame(item, port.path, port.device, mono, wall))
                else:
                    self._unexpected += 1
                    self._log_reject(f"unexpected {item.format} from the reader")

    def _reject(self, item: FrameRejected) -> None:
        self._rejected[item.reason] += 1
        self._log_reject(f"{item.reason.value}: {item.detail}")

    def _log_reject(self, what: str) -> None:
        self._reject_log.reject(what, {r.value: n for r, n in self._rejected.items()})

    async def _close(self) -> None:
        self.link.close()
