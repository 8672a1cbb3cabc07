"""A simulated SmartLabel reader: relays many labels' frames over a pty like real firmware.

It frames each message with ``protocols.smartlabel`` (the same definitions the gateway decodes
with), keeps every frame until the gateway ACKs its (label, seq), resends what stays un-ACKed,
and honours NACKs: ``BUSY`` means "resend later", the other reasons mean "resending cannot help",
so the frame is dropped. Everything the gateway sends down is decoded and recorded.

Faults for the tests and scenarios: garbage bytes, dropped bytes, a bad CRC, frames split into
pieces with gaps between them, several frames merged into one write, and (through the
:class:`~simulator.serial.pty.PtyPort`) unplug and replug.
"""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import cobs.cobs as cobs_codec

from foundation.lifecycle import TaskOwner
from protocols.smartlabel import (
    Ack,
    FrameRejected,
    Message,
    Nack,
    NackReason,
    RejectReason,
    StreamDecoder,
    build,
    build_body,
)
from simulator.serial.pty import PtyPort

__all__ = ["SmartLabelReaderSim"]

#: The resend check runs this many times per resend interval: a frame is resent at most a
#: quarter-interval late, without a timer per frame.
RESEND_CHECKS_PER_INTERVAL: Final = 4
#: Floor of the resend check period, so a very fast ``speed`` does not spin the loop.
MIN_CHECK_PERIOD_S: Final = 0.005
#: A fast world shortens the resend wait by its speed, but not below this many real seconds:
#: the gateway's ACK follows a durable commit, whose latency does not scale with the world
#: (at speed 60 a 2 s wait would be 33 ms: every frame resent before its ACK, and the resends
#: flood the link).
MIN_RESEND_REAL_S: Final = 0.5

Key = tuple[int, int]


@dataclass(slots=True)
class _Pending:
    msg: Message
    wire: bytes
    sent_at: float
    attempts: int


class SmartLabelReaderSim:
    """Reader firmware behind a :class:`PtyPort`; use as an async context manager."""

    def __init__(self, port: PtyPort, *, resend_after_s: float = 2.0, speed: float = 1.0) -> None:
        if resend_after_s <= 0 or speed <= 0:
            raise ValueError("resend_after_s and speed must be positive")
        self.port = port
        self.resend_after_s = resend_after_s
        self.speed = speed
        #: Frames ACKed by the gateway, as (label_id, seq).
        self.acked: set[Key] = set()
        #: NACKs received, as (label_id, seq, reason).
        self.nacked: list[tuple[int, int, NackReason]] = []
        #: Frames given up after a final NACK.
        self.dropped: set[Key] = set()
        #: Every gateway -> reader message received, in order.
        self.received: list[Message] = []
        self.sent_frames = 0
        self.resends = 0
        #: Resends per frame, for asserting that ACKed frames stop being resent.
        self.resent: collections.Counter[Key] = collections.Counter()
        self._pending: dict[Key, _Pending] = {}
        self._seqs: dict[int, int] = {}
        self._decoder = StreamDecoder()
        # Frames, garbage and fault switches in one queue, so that a fault applies at its place
        # in the byte stream rather than whenever the writer next runs.
        self._out: asyncio.Queue[tuple[Key | None, bytes] | Callable[[], None]] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._drop_bytes = 0
        self._corrupt_next = False
        self._split: tuple[int, float] | None = None
        self._merge_left = 0
        self._merge_buffer = bytearray()
        self._owner = TaskOwner("reader-sim")

    # -- what the tests and the scenario engine call -----------------------------------------

    @property
    def unacked(self) -> int:
        """Frames still waiting for an ACK."""
        return len(self._pending)

    @property
    def rejected(self) -> collections.Counter[RejectReason]:
        """Gateway -> reader frames this reader could not decode, by reason."""
        return collections.Counter(self._decoder.rejected)

    def next_seq(self, label_id: int) -> int:
        """The next sequence number of ``label_id`` (labels count their frames from 1)."""
        seq = self._seqs.get(label_id, 0) + 1
        self._seqs[label_id] = seq
        return seq

    def send(self, msg: Message) -> None:
        """Relay one label message: frame it, transmit it, keep it until it is ACKed."""
        key = (msg.label_id, msg.seq)
        wire = build(msg)
        self._pending[key] = _Pending(msg, wire, self._now(), 0)
        self._out.put_nowait((key, wire))

    # Faults take effect at their place in the stream: after everything sent before the call.

    def inject_garbage(self, n: int) -> None:
        """Transmit ``n`` random non-zero bytes (line noise, a wrong baud rate).

        With no 0x00 among them the garbage always spoils the frame that follows it, the worst
        case for the gateway: that frame is rejected and comes again as a resend.
        """
        garbage = bytes(b % 255 + 1 for b in os.urandom(n))
        self._out.put_nowait((None, garbage))

    def drop_next_bytes(self, n: int) -> None:
        """The next ``n`` transmitted bytes are lost on the line."""

        def apply() -> None:
            self._drop_bytes += n

        self._out.put_nowait(apply)

    def corrupt_next_crc(self) -> None:
        """The next frame transmitted goes out with a wrong CRC."""

        def apply() -> None:
            self._corrupt_next = True

        self._out.put_nowait(apply)

    def split_writes(self, chunk_bytes: int | None, gap_s: float = 0.01) -> None:
        """Transmit frames in pieces of ``chunk_bytes`` with ``gap_s`` between them (None: off)."""
        split = None if chunk_bytes is None else (max(1, chunk_bytes), gap_s)

        def apply() -> None:
            self._split = split

        self._out.put_nowait(apply)

    def merge_writes(self, frames: int) -> None:
        """Transmit the next ``frames`` frames in one write (the gateway reads them together)."""

        def apply() -> None:
            self._merge_left = frames

        self._out.put_nowait(apply)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked whenever the gateway sends something."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    # -- firmware ------------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _on_bytes(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            if isinstance(item, FrameRejected):
                continue
            self.received.append(item)
            if isinstance(item, Ack):
                key = (item.label_id, item.acked_seq)
                self._pending.pop(key, None)
                self.acked.add(key)
            elif isinstance(item, Nack):
                key = (item.label_id, item.nacked_seq)
                self.nacked.append((item.label_id, item.nacked_seq, item.reason))
                pending = self._pending.get(key)
                if item.reason is NackReason.BUSY:
                    if pending is not None:
                        # The gateway asked for patience: start the resend wait again.
                        pending.sent_at = self._now()
                elif pending is not None:
                    del self._pending[key]
                    self.dropped.add(key)
        self._changed.set()

    async def _resend_loop(self) -> None:
        interval_s = max(
            self.resend_after_s / self.speed, min(self.resend_after_s, MIN_RESEND_REAL_S)
        )
        period_s = max(MIN_CHECK_PERIOD_S, interval_s / RESEND_CHECKS_PER_INTERVAL)
        while True:
            await asyncio.sleep(period_s)
            now = self._now()
            for key, pending in list(self._pending.items()):
                if now - pending.sent_at >= interval_s:
                    pending.sent_at = now
                    pending.attempts += 1
                    self.resends += 1
                    self.resent[key] += 1
                    self._out.put_nowait((key, pending.wire))

    async def _writer(self) -> None:
        while True:
            item = await self._out.get()
            if callable(item):
                item()
                continue
            key, wire = item
            if key is not None:
                if key not in self._pending:
                    continue  # ACKed while queued for a resend
                self._pending[key].sent_at = self._now()
                self.sent_frames += 1
                if self._corrupt_next:
                    self._corrupt_next = False
                    wire = self._with_bad_crc(self._pending[key].msg)
            await self._transmit(wire)

    @staticmethod
    def _with_bad_crc(msg: Message) -> bytes:
        body = bytearray(build_body(msg))
        body[-1] ^= 0xFF  # the CRC is the last two bytes of the body
        return bytes(cobs_codec.encode(bytes(body))) + b"\x00"

    async def _transmit(self, wire: bytes) -> None:
        if self._drop_bytes:
            cut = min(self._drop_bytes, len(wire))
            self._drop_bytes -= cut
            wire = wire[cut:]
        if not wire:
            return
        if self._merge_left:
            self._merge_buffer += wire
            self._merge_left -= 1
            if self._merge_left:
                return
            wire = bytes(self._merge_buffer)
            self._merge_buffer.clear()
        if self._split is None:
            self.port.write(wire)
            return
        chunk_bytes, gap_s = self._split
        for start in range(0, len(wire), chunk_bytes):
            self.port.write(wire[start : start + chunk_bytes])
            await asyncio.sleep(gap_s)

    async def __aenter__(self) -> Self:
        self.port.set_receiver(self._on_bytes)
        self._owner.callback(lambda: self.port.set_receiver(None))
        await self._owner.start()
        self._owner.spawn(self._writer(), name="writer")
        self._owner.spawn(self._resend_loop(), name="resend")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._owner.stop(exc_type, exc, tb)
