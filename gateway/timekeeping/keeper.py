"""The gateway's answer to "what time is it, and can we trust it".

Every event time is derived from the monotonic clock plus an offset (an :class:`_Anchor`: a UTC
time pinned to a monotonic reading). Trusted sources move the anchor: the GPS driver's trusted
time first, else the system clock while NTP says it is synchronised. With no trusted source the
anchor is the system clock sampled once at start (or the last trusted anchor, free-running), and
events are stamped ``unsynced`` with a :class:`~gateway.events.ClockRef`, so that once a trusted
source appears :meth:`TimeKeeper.correct_payload` corrects them before they are sent. Because
nothing reads the wall clock per event, a wall clock that jumps (NTP step, RTC reset) never
reorders events; stamps taken in monotonic order under a trusted source never go backwards
(small backward corrections are absorbed by holding time still, see ``BACKSTEP_HOLD_MAX_S``).

A SmartLabel's own clock (frame ``label_time``, history reading times) is mapped to gateway time
through the time sync the gateway sent it (see :meth:`TimeKeeper.label_clock`).

Pure: no I/O and no asyncio; the system clock is read only at start and in :meth:`refresh`, and
the NTP probe is an injected function (:func:`~gateway.timekeeping.system_ntp_synchronized`).
"""

from __future__ import annotations

import collections
import enum
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from drivers.gps import TIME_HOLDOVER_S, TrustedTime
from foundation.clock import Clock
from gateway.events import ClockRef, TimeSource
from gateway.timekeeping.labels import (
    LABEL_CLOCK_AHEAD_MAX_S,
    LABEL_FRAME_MAX_AGE_S,
    LABEL_HISTORY_MAX_AGE_S,
    LabelStamp,
    LabelTimeIssue,
    TimeSyncValue,
)
from protocols.smartlabel import SYNCED_TIME_MIN_S
from protocols.smartlabel import TimeSource as LabelTimeSource

__all__ = [
    "BACKSTEP_HOLD_MAX_S",
    "GPS_TIME_MIN",
    "ClockState",
    "Stamp",
    "TimeKeeper",
    "TimeKeeperStats",
]

#: A trusted source that corrects time backwards by at most this much (GPS transmission jitter,
#: switching between GPS and NTP, an NTP step of a well-kept clock) is absorbed: stamps hold
#: still until true time catches up, so events stamped in order never go backwards. A larger
#: backward correction means the earlier trusted time was wrong; the correct time then wins
#: (counted in ``steps_back``), because holding still for longer would stamp minutes of events
#: with one time.
BACKSTEP_HOLD_MAX_S: Final = 5.0
#: GPS times before this are refused as a source: a receiver hit by a week-number rollover
#: reports dates 1024 weeks (19.6 years) back with a "valid" fix. tagrelay did not exist then.
GPS_TIME_MIN: Final = datetime(2024, 1, 1, tzinfo=UTC)

_UNSYNCED_MARK: Final = b'"time_source":"unsynced"'
_LABEL_SOURCES: Final = {
    TimeSource.GPS: LabelTimeSource.GPS,
    TimeSource.NTP: LabelTimeSource.NTP,
    TimeSource.RTC: LabelTimeSource.RTC,
    TimeSource.UNSYNCED: LabelTimeSource.UNSYNCED,
}

_log = logging.getLogger(__name__)


class ClockState(enum.StrEnum):
    """The gateway clock's state: the retained birth message's ``clock_state``.

    There is no ``rtc`` state: Linux cannot tell a battery-backed RTC that was set from one that
    lost its battery (both just set the clock at boot), so without NTP or GPS the clock is
    ``unsynced``. :class:`~gateway.events.TimeSource` keeps ``rtc`` for boards that know better.
    """

    GPS = "gps"
    NTP = "ntp"
    UNSYNCED = "unsynced"

    @property
    def time_source(self) -> TimeSource:
        return TimeSource(self.value)


@dataclass(frozen=True, slots=True)
class Stamp:
    """The time of an event observed at a monotonic reading, and how far to trust it."""

    time: datetime
    source: TimeSource
    #: Set when ``source`` is unsynced: the reading, so that the time can be corrected later.
    clock_ref: ClockRef | None


@dataclass(frozen=True, slots=True)
class TimeKeeperStats:
    """Counters of the time keeper (for the status report and tests)."""

    #: Unsynced payloads corrected by :meth:`TimeKeeper.correct_payload`.
    corrected: int
    #: Unsynced payloads of another boot: left as they are (their monotonic reading is void).
    other_boot: int
    #: Payloads that looked unsynced but were not a well-formed event: left as they are.
    bad_payloads: int
    #: Backward corrections larger than ``BACKSTEP_HOLD_MAX_S`` that were applied.
    steps_back: int
    #: GPS times refused as implausible (before ``GPS_TIME_MIN``).
    gps_refused: int
    #: NTP probes that raised (counted as "not synchronised").
    probe_failures: int
    #: Label times that could not be used as they are, by reason.
    label_time_issues: Mapping[LabelTimeIssue, int]


@dataclass(frozen=True, slots=True)
class _Anchor:
    """A UTC time pinned to a monotonic reading: time(m) = utc + (m - monotonic)."""

    utc: datetime
    monotonic: float

    def at(self, monotonic: float) -> datetime:
        return self.utc + timedelta(seconds=monotonic - self.monotonic)


@dataclass(frozen=True, slots=True)
class _Sync:
    """A time sync sent to a label: its clock read ``utc`` at gateway ``monotonic``."""

    utc_s: float
    monotonic: float


class TimeKeeper:
    """Owns the gateway's time: sources, state, stamps, corrections, label time mapping.

    ``clock`` is read at construction (the start sample) and in :meth:`refresh`; every other
    method takes the monotonic time from its caller. ``ntp_synchronized`` is polled by
    :meth:`refresh`; None means "never synchronised by NTP" (tests, a board without NTP).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        boot_id: str,
        ntp_synchronized: Callable[[], bool] | None = None,
    ) -> None:
        self._clock = clock
        self.boot_id = boot_id
        self._ntp_probe = ntp_synchronized
        monotonic = clock.monotonic()
        #: The system clock sampled once at start: the anchor while nothing is trusted.
        self._start = _Anchor(_utc(clock.now()), monotonic)
        self._now = monotonic
        self._gps: _Anchor | None = None
        self._ntp: _Anchor | None = None
        self._last_trusted: _Anchor | None = None
        self._state = ClockState.UNSYNCED
        #: The last stamp issued under a trusted source, and its monotonic reading.
        self._floor: datetime | None = None
        self._floor_monotonic = -math.inf
        self._syncs: dict[tuple[str, int], _Sync] = {}
        self._corrected = 0
        self._other_boot = 0
        self._bad_payloads = 0
        self._steps_back = 0
        self._gps_refused = 0
        self._probe_failures = 0
        self._label_issues: collections.Counter[LabelTimeIssue] = collections.Counter()

    # -- sources -------------------------------------------------------------------------------

    def on_gps(self, trusted: TrustedTime | None, monotonic: float) -> None:
        """The GPS driver's trusted time (``GpsDriver.trusted_time``); None: no GPS time."""
        self._advance(monotonic)
        if trusted is None:
            self._gps = None
        elif trusted.utc.tzinfo is None or trusted.utc < GPS_TIME_MIN:
            self._gps_refused += 1  # a naive time cannot be placed; an old one is a rollover
            self._gps = None
        else:
            self._gps = _Anchor(_utc(trusted.utc), trusted.monotonic)
        self._update_state()

    def refresh(self, monotonic: float) -> None:
        """Poll the NTP state (every few seconds) and expire GPS time after its holdover."""
        self._advance(monotonic)
        synced = False
        if self._ntp_probe is not None:
            try:
                synced = bool(self._ntp_probe())
            except Exception:  # an injected probe must not stop the pipeline
                self._probe_failures += 1
                _log.exception("NTP state probe failed; treating the clock as not synchronised")
        if synced:
            # Read both clocks together: the pair is the system clock's offset right now.
            self._ntp = _Anchor(_utc(self._clock.now()), self._clock.monotonic())
        else:
            self._ntp = None
        self._update_state()

    @property
    def state(self) -> ClockState:
        """GPS (within its holdover), else NTP, else unsynced, as of the latest call."""
        return self._state

    # -- stamping ------------------------------------------------------------------------------

    def stamp(self, monotonic: float) -> Stamp:
        """The time of an event observed at ``monotonic`` (the driver's receive time)."""
        self._advance(monotonic)
        self._update_state()
        return self._stamp_at(monotonic, hold=True)

    def peek(self, monotonic: float) -> datetime:
        """The time :meth:`stamp` would give at ``monotonic``, changing nothing (metrics)."""
        return self._stamp_at(monotonic, hold=False).time

    def _stamp_at(self, monotonic: float, *, hold: bool) -> Stamp:
        anchor = self._trusted_anchor()
        if anchor is None:
            base = self._last_trusted or self._start
            return Stamp(
                base.at(monotonic),
                TimeSource.UNSYNCED,
                ClockRef(boot_id=self.boot_id, monotonic_s=monotonic),
            )
        time = anchor.at(monotonic)
        if monotonic >= self._floor_monotonic:
            if self._floor is not None and time < self._floor:
                time = self._floor
            if hold:
                self._floor, self._floor_monotonic = time, monotonic
        return Stamp(time, self._state.time_source, None)

    def correct_payload(self, payload: bytes) -> bytes:
        """An unsynced event of this boot, corrected with the trusted offset; else unchanged.

        The time becomes the trusted time of its ``clock_ref.monotonic_s``, ``time_source`` the
        correcting source, ``time_corrected`` true and ``clock_ref`` null. Anything else (a
        synced event, another boot's, no trusted source yet, bytes that are not an event) is
        returned as it is: the same object, after one bytes search for payloads that are not
        unsynced. Never raises.
        """
        if _UNSYNCED_MARK not in payload:
            return payload
        anchor = self._trusted_anchor()
        if anchor is None:
            return payload
        try:
            event = json.loads(payload)
            if not isinstance(event, dict) or "time" not in event:
                raise ValueError("not an event")
            if event.get("time_source") != TimeSource.UNSYNCED.value:
                return payload  # the mark was in a nested field: a synced event
            ref = event["clock_ref"]
            if not isinstance(ref, dict):
                raise ValueError("an unsynced event without clock_ref")
            monotonic = ref["monotonic_s"]
            if isinstance(monotonic, bool) or not isinstance(monotonic, int | float):
                raise ValueError("monotonic_s is not a number")
            if ref["boot_id"] != self.boot_id:
                self._other_boot += 1
                return payload
            time = anchor.at(float(monotonic))
            event["time"] = time.isoformat().replace("+00:00", "Z")
            event["time_source"] = self._state.value
            event["time_corrected"] = True
            event["clock_ref"] = None
            corrected = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
            self._bad_payloads += 1
            return payload
        self._corrected += 1
        return corrected

    # -- SmartLabel time -----------------------------------------------------------------------

    def time_sync(self, reader: str, label_id: int, monotonic: float) -> TimeSyncValue:
        """What to send in a time sync to ``label_id`` (or the broadcast id) on ``reader`` now,
        recorded so that the label's clock can be mapped back to gateway time.

        An unsynced gateway's sync carries source UNSYNCED, which a label does not apply, so it
        is not recorded. Call it right before sending; a sync that did not arrive is harmless
        (:meth:`label_clock` checks the label's clock against it).
        """
        stamp = self.stamp(monotonic)
        if stamp.source is not TimeSource.UNSYNCED:
            self._syncs[(reader, label_id)] = _Sync(stamp.time.timestamp(), monotonic)
        return TimeSyncValue(stamp.time, _LABEL_SOURCES[stamp.source])

    def label_clock(
        self,
        reader: str,
        label_id: int,
        label_time: int,
        *,
        frame_time: int,
        received: float,
        broadcast_id: int | None = None,
    ) -> LabelStamp:
        """Gateway time for a time a label reported (its frame header ``label_time``, or a
        history reading's ``time``), in a frame whose header said ``frame_time`` and that the
        gateway received at monotonic ``received``.

        - Label UTC (at or above ``SYNCED_TIME_MIN_S``) is mapped through the time sync this
          gateway sent the label (or its reader's broadcast, ``broadcast_id``); without one,
          through the frame header's distance to the receive time.
        - Label uptime (below it) is placed by its distance to the header (``label_unsynced``).
        - A label clock that disagrees with the gateway by more than the frame age allowed
          (years off, a reset clock), a reading after its frame, or an uptime in a frame with a
          UTC header: the receive time, with the reason counted.
        """
        issue: LabelTimeIssue | None = None
        monotonic: float | None
        if label_time < SYNCED_TIME_MIN_S:
            if frame_time >= SYNCED_TIME_MIN_S:
                issue, monotonic = LabelTimeIssue.UPTIME_BEFORE_SYNC, None
            else:
                issue, monotonic = (
                    LabelTimeIssue.LABEL_UNSYNCED,
                    received - (frame_time - label_time),
                )
        elif frame_time < SYNCED_TIME_MIN_S:
            issue, monotonic = LabelTimeIssue.LABEL_CLOCK_OFF, None
        else:
            monotonic = self._label_utc_to_monotonic(
                reader, label_id, broadcast_id, label_time, frame_time, received
            )
            if monotonic is None:
                issue = LabelTimeIssue.LABEL_CLOCK_OFF
        if monotonic is not None:
            if label_time > frame_time + LABEL_CLOCK_AHEAD_MAX_S:
                issue, monotonic = LabelTimeIssue.READING_AFTER_FRAME, None
            elif frame_time - label_time > LABEL_HISTORY_MAX_AGE_S:
                issue, monotonic = LabelTimeIssue.LABEL_CLOCK_OFF, None
        if issue is not None:
            self._label_issues[issue] += 1
        self._advance(received)
        self._update_state()
        # A reading cannot have happened after the frame carrying it arrived.
        at = received if monotonic is None else min(monotonic, received)
        return LabelStamp(self._stamp_at(at, hold=False), issue)

    def _label_utc_to_monotonic(
        self,
        reader: str,
        label_id: int,
        broadcast_id: int | None,
        label_time: int,
        frame_time: int,
        received: float,
    ) -> float | None:
        keys = (
            [(reader, label_id)]
            if broadcast_id is None
            else [(reader, label_id), (reader, broadcast_id)]
        )
        syncs = sorted(
            (sync for key in keys if (sync := self._syncs.get(key)) is not None),
            key=lambda sync: sync.monotonic,
            reverse=True,  # the label applied the latest sync that reached it
        )
        for sync in syncs:
            if _plausible(sync.monotonic + frame_time - sync.utc_s, received):
                return sync.monotonic + (label_time - sync.utc_s)
        anchor = self._trusted_anchor()
        if anchor is not None:
            # No sync of ours: the label's UTC is fine if it agrees with our trusted time.
            now_s = anchor.at(received).timestamp()
            if not _plausible(received + frame_time - now_s, received):
                return None
            return received + (label_time - now_s)
        # Nothing to judge the label's UTC by: place it by its distance to the header.
        return received - (frame_time - label_time)

    # -- state ---------------------------------------------------------------------------------

    @property
    def stats(self) -> TimeKeeperStats:
        return TimeKeeperStats(
            corrected=self._corrected,
            other_boot=self._other_boot,
            bad_payloads=self._bad_payloads,
            steps_back=self._steps_back,
            gps_refused=self._gps_refused,
            probe_failures=self._probe_failures,
            label_time_issues=dict(self._label_issues),
        )

    def _advance(self, monotonic: float) -> None:
        self._now = max(self._now, monotonic)

    def _trusted_anchor(self) -> _Anchor | None:
        if self._state is ClockState.GPS:
            return self._gps
        if self._state is ClockState.NTP:
            return self._ntp
        return None

    def _update_state(self) -> None:
        if self._gps is not None and self._now - self._gps.monotonic > TIME_HOLDOVER_S:
            self._gps = None
        if self._gps is not None:
            state, anchor = ClockState.GPS, self._gps
        elif self._ntp is not None:
            state, anchor = ClockState.NTP, self._ntp
        else:
            self._state = ClockState.UNSYNCED
            return
        previous = self._last_trusted
        if previous is not None and anchor != previous and self._floor is not None:
            back_s = (self._floor - anchor.at(self._floor_monotonic)).total_seconds()
            if back_s > BACKSTEP_HOLD_MAX_S:
                # The earlier trusted time was wrong by more than any jitter: the new one wins.
                self._steps_back += 1
                _log.warning("trusted time went back %.3f s (%s): not holding", back_s, state)
                self._floor, self._floor_monotonic = None, -math.inf
        self._state = state
        self._last_trusted = anchor


def _plausible(label_monotonic: float, received: float) -> bool:
    """A label clock reading that maps to ``label_monotonic`` fits a frame received then."""
    return received - LABEL_FRAME_MAX_AGE_S <= label_monotonic <= received + LABEL_CLOCK_AHEAD_MAX_S


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"times are UTC-aware, got {value!r}")
    return value.astimezone(UTC)
