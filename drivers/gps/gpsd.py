"""gpsd as the GPS source: its JSON protocol over TCP, TPV reports in, position fixes out.

When other programs (chrony for PPS time, a navigation app) need the receiver too, gpsd owns the
tty and shares it. This driver connects to gpsd (127.0.0.1:2947 by default), asks for JSON
reports with ``?WATCH={"enable":true,"json":true}``, and turns each TPV report (time, position,
velocity) into the same :class:`~protocols.gps.PositionFix` the serial path produces; satellite
count and HDOP come from the latest SKY report. gpsd restarting is normal: the driver
reconnects with a capped, jittered backoff. Bad lines are counted by reason and skipped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.base import DEFAULT_QUEUE_SIZE
from drivers.errors import DriverError
from drivers.gps.base import GpsDriver
from drivers.gps.config import GpsdConfig
from drivers.serial import Backoff
from foundation.clock import Clock
from protocols.gps import FixQuality, PositionFix

__all__ = [
    "GPSD_FORMAT",
    "WATCH_COMMAND",
    "GpsdDriver",
    "GpsdFailure",
    "GpsdRejectReason",
    "GpsdReportError",
    "fix_from_tpv",
]

#: Ask gpsd to stream JSON reports for every device it has.
WATCH_COMMAND: Final = b'?WATCH={"enable":true,"json":true}\n'
#: ``PositionFix.format`` of fixes that came through gpsd.
GPSD_FORMAT: Final = "gpsd-tpv"
#: Longest report line accepted: a SKY report with 100+ satellites is ~15 kB; anything far
#: longer is not gpsd talking.
MAX_LINE_BYTES: Final = 256 * 1024
#: First reconnect delay: gpsd restarted by systemd is back within a second.
RECONNECT_INITIAL_S: Final = 0.2
#: Cap of the reconnect delay: a gpsd that is down for good costs one connect attempt per this.
RECONNECT_MAX_S: Final = 10.0
#: A connection that lasted this long was healthy: the next failure restarts the backoff.
STABLE_SESSION_S: Final = 5.0

_log = logging.getLogger(__name__)

#: TPV ``status`` values that say more than ``mode`` (gpsd_json(5)).
_STATUS_QUALITY: Final = {
    2: FixQuality.DGPS,
    3: FixQuality.RTK_FIXED,
    4: FixQuality.RTK_FLOAT,
    5: FixQuality.DEAD_RECKONING,
    6: FixQuality.DEAD_RECKONING,
    8: FixQuality.SIMULATION,
}
_MODE_QUALITY: Final = {2: FixQuality.FIX_2D, 3: FixQuality.FIX_3D}


class GpsdRejectReason(enum.StrEnum):
    """Why a line from gpsd was skipped."""

    BAD_JSON = "bad_json"
    #: Valid JSON, but a TPV / SKY report with missing or out-of-range fields.
    MALFORMED_REPORT = "malformed_report"
    TOO_LONG = "too_long"


class GpsdReportError(DriverError):
    """A gpsd report line that cannot be used; ``reason`` says why, ``detail`` is for the log."""

    def __init__(self, reason: GpsdRejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class GpsdFailure(enum.StrEnum):
    """Why the connection to gpsd is down."""

    CONNECT_FAILED = "connect_failed"
    CONNECTION_LOST = "connection_lost"


class _Tpv(BaseModel):
    """The TPV fields we use (gpsd_json(5)); the rest is ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    device: str | None = None
    mode: int = Field(default=0, ge=0, le=3)
    status: int | None = None
    time: datetime | None = None
    lat: float | None = Field(default=None, ge=-90.0, le=90.0)
    lon: float | None = Field(default=None, ge=-180.0, le=180.0)
    altMSL: float | None = None  # gpsd's field names, as in gpsd_json(5)
    altHAE: float | None = None
    alt: float | None = None
    speed: float | None = Field(default=None, ge=0.0)
    track: float | None = Field(default=None, ge=0.0, le=360.0)


class _Sky(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    device: str | None = None
    uSat: int | None = Field(default=None, ge=0)
    hdop: float | None = Field(default=None, ge=0.0)


def fix_from_tpv(tpv: Mapping[str, object], sky: Mapping[str, object] | None = None) -> PositionFix:
    """A gpsd TPV report (and the latest SKY report) as a :class:`PositionFix`.

    Raises :class:`GpsdReportError` (``MALFORMED_REPORT``) for a report with wrong types or
    out-of-range values.
    """
    try:
        report = _Tpv.model_validate(tpv)
    except ValidationError as exc:
        raise _malformed("TPV", exc) from exc
    try:
        satellites = _Sky.model_validate(sky) if sky is not None else None
    except ValidationError as exc:
        raise _malformed("SKY", exc) from exc
    return _to_fix(report, satellites)


def _malformed(kind: object, exc: ValidationError) -> GpsdReportError:
    return GpsdReportError(
        GpsdRejectReason.MALFORMED_REPORT, f"{kind}: {exc.error_count()} invalid fields"
    )


def _to_fix(report: _Tpv, sky: _Sky | None) -> PositionFix:
    if report.mode <= 1:
        quality = FixQuality.NONE
    else:
        quality = _STATUS_QUALITY.get(report.status or 0, _MODE_QUALITY[report.mode])
    when = report.time
    if when is not None:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    has_position = quality is not FixQuality.NONE
    alt = next((a for a in (report.altMSL, report.alt, report.altHAE) if a is not None), None)
    return PositionFix(
        format=GPSD_FORMAT,
        time=when,
        time_of_day=None if when is None else when.timetz(),
        lat=report.lat if has_position else None,
        lon=report.lon if has_position else None,
        alt_m=alt if report.mode == 3 else None,
        speed_mps=report.speed,
        heading_deg=report.track,
        fix=quality,
        num_sats=sky.uSat if sky is not None else None,
        hdop=sky.hdop if sky is not None else None,
    )


class GpsdDriver(GpsDriver):
    """Fixes from a gpsd daemon; ``events()`` yields :class:`~drivers.gps.GpsFixEvent`."""

    def __init__(
        self,
        config: GpsdConfig,
        *,
        clock: Clock,
        name: str | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        name = name or f"gpsd:{config.host}:{config.port}"
        super().__init__(name=name, clock=clock, queue_size=queue_size)
        self.config = config
        self._rejected: collections.Counter[GpsdRejectReason] = collections.Counter()
        self._failures: collections.Counter[GpsdFailure] = collections.Counter()
        self._sky: dict[str, _Sky] = {}
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self.connections = 0
        #: The gpsd release, from its VERSION greeting.
        self.gpsd_release: str | None = None

    @property
    def rejected(self) -> Mapping[GpsdRejectReason, int]:
        return dict(self._rejected)

    @property
    def failures(self) -> Mapping[GpsdFailure, int]:
        return dict(self._failures)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    async def _run(self) -> None:
        backoff = Backoff(RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        failed = 0
        where = f"{self.config.host}:{self.config.port}"
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self.config.host, self.config.port, limit=MAX_LINE_BYTES
                )
            except OSError as exc:
                self._failures[GpsdFailure.CONNECT_FAILED] += 1
                failed += 1
                if failed == 1:
                    _log.warning("%s: cannot connect to gpsd at %s: %s", self.name, where, exc)
                await asyncio.sleep(backoff.next())
                continue
            self.connections += 1
            self._disconnected.clear()
            self._connected.set()
            _log.info("%s: connected to gpsd at %s", self.name, where)
            failed = 0
            opened_at = self._clock.monotonic()
            try:
                await self._session(reader, writer)
            except (OSError, asyncio.IncompleteReadError) as exc:
                self._failures[GpsdFailure.CONNECTION_LOST] += 1
                _log.warning("%s: lost gpsd at %s (%s); reconnecting", self.name, where, exc)
            finally:
                self._connected.clear()
                self._disconnected.set()
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if self._clock.monotonic() - opened_at >= STABLE_SESSION_S:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(WATCH_COMMAND)
        await writer.drain()
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                skipped = await _skip_line(reader, exc.consumed)
                self._reject(GpsdRejectReason.TOO_LONG, f"{skipped} bytes, over {MAX_LINE_BYTES}")
                continue
            self.feed_line(line)

    def feed_line(self, line: bytes) -> None:
        """Handle one report line from gpsd; bad lines are counted, never raised."""
        try:
            report = json.loads(line)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
            self._reject(GpsdRejectReason.BAD_JSON, str(exc))
            return
        if not isinstance(report, dict):
            self._reject(GpsdRejectReason.BAD_JSON, "not a JSON object")
            return
        try:
            self._handle(report)
        except GpsdReportError as exc:
            self._reject(exc.reason, exc.detail)

    def _handle(self, report: dict[str, object]) -> None:
        kind = report.get("class")
        try:
            if kind == "TPV":
                tpv = _Tpv.model_validate(report)
                device = tpv.device or f"gpsd:{self.config.host}:{self.config.port}"
                if self.config.device is not None and tpv.device != self.config.device:
                    return
                self._emit_fix(_to_fix(tpv, self._sky.get(device)), "gpsd", device)
            elif kind == "SKY":
                sky = _Sky.model_validate(report)
                self._sky[sky.device or f"gpsd:{self.config.host}:{self.config.port}"] = sky
            elif kind == "VERSION":
                release = report.get("release")
                self.gpsd_release = release if isinstance(release, str) else None
        except ValidationError as exc:
            raise _malformed(kind, exc) from exc

    def _reject(self, reason: GpsdRejectReason, detail: str) -> None:
        self._rejected[reason] += 1
        self._log_reject(
            f"{reason.value}: {detail}", {r.value: n for r, n in self._rejected.items()}
        )


async def _skip_line(reader: asyncio.StreamReader, consumed: int) -> int:
    """Drop a line that overran the limit, up to and including its newline; bytes dropped.

    ``LimitOverrunError`` leaves everything in the buffer: the line's head (``consumed``
    bytes), and possibly its newline. Dropping only the head would hand the rest of the line
    on as a line of its own, counted a second time.
    """
    skipped = 0
    while True:
        skipped += len(await reader.readexactly(consumed))
        try:
            return skipped + len(await reader.readuntil(b"\n"))
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed
