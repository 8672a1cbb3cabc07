"""From a serial byte stream to SmartLabel frames and messages, incrementally.

A serial port delivers bytes in arbitrary pieces. :class:`Splitter` cuts the stream at every
0x00 delimiter and undoes COBS; it accepts input whole, in pieces or byte by byte, resyncs at the
next delimiter after garbage or a dropped byte, and never buffers more than one maximum-length
frame. :class:`StreamDecoder` adds :func:`decode` and is what the serial driver and
``tagrelay decode serial`` use: messages and rejects come out in stream order, and every reject
is counted by reason, so bad input is counted and skipped and the stream keeps going.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cobs import cobs

from protocols.smartlabel.codec import decode
from protocols.smartlabel.errors import FrameError, RejectReason
from protocols.smartlabel.messages import Message
from protocols.smartlabel.wire import DELIMITER, MAX_ENCODED_BYTES

__all__ = ["FrameRejected", "Splitter", "StreamDecoder"]

RAW_EXCERPT_BYTES: Final = 64
"""How much of an over-long frame a reject keeps for the log: enough to recognise it, while the
rest of it is dropped unseen so memory stays bounded."""


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that was cut from the stream but could not be accepted."""

    reason: RejectReason
    detail: str
    raw: bytes
    """The frame as received (COBS-encoded for framing rejects, decoded body otherwise)."""


class Splitter:
    """Cut a byte stream at 0x00 delimiters and COBS-decode each frame.

    Empty frames (two delimiters in a row) are idle filler that senders use to flush a
    receiver's partial frame, and are skipped without counting.
    """

    __slots__ = ("_buffer", "_discarded", "_rejected")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarded = 0
        """Bytes dropped so far of an over-long frame; non-zero means "skip to the next 0x00"."""
        self._rejected: Counter[RejectReason] = Counter()

    @property
    def rejected(self) -> Mapping[RejectReason, int]:
        """Frames rejected by the splitter so far, by reason (BAD_COBS, TOO_LONG)."""
        return self._rejected

    @property
    def buffered(self) -> int:
        """Bytes held for the frame in progress; never more than ``MAX_ENCODED_BYTES``."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Feed received bytes; return the bodies of the frames they completed."""
        return [item for item in self.feed_items(data) if isinstance(item, bytes)]

    def feed_items(self, data: bytes) -> list[bytes | FrameRejected]:
        """Like :meth:`feed` but also return the rejects, in stream order."""
        chunks = data.split(DELIMITER)
        tail = chunks.pop()
        out: list[bytes | FrameRejected] = []
        for chunk in chunks:
            if self._discarded:
                out.append(self._too_long(len(chunk)))
                continue
            if self._buffer:
                self._buffer += chunk
                chunk = bytes(self._buffer)
                self._buffer.clear()
            if not chunk:
                continue
            if len(chunk) > MAX_ENCODED_BYTES:
                self._buffer[:] = chunk[:RAW_EXCERPT_BYTES]
                self._discarded = len(chunk) - RAW_EXCERPT_BYTES
                out.append(self._too_long(0))
                continue
            try:
                out.append(cobs.decode(chunk))
            except cobs.DecodeError as exc:
                self._rejected[RejectReason.BAD_COBS] += 1
                out.append(FrameRejected(RejectReason.BAD_COBS, str(exc), chunk))
        if self._discarded:
            self._discarded += len(tail)
        elif len(self._buffer) + len(tail) > MAX_ENCODED_BYTES:
            keep = RAW_EXCERPT_BYTES - len(self._buffer)
            self._discarded = len(self._buffer) + len(tail) - RAW_EXCERPT_BYTES
            if keep > 0:
                self._buffer += tail[:keep]
            else:
                del self._buffer[RAW_EXCERPT_BYTES:]
        else:
            self._buffer += tail
        return out

    def _too_long(self, extra: int) -> FrameRejected:
        """Close an over-long frame at its delimiter: the buffer holds its first bytes."""
        total = self._discarded + len(self._buffer) + extra
        raw = bytes(self._buffer)
        self._buffer.clear()
        self._discarded = 0
        self._rejected[RejectReason.TOO_LONG] += 1
        return FrameRejected(
            RejectReason.TOO_LONG,
            f"{total} bytes without a delimiter, at most {MAX_ENCODED_BYTES}",
            raw,
        )


class StreamDecoder:
    """Splitter plus :func:`decode`: bytes in, messages and counted rejects out."""

    __slots__ = ("_rejected", "_splitter")

    def __init__(self) -> None:
        self._splitter = Splitter()
        self._rejected: Counter[RejectReason] = Counter()

    @property
    def rejected(self) -> Mapping[RejectReason, int]:
        """Every rejected frame so far, framing and decoding alike, by reason."""
        return self._rejected

    @property
    def buffered(self) -> int:
        """Bytes held for the frame in progress."""
        return self._splitter.buffered

    def feed(self, data: bytes) -> list[Message | FrameRejected]:
        """Feed received bytes; return decoded messages and rejects in stream order."""
        out: list[Message | FrameRejected] = []
        for item in self._splitter.feed_items(data):
            if isinstance(item, FrameRejected):
                self._rejected[item.reason] += 1
                out.append(item)
                continue
            try:
                out.append(decode(item))
            except FrameError as exc:
                self._rejected[exc.reason] += 1
                out.append(FrameRejected(exc.reason, exc.detail, item))
        return out
