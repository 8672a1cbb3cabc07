"""Presence: which tracked tags are in which zone of this gateway, decided from their RSSI.

Data path role: the pipeline's presence stage feeds every advert of a tracked tag (already
decoded and normalised to a tag id, and bound to the zone of the scanner that heard it) into
:meth:`PresenceTracker.observe`, calls :meth:`PresenceTracker.tick` about once a second, and
tells it when a scanner stops or (re)starts. The tracker answers with
:class:`PresenceChange` values that the stage turns into ``presence.enter`` / ``presence.exit``
events. It does no I/O and reads no clock: every time is a monotonic second handed in.

Per (tag, zone) the RSSI goes through a short fenced mean (docs/presence.md says why that
filter): the mean of the last N samples, each clipped to within a fence of the current mean,
restarted when several samples in a row land beyond the fence on the same side (the tag moved)
or after a silence longer than the tag's exit timeout (its old samples are stale). A tag enters
when the smoothed value stays at or above the zone's enter level for a few adverts, and leaves
when it stays below the lower exit level, or when it has not been heard for a few of its own
learned advertising intervals (within a floor and a ceiling). While the scanner that heard it is
down, or has just restarted and not heard it again, a present tag is ``unknown``: it never times
out then, so a bluetoothd restart does not turn into a wave of false exits.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from gateway.presence.config import PresenceConfig, ZoneConfig

__all__ = [
    "INTERVAL_BLOCK_GAPS",
    "MIN_ADVERT_GAP_S",
    "MIN_DECISION_SAMPLES",
    "PresenceChange",
    "PresenceState",
    "PresenceStats",
    "PresenceTracker",
    "Sighting",
]

#: BLE's shortest legal advertising interval is 20 ms; a shorter gap from the same scanner is a
#: duplicate report of one advert and says nothing about the interval.
MIN_ADVERT_GAP_S: Final = 0.02
#: The interval is the shortest gap in each block of this many gaps: a missed advert doubles one
#: gap, but all eight are rarely missed, and a tag that slows down is followed within a block.
INTERVAL_BLOCK_GAPS: Final = 8
#: No enter or exit is decided on fewer samples (after a start or a restart of the window): one
#: or two raw adverts carry the full 4-8 dB shadowing noise.
MIN_DECISION_SAMPLES: Final = 3

PresenceState = Literal["present", "absent", "unknown"]


@dataclass(frozen=True, slots=True)
class Sighting:
    """One advert of a tracked tag heard by one scanner."""

    tag: str
    """The tag id, e.g. ``ibeacon:<uuid>:<major>:<minor>``."""
    scanner: str
    """The scanner (adapter) that heard it, e.g. ``hci0``."""
    zone: str
    """The zone that scanner is bound to, e.g. ``door-3`` or ``cargo``."""
    rssi: int
    """dBm."""
    monotonic: float
    """Seconds on the gateway's monotonic clock, when the advert was received."""


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A tag entered or left a zone, with the evidence for it."""

    kind: Literal["enter", "exit"]
    tag: str
    zone: str
    scanner: str
    """The scanner that heard the tag last."""
    first_seen: float
    """Monotonic seconds: the first advert of the run that made the tag present."""
    last_seen: float
    """Monotonic seconds: the last advert counted in this visit."""
    sightings: int
    """Adverts counted in this visit (from ``first_seen`` to ``last_seen``)."""
    rssi_max_dbm: float
    rssi_mean_dbm: float
    """Of the raw RSSI of the visit's adverts."""
    dwell_s: float
    """``last_seen - first_seen``."""
    reason: Literal["rssi", "timeout"]
    """``rssi``: the smoothed RSSI crossed the level; ``timeout``: the tag fell silent (exit)."""
    decided_at: float
    """Monotonic seconds when the tracker decided (the advert's time, or the tick's)."""
    smoothed_rssi_dbm: float | None
    """The smoothed RSSI the decision was made on; None for a timeout (there is no fresh one)."""
    interval_s: float | None
    """The tag's learned advertising interval, None when not learned yet."""


@dataclass(frozen=True, slots=True)
class PresenceStats:
    """Counters of a tracker, for metrics (monotonic except ``tracked`` and ``present``)."""

    tracked: int
    """(tag, zone) entries held now (at most ``max_tags``)."""
    present: int
    """Entries present (or unknown because their scanner is down) now."""
    enters: int
    exits: int
    exits_rssi: int
    exits_timeout: int
    evicted: int
    """Entries dropped to make room for a new one because the table was full."""
    evicted_present: int
    """... of which were present (their exit is lost: raise ``max_tags``)."""
    forgotten: int
    """Absent entries dropped after ``forget_after_s`` of silence."""
    out_of_order: int
    """Sightings older than the entry's last one, ignored."""
    implicit_up: int
    """Sightings from a scanner reported down: it is scanning again, treated as scanner_up."""


class _Rules:
    """One zone's rules, resolved into plain attributes for the hot path."""

    __slots__ = (
        "ceiling",
        "enter",
        "enter_n",
        "exit",
        "exit_n",
        "fence",
        "floor",
        "grace",
        "multiple",
        "neg_fence",
        "restart_n",
        "window",
    )

    def __init__(self, z: ZoneConfig) -> None:
        self.enter = z.enter_rssi_dbm
        self.exit = z.exit_rssi_dbm
        self.enter_n = z.enter_sightings
        self.exit_n = z.exit_sightings
        self.window = z.window_samples
        self.fence = z.fence_db
        self.neg_fence = -z.fence_db
        self.restart_n = z.fence_restart_sightings
        self.multiple = z.timeout_interval_multiple
        self.floor = z.timeout_floor_s
        self.ceiling = z.timeout_ceiling_s
        self.grace = z.restart_grace_s

    def timeout(self, interval: float) -> float:
        return min(self.ceiling, max(self.floor, self.multiple * interval))


class _Scanner:
    __slots__ = ("name", "up", "up_since", "zones")

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.up_since = -math.inf
        self.zones: set[str] = set()


class _Track:
    """The state of one (tag, zone): the filter window, the interval estimate, the visit."""

    __slots__ = (
        "first_seen",
        "gap_min",
        "gap_n",
        "idx",
        "interval",
        "key",
        "last_seen",
        "n",
        "present",
        "queued_at",
        "ring",
        "rssi_max",
        "rssi_sum",
        "rules",
        "run",
        "run_sum",
        "scanner",
        "sightings",
        "streak",
        "timeout",
        "total",
    )

    def __init__(self, key: tuple[str, str], scanner: str, rules: _Rules, t: float) -> None:
        self.key = key
        self.scanner = scanner
        self.rules = rules
        self.ring: list[float] = [0.0] * rules.window
        self.idx = 0
        self.n = 0
        self.total = 0.0
        self.run = 0
        self.run_sum = 0.0
        self.present = False
        self.streak = 0
        self.first_seen = t
        self.last_seen = t
        self.sightings = 0
        self.rssi_sum = 0
        self.rssi_max = -1000
        self.interval = math.inf
        self.gap_min = math.inf
        self.gap_n = 0
        self.timeout = rules.ceiling
        self.queued_at = t

    def restart(self) -> None:
        """Forget the window (stale or superseded samples)."""
        self.idx = 0
        self.n = 0
        self.total = 0.0
        self.run = 0
        self.run_sum = 0.0
        if not self.present:
            self.streak = 0


class PresenceTracker:
    """Per (tag, zone) presence from sightings; pure, fed monotonic seconds.

    Not thread-safe: one pipeline stage owns it.
    """

    def __init__(self, config: PresenceConfig) -> None:
        self._config = config
        self._max = config.max_tags
        self._forget_s = config.forget_after_s
        self._rules: dict[str, _Rules] = {}
        self._tracks: dict[tuple[str, str], _Track] = {}
        # Eviction order: second chance (CLOCK). Tracks are queued when created; the front one
        # is evicted if it was not heard since it was queued, else queued again. That finds an
        # entry silent for longest at O(1) amortised, without reordering on every advert.
        self._queue: deque[_Track] = deque()
        self._present: dict[tuple[str, str], _Track] = {}
        self._scanners: dict[str, _Scanner] = {}
        self._zone_scanners: dict[str, set[str]] = {}
        self._down: set[str] = set()
        self._now = -math.inf
        self._enters = 0
        self._exits_rssi = 0
        self._exits_timeout = 0
        self._evicted = 0
        self._evicted_present = 0
        self._forgotten = 0
        self._out_of_order = 0
        self._implicit_up = 0

    # --- the hot path ----------------------------------------------------------------------

    def observe(self, sighting: Sighting) -> PresenceChange | None:
        """Take one advert; returns the enter or exit it decides, if any."""
        t = sighting.monotonic
        key = (sighting.tag, sighting.zone)
        tracks = self._tracks
        e = tracks.get(key)
        if e is None:
            e = self._new_track(key, sighting)
            rules = e.rules
        else:
            gap = t - e.last_seen
            if gap < 0.0:
                self._out_of_order += 1
                return None
            rules = e.rules
            if sighting.scanner != e.scanner:
                # Another scanner of the zone: its timing says nothing about the interval.
                e.scanner = sighting.scanner
                self._bind(sighting.scanner, sighting.zone)
            elif gap >= MIN_ADVERT_GAP_S:
                if gap < e.gap_min:
                    e.gap_min = gap
                    if gap < e.interval:
                        # A shorter interval is taken at once (exits stay prompt) ...
                        e.interval = gap
                        e.timeout = rules.timeout(gap)
                gap_n = e.gap_n + 1
                if gap_n >= INTERVAL_BLOCK_GAPS:
                    # ... a longer one only from a whole block (missed adverts do not count).
                    e.interval = e.gap_min
                    e.timeout = rules.timeout(e.gap_min)
                    gap_n = 0
                    e.gap_min = math.inf
                e.gap_n = gap_n
            if gap > e.timeout:
                e.restart()
        if self._down and sighting.scanner in self._down:
            self._implicit_up += 1
            self.scanner_up(sighting.scanner, t)
        e.last_seen = t
        r = sighting.rssi

        # The fenced mean.
        n = e.n
        if n >= MIN_DECISION_SAMPLES:
            total = e.total
            mean = total / n
            dev = r - mean
            v: float = r
            if dev > rules.fence:
                v = mean + rules.fence
                if e.run > 0:
                    e.run += 1
                    e.run_sum += r
                else:
                    e.run = 1
                    e.run_sum = r
            elif dev < rules.neg_fence:
                v = mean - rules.fence
                if e.run < 0:
                    e.run -= 1
                    e.run_sum += r
                else:
                    e.run = -1
                    e.run_sum = r
            elif e.run:
                e.run = 0
            if e.run and abs(e.run) >= rules.restart_n:
                self._restart_at_run(e)
                n = e.n
                total = e.total
            else:
                ring = e.ring
                idx = e.idx
                window = rules.window
                if n < window:
                    n += 1
                    e.n = n
                    total += v
                else:
                    total += v - ring[idx]
                ring[idx] = v
                idx += 1
                e.idx = 0 if idx == window else idx
                e.total = total
        else:
            # Starting (or restarted): no fence until the mean means something.
            e.ring[e.idx] = r
            e.idx += 1
            n += 1
            e.n = n
            total = e.total = e.total + r
        smoothed = total / n

        # The decision.
        if e.present:
            e.sightings += 1
            e.rssi_sum += r
            if r > e.rssi_max:
                e.rssi_max = r
            if smoothed < rules.exit and n >= MIN_DECISION_SAMPLES:
                e.streak += 1
                if e.streak >= rules.exit_n:
                    return self._exit(e, "rssi", t, smoothed)
            elif e.streak:
                e.streak = 0
            return None
        if smoothed >= rules.enter and n >= MIN_DECISION_SAMPLES:
            streak = e.streak
            if streak == 0:
                e.first_seen = t
                e.sightings = 1
                e.rssi_sum = r
                e.rssi_max = r
            else:
                e.sightings += 1
                e.rssi_sum += r
                if r > e.rssi_max:
                    e.rssi_max = r
            e.streak = streak = streak + 1
            if streak >= rules.enter_n:
                return self._enter(e, t, smoothed)
        elif e.streak:
            e.streak = 0
        return None

    def _restart_at_run(self, e: _Track) -> None:
        """The last ``run`` samples all lay beyond the fence on one side: restart there."""
        k = abs(e.run)
        level = e.run_sum / k
        k = min(k, e.rules.window)
        ring = e.ring
        for i in range(k):
            ring[i] = level
        e.idx = 0 if k == e.rules.window else k
        e.n = k
        e.total = level * k
        e.run = 0
        e.run_sum = 0.0

    def _new_track(self, key: tuple[str, str], s: Sighting) -> _Track:
        t = s.monotonic
        if t > self._now:
            self._now = t
        if len(self._tracks) >= self._max:
            self._evict()
        rules = self._rules.get(s.zone)
        if rules is None:
            rules = self._rules[s.zone] = _Rules(self._config.zone(s.zone))
        e = _Track(key, s.scanner, rules, t)
        e.queued_at = self._now
        self._tracks[key] = e
        self._queue.append(e)
        self._bind(s.scanner, s.zone)
        return e

    def _evict(self) -> None:
        """Drop the entry silent for longest (second chance), counted."""
        queue = self._queue
        while queue:
            e = queue.popleft()
            if e.last_seen > e.queued_at:
                e.queued_at = max(self._now, e.last_seen)  # heard since queued: second chance
                queue.append(e)
                continue
            del self._tracks[e.key]
            self._evicted += 1
            if e.present:
                self._evicted_present += 1
                del self._present[e.key]
            return

    def _bind(self, scanner: str, zone: str) -> None:
        sc = self._scanners.get(scanner)
        if sc is None:
            sc = self._scanners[scanner] = _Scanner(scanner)
        if zone not in sc.zones:
            sc.zones.add(zone)
            self._zone_scanners.setdefault(zone, set()).add(scanner)

    def _enter(self, e: _Track, t: float, smoothed: float) -> PresenceChange:
        e.present = True
        e.streak = 0
        self._present[e.key] = e
        self._enters += 1
        return self._change(e, "enter", "rssi", t, smoothed)

    def _exit(
        self, e: _Track, reason: Literal["rssi", "timeout"], t: float, smoothed: float | None
    ) -> PresenceChange:
        e.present = False
        e.streak = 0
        del self._present[e.key]
        if reason == "rssi":
            self._exits_rssi += 1
        else:
            self._exits_timeout += 1
            e.restart()
        return self._change(e, "exit", reason, t, smoothed)

    @staticmethod
    def _change(
        e: _Track,
        kind: Literal["enter", "exit"],
        reason: Literal["rssi", "timeout"],
        t: float,
        smoothed: float | None,
    ) -> PresenceChange:
        count = e.sightings
        return PresenceChange(
            kind=kind,
            tag=e.key[0],
            zone=e.key[1],
            scanner=e.scanner,
            first_seen=e.first_seen,
            last_seen=e.last_seen,
            sightings=count,
            rssi_max_dbm=float(e.rssi_max),
            rssi_mean_dbm=e.rssi_sum / count if count else math.nan,
            dwell_s=e.last_seen - e.first_seen,
            reason=reason,
            decided_at=t,
            smoothed_rssi_dbm=smoothed,
            interval_s=None if e.interval == math.inf else e.interval,
        )

    # --- time and scanners -----------------------------------------------------------------

    def tick(self, monotonic: float) -> list[PresenceChange]:
        """Decide timeouts (call about once a second) and forget long-silent absent tags."""
        now = monotonic
        if now > self._now:
            self._now = now
        due: list[_Track] = []
        scanners = self._scanners
        for e in self._present.values():
            if now - e.last_seen < e.timeout:
                continue
            sc = scanners[e.scanner]
            if not sc.up:
                continue  # unknown: the scanner is down, its silence proves nothing
            if sc.up_since > e.last_seen and now < sc.up_since + e.rules.grace:
                continue  # the scanner restarted and may not have heard the tag again yet
            due.append(e)
        changes = [self._exit(e, "timeout", now, None) for e in due]
        self._forget(now)
        return changes

    def _forget(self, now: float) -> None:
        """Drop absent tracks silent for ``forget_after_s``; each track is looked at about once
        per ``forget_after_s`` (when it reaches the queue's front), so a tick stays cheap."""
        queue = self._queue
        limit = now - self._forget_s
        while queue and queue[0].queued_at <= limit:
            e = queue.popleft()
            if e.last_seen > limit or e.present:
                # Heard recently, or held while its scanner is down: queue it again.
                e.queued_at = max(now, e.last_seen)
                queue.append(e)
            else:
                del self._tracks[e.key]
                self._forgotten += 1

    def scanner_up(self, scanner: str, monotonic: float) -> None:
        """``scanner`` (re)started scanning at ``monotonic``: its tags get a grace period."""
        if monotonic > self._now:
            self._now = monotonic
        sc = self._scanners.get(scanner)
        if sc is None:
            sc = self._scanners[scanner] = _Scanner(scanner)
        sc.up = True
        sc.up_since = monotonic
        self._down.discard(scanner)

    def scanner_down(self, scanner: str, monotonic: float) -> None:
        """``scanner`` stopped (silent, adapter gone, bluetoothd gone): its tags are unknown."""
        if monotonic > self._now:
            self._now = monotonic
        sc = self._scanners.get(scanner)
        if sc is None:
            sc = self._scanners[scanner] = _Scanner(scanner)
        sc.up = False
        self._down.add(scanner)

    # --- queries ---------------------------------------------------------------------------

    def state(self, tag: str, zone: str) -> PresenceState:
        """``present``, ``absent``, or ``unknown`` (no live scanner can vouch for either)."""
        e = self._tracks.get((tag, zone))
        if e is not None and e.present:
            sc = self._scanners[e.scanner]
            if not sc.up or sc.up_since > e.last_seen:
                return "unknown"
            return "present"
        names = self._zone_scanners.get(zone)
        if not names:
            return "unknown"
        grace = self._rule(zone).grace
        for name in names:
            sc = self._scanners[name]
            if sc.up and self._now >= sc.up_since + grace:
                return "absent"
        return "unknown"

    def smoothed_rssi(self, tag: str, zone: str) -> float | None:
        """The current smoothed RSSI in dBm; None when there is no fresh one."""
        e = self._tracks.get((tag, zone))
        if e is None or e.n == 0:
            return None
        sc = self._scanners[e.scanner]
        if not sc.up or sc.up_since > e.last_seen or self._now - e.last_seen > e.timeout:
            return None
        return e.total / e.n

    def interval(self, tag: str, zone: str) -> float | None:
        """The learned advertising interval in seconds; None when not learned."""
        e = self._tracks.get((tag, zone))
        if e is None or e.interval == math.inf:
            return None
        return e.interval

    def present(self, zone: str | None = None) -> list[str]:
        """Tags present (or unknown while their scanner is down) in ``zone``, or in any zone."""
        return [k[0] for k in self._present if zone is None or k[1] == zone]

    def _rule(self, zone: str) -> _Rules:
        rules = self._rules.get(zone)
        if rules is None:
            rules = self._rules[zone] = _Rules(self._config.zone(zone))
        return rules

    @property
    def stats(self) -> PresenceStats:
        return PresenceStats(
            tracked=len(self._tracks),
            present=len(self._present),
            enters=self._enters,
            exits=self._exits_rssi + self._exits_timeout,
            exits_rssi=self._exits_rssi,
            exits_timeout=self._exits_timeout,
            evicted=self._evicted,
            evicted_present=self._evicted_present,
            forgotten=self._forgotten,
            out_of_order=self._out_of_order,
            implicit_up=self._implicit_up,
        )

    # Shorthands for the counters the pipeline exports.
    @property
    def tracked(self) -> int:
        return len(self._tracks)

    @property
    def evicted(self) -> int:
        return self._evicted

    @property
    def enters(self) -> int:
        return self._enters

    @property
    def exits(self) -> int:
        return self._exits_rssi + self._exits_timeout
