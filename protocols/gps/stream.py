"""A mixed NMEA + UBX byte stream from a GPS receiver, split and decoded incrementally.

u-blox receivers interleave NMEA sentences and UBX frames on one serial line. The decoder finds
each message's start (``$`` or the UBX sync chars ``B5 62``), waits until it is complete, hands
it to pynmeagps / pyubx2 through :mod:`protocols.gps.nmea` / :mod:`protocols.gps.ubx`, and on
any bad message drops just enough bytes to resynchronise. Buffered bytes never exceed the
longest accepted message plus one read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pyubx2 import UBX_CLASSES

from protocols.gps.errors import GpsError, GpsRejectReason
from protocols.gps.fix import PositionFix
from protocols.gps.nmea import decode_nmea
from protocols.gps.ubx import UBX_HEADER, decode_ubx

__all__ = ["GpsRejected", "GpsStreamDecoder"]

#: NMEA 0183 allows 82 characters; u-blox PUBX and NMEA 4.1 multi-GNSS sentences run longer,
#: so accept up to this many before calling a line noise.
MAX_NMEA_LINE_BYTES: Final = 200
#: Large enough for every UBX message a navigation receiver streams (NAV-SAT with 64 satellites
#: is under 800 bytes); bounds what a corrupt length field can make us wait for.
MAX_UBX_PAYLOAD_BYTES: Final = 4096
_UBX_OVERHEAD: Final = 8
_NMEA_START: Final = 0x24  # "$"
_PRINTABLE_MIN: Final = 0x20
_PRINTABLE_MAX: Final = 0x7E


@dataclass(frozen=True, slots=True)
class GpsRejected:
    """A sentence or frame the stream could not use, reported in stream order."""

    reason: GpsRejectReason
    detail: str
    raw: bytes


class GpsStreamDecoder:
    """``feed(bytes) -> [PositionFix | GpsRejected]`` over a mixed NMEA / UBX stream.

    GSV sentences come out as fixes without a position (``nmea-gsv``: satellites in view).
    Valid messages that tagrelay does not use (TXT, ZDA, UBX-ACK, ...) are counted in
    :attr:`unsupported` and not returned. Rejected messages are returned and counted in
    :attr:`rejected`; bytes skipped while hunting for a message start are counted in
    :attr:`skipped_bytes`. The decoder never raises on input.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._rejected: Counter[GpsRejectReason] = Counter()
        self._unsupported: Counter[str] = Counter()
        self.skipped_bytes = 0

    @property
    def rejected(self) -> Mapping[GpsRejectReason, int]:
        """Rejected messages so far, per reason."""
        return self._rejected

    @property
    def unsupported(self) -> Mapping[str, int]:
        """Valid messages without a position, per sentence / class-id."""
        return self._unsupported

    @property
    def pending(self) -> bytes:
        """Bytes held back because their message is not complete yet."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[PositionFix | GpsRejected]:
        """Add bytes; return every complete message's result, in stream order."""
        self._buffer += data
        out: list[PositionFix | GpsRejected] = []
        while self._buffer:
            if not self._sync():
                break
            take = self._take_nmea if self._buffer[0] == _NMEA_START else self._take_ubx
            if not take(out):
                break
        return out

    def _sync(self) -> bool:
        """Drop bytes before the next possible message start; False if none is buffered."""
        buffer = self._buffer
        dollar = buffer.find(b"$")
        ubx = buffer.find(UBX_HEADER)
        starts = [i for i in (dollar, ubx) if i >= 0]
        if not starts:
            # Keep a trailing B5: it may be the first sync char of a frame still arriving.
            keep = 1 if buffer.endswith(UBX_HEADER[:1]) else 0
            self.skipped_bytes += len(buffer) - keep
            del buffer[: len(buffer) - keep]
            return False
        start = min(starts)
        self.skipped_bytes += start
        del buffer[:start]
        return True

    def _take_nmea(self, out: list[PositionFix | GpsRejected]) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\n", 0, MAX_NMEA_LINE_BYTES + 1)
        scan_to = end if end >= 0 else min(len(buffer), MAX_NMEA_LINE_BYTES + 1)
        # A byte that cannot be in a sentence means the line was cut: resync from that byte.
        for i in range(1, scan_to):
            byte = buffer[i]
            if (byte < _PRINTABLE_MIN or byte > _PRINTABLE_MAX) and byte != 0x0D:
                self._reject(out, GpsRejectReason.MALFORMED, "sentence cut short", i)
                return True
        if end < 0:
            if len(buffer) > MAX_NMEA_LINE_BYTES:
                raw = bytes(buffer[:MAX_NMEA_LINE_BYTES])
                self._reject(out, GpsRejectReason.TOO_LONG, "no line end", 1, raw=raw)
                return True
            return False
        line = bytes(buffer[: end + 1])
        del buffer[: end + 1]
        try:
            out.append(decode_nmea(line))
        except GpsError as exc:
            self._count(out, exc, line)
        return True

    def _take_ubx(self, out: list[PositionFix | GpsRejected]) -> bool:
        buffer = self._buffer
        if len(buffer) < 6:
            return False
        if bytes(buffer[2:3]) not in UBX_CLASSES:
            # Not a message class u-blox defines: B5 62 was noise. Resync now rather than wait
            # for a payload whose length field is garbage too.
            self._reject(out, GpsRejectReason.MALFORMED, f"UBX class 0x{buffer[2]:02x}", 2)
            return True
        length = int.from_bytes(buffer[4:6], "little")
        if length > MAX_UBX_PAYLOAD_BYTES:
            self._reject(out, GpsRejectReason.TOO_LONG, f"UBX length {length}", 2)
            return True
        size = length + _UBX_OVERHEAD
        if len(buffer) < size:
            return False
        frame = bytes(buffer[:size])
        try:
            fix = decode_ubx(frame)
        except GpsError as exc:
            if exc.reason is GpsRejectReason.BAD_CHECKSUM:
                # The sync chars may have been noise: rescan from the next byte so that a real
                # message inside the would-be frame is not lost.
                self._reject(out, exc.reason, exc.detail, 2, raw=frame)
                return True
            del buffer[:size]
            self._count(out, exc, frame)
            return True
        del buffer[:size]
        out.append(fix)
        return True

    def _reject(
        self,
        out: list[PositionFix | GpsRejected],
        reason: GpsRejectReason,
        detail: str,
        drop: int,
        raw: bytes | None = None,
    ) -> None:
        rejected_raw = bytes(self._buffer[:drop]) if raw is None else raw
        del self._buffer[:drop]
        self._rejected[reason] += 1
        out.append(GpsRejected(reason, detail, rejected_raw))

    def _count(self, out: list[PositionFix | GpsRejected], exc: GpsError, raw: bytes) -> None:
        if exc.reason is GpsRejectReason.UNSUPPORTED_MESSAGE:
            self._unsupported[exc.detail] += 1
            return
        self._rejected[exc.reason] += 1
        out.append(GpsRejected(exc.reason, exc.detail, raw))
