"""Handoff sessions at a dock door: what crossed from the vehicle to the dock, with evidence.

Data path role: the pipeline feeds every sighting of a tracked tag in a door zone; a session
open on that door keeps per-item evidence and decides, by the portal rule below, which expected
items crossed. The rule (docs/custody.md has the reasoning and the figures):

1. *Portal read*: an advert at least :data:`~gateway.custody.rules.PORTAL_RSSI_DBM` loud, as a
   parcel carried through the door frame produces. It opens a candidate crossing.
2. *Dwell*: over the :data:`DWELL_S` after the carry the item is still heard (at least
   :data:`DWELL_MIN_SIGHTINGS` adverts), so it was not carried on past the door.
3. *Level*: its mean level in that dwell beats its own level before the portal read by
   :data:`LEVEL_RISE_DB`, and the load it came with (the session's other unconfirmed expected
   items) did not rise with it by :data:`COHORT_STILL_DB` (a vehicle reversing onto the door
   lifts its whole load; a carry lifts one item): it is no longer behind the vehicle's body.
   Then it is confirmed, live.
   If the level cannot tell (a parcel from the front of the trailer put down deep on the dock
   sounds alike), the item is *pending*: when the session reports, :data:`CLOSE_SETTLE_S` after
   its close, a pending item still heard in the last :data:`FADE_S` stayed when the vehicle
   pulled away and is confirmed; one that fell silent left with the vehicle and is missing.

A session closes by command, at its window's end, or when its vehicle's own tag (if given)
falls silent at the door (:data:`VEHICLE_GONE_S`).

Expected and confirmed = confirmed, expected only = missing, crossed but not expected =
unexpected (with the stricter :data:`UNEXPECTED_MIN_LEVEL_DBM`), as in an EPCglobal ALE report.
Pure: no I/O, no clock; time is the caller's monotonic seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import JsonValue

from gateway.custody.errors import CustodyError
from gateway.custody.results import Claim, Fix, HandoffReport, ItemConfirmed, ItemEvidence
from gateway.custody.rules import (
    CLAIM_MARGIN_DB,
    CLAIM_MAX_AGE_S,
    CLAIM_MIN_SIGHTINGS,
    CLOSE_SETTLE_S,
    COHORT_BEFORE_S,
    COHORT_MAX_ITEMS,
    COHORT_MIN_ITEMS,
    COHORT_STILL_DB,
    DWELL_MIN_SIGHTINGS,
    DWELL_S,
    FADE_S,
    LEVEL_EMA_ALPHA,
    LEVEL_RISE_DB,
    MAX_DOCUMENTS,
    MAX_ID_CHARS,
    MAX_ITEMS_PER_SESSION,
    MAX_OPEN_SESSIONS,
    MAX_SESSION_WINDOW_S,
    MAX_TRACKED_PER_SESSION,
    PORTAL_RSSI_DBM,
    PORTAL_WINDOW_S,
    PRE_MIN_SIGHTINGS,
    PRE_QUIET_S,
    RECEIVER_FLOOR_DBM,
    REPORTED_KEPT,
    UNEXPECTED_MIN_LEVEL_DBM,
    UNEXPECTED_MIN_PEAK_DBM,
    VEHICLE_GONE_S,
    VEHICLE_MIN_SIGHTINGS,
)

__all__ = ["HandoffBook", "SessionSpec"]

CloseReason = Literal["command", "window_end", "vehicle_departed"]


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What ``handoff.open`` asks for, in monotonic time."""

    session_id: str
    door: str
    from_party: str
    to_party: str
    expected: tuple[str, ...]
    """Asset ids or tag ids; a sighting matches by its asset first, then its tag."""
    window_start_s: float
    window_end_s: float
    documents: tuple[tuple[str, str], ...] = ()
    vehicle: str | None = None
    """The vehicle's own tag (a tag id or asset id) heard at the door: the session closes by
    itself when the vehicle departs (see :data:`VEHICLE_GONE_S`)."""

    def fingerprint(self) -> str:
        """Identifies the content, so that a resent open is told from a conflicting one. The
        window is left out: a resend converts the same UTC window at a later monotonic time."""
        parts: list[object] = [
            self.door,
            self.from_party,
            self.to_party,
            sorted(self.expected),
            self.documents,
        ]
        if self.vehicle is not None:
            parts.append(self.vehicle)
        text = json.dumps(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(slots=True)
class _Track:
    """Evidence about one item in one session (mutable; only the session touches it)."""

    tag: str
    zone: str
    first_s: float
    last_s: float
    n: int = 0
    total: float = 0.0
    max_rssi: int = -200
    #: Exponential moving average of the level: where the item is now (see LEVEL_EMA_ALPHA).
    ema: float = 0.0
    recent: deque[tuple[float, int]] = field(default_factory=deque)
    cand_t: float | None = None
    cand_peak: int = -200
    cand_pre_n: int = 0
    cand_pre_sum: float = 0.0
    post_n: int = 0
    post_sum: float = 0.0
    crossed_t: float | None = None
    crossed_peak: int = -200
    dwell_level: float | None = None
    dock_n: int = 0
    dock_sum: float = 0.0
    pending: bool = False
    confirmed: bool = False

    def observe(self, t: float, rssi: int, zone: str) -> None:
        if self.cand_t is not None and self.cand_t + PORTAL_WINDOW_S < t:
            self.post_n += 1
            self.post_sum += rssi
        elif self.cand_t is not None:
            self.cand_peak = max(self.cand_peak, rssi)
        if self.crossed_t is not None and self.crossed_t + PORTAL_WINDOW_S < t:
            self.dock_n += 1
            self.dock_sum += rssi
        if rssi >= PORTAL_RSSI_DBM and self.cand_t is None and not self.confirmed:
            while self.recent and self.recent[0][0] < t - PORTAL_WINDOW_S:
                self.recent.popleft()
            self.cand_t = t
            self.cand_peak = max([rssi, *(r for _, r in self.recent)])
            self.cand_pre_n = self.n - len(self.recent)
            self.cand_pre_sum = self.total - sum(r for _, r in self.recent)
            self.post_n, self.post_sum = 0, 0.0
        self.ema = rssi if self.n == 0 else self.ema + LEVEL_EMA_ALPHA * (rssi - self.ema)
        self.n += 1
        self.total += rssi
        self.max_rssi = max(self.max_rssi, rssi)
        self.last_s = t
        self.zone = zone
        self.recent.append((t, rssi))
        while self.recent and self.recent[0][0] < t - PORTAL_WINDOW_S:
            self.recent.popleft()

    def claim_level(self) -> float | None:
        """The level since the carry: the current level once a crossing dwelt (the moving average
        once it has a minute of dock-side adverts, their mean before), else the dwell so far of
        a crossing still being measured."""
        if self.crossed_t is not None and self.dock_n >= CLAIM_MIN_SIGHTINGS:
            mean = self.dock_sum / self.dock_n
            return round(self.ema if self.dock_n >= 1 / LEVEL_EMA_ALPHA else mean, 2)
        if self.cand_t is not None and self.post_n >= CLAIM_MIN_SIGHTINGS:
            return round(self.post_sum / self.post_n, 2)
        return None

    def due(self, now: float) -> bool:
        return self.cand_t is not None and now >= self.cand_t + PORTAL_WINDOW_S + DWELL_S

    def level_before(self, t: float) -> tuple[int, float]:
        """Adverts and their sum before a portal read at ``t`` (those within the portal window
        before it belong to the carry)."""
        near = [r for at, r in self.recent if at >= t - PORTAL_WINDOW_S]
        return self.n - len(near), self.total - sum(near)

    def decide(
        self, listening_since: float, cohort_rise: float = 0.0
    ) -> Literal["level", "pending", "none"]:
        """Close the candidate crossing: confirmed by level, pending, or nothing. ``cohort_rise``
        is how much the load it came with rose over the same instants: at
        :data:`COHORT_STILL_DB` or more the load itself was moving (a vehicle reversing onto
        the door) and the level decides nothing; below it, the item's rise must beat
        :data:`LEVEL_RISE_DB` on top of the load's."""
        cand = self.cand_t
        assert cand is not None
        self.cand_t = None
        if self.post_n < DWELL_MIN_SIGHTINGS:
            return "none"  # carried on: not on this dock
        post = self.post_sum / self.post_n
        # The latest crossing that dwelt is the one that counts: an earlier portal read may have
        # been shadowing while the item was still in the trailer, whose level must not mix in.
        self.crossed_t, self.crossed_peak = cand, self.cand_peak
        self.dwell_level = post
        self.dock_n, self.dock_sum = self.post_n, self.post_sum
        pre = _level_before(self.cand_pre_n, self.cand_pre_sum, cand - listening_since)
        still = cohort_rise < COHORT_STILL_DB  # the load was not moving (or there is none)
        if still and pre is not None and post >= pre + LEVEL_RISE_DB + max(0.0, cohort_rise):
            self.confirmed = True
            return "level"
        self.pending = True
        return "pending"

    def evidence(self, item: str) -> ItemEvidence:
        return ItemEvidence(
            item=item,
            tag=self.tag,
            zone=self.zone,
            first_seen_s=self.first_s,
            last_seen_s=self.last_s,
            sightings=self.n,
            max_rssi_dbm=self.max_rssi,
            mean_rssi_dbm=round(self.total / self.n, 2) if self.n else RECEIVER_FLOOR_DBM,
            crossed_at_s=self.crossed_t,
            dwell_rssi_dbm=None if self.dwell_level is None else round(self.dwell_level, 2),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "zone": self.zone,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "n": self.n,
            "total": self.total,
            "max_rssi": self.max_rssi,
            "ema": self.ema,
            "recent": [[t, r] for t, r in self.recent],
            "cand_t": self.cand_t,
            "cand_peak": self.cand_peak,
            "crossed_peak": self.crossed_peak,
            "cand_pre_n": self.cand_pre_n,
            "cand_pre_sum": self.cand_pre_sum,
            "post_n": self.post_n,
            "post_sum": self.post_sum,
            "crossed_t": self.crossed_t,
            "dwell_level": self.dwell_level,
            "dock_n": self.dock_n,
            "dock_sum": self.dock_sum,
            "pending": self.pending,
            "confirmed": self.confirmed,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Track:
        tr = cls(tag=str(d["tag"]), zone=str(d["zone"]), first_s=d["first_s"], last_s=d["last_s"])
        tr.n, tr.total, tr.max_rssi = int(d["n"]), float(d["total"]), int(d["max_rssi"])
        tr.ema = float(d["ema"])
        tr.recent = deque((float(t), int(r)) for t, r in d["recent"])
        tr.cand_t = d["cand_t"]
        tr.cand_peak, tr.crossed_peak = int(d["cand_peak"]), int(d["crossed_peak"])
        tr.cand_pre_n, tr.cand_pre_sum = int(d["cand_pre_n"]), float(d["cand_pre_sum"])
        tr.post_n, tr.post_sum = int(d["post_n"]), float(d["post_sum"])
        tr.crossed_t, tr.dwell_level = d["crossed_t"], d["dwell_level"]
        tr.dock_n, tr.dock_sum = int(d["dock_n"]), float(d["dock_sum"])
        tr.pending, tr.confirmed = bool(d["pending"]), bool(d["confirmed"])
        return tr


@dataclass(slots=True)
class _Session:
    spec: SessionSpec
    opened_at: float
    expected: frozenset[str]
    tracks: dict[str, _Track] = field(default_factory=dict)
    candidates: set[str] = field(default_factory=set)
    order: tuple[str, ...] = ()
    """The expected items in a fixed order (the cohort's members are taken in it)."""
    closed_at: float | None = None
    close_reason: CloseReason = "command"
    untracked: int = 0
    """Sightings of items not tracked because the per-session table was full."""
    cohorts: dict[str, dict[str, tuple[int, float, int, float]]] = field(default_factory=dict)
    """Per candidate crossing, the load it came with as it was at the portal read: member ->
    (adverts and their sum before, adverts and their sum so far). See :meth:`HandoffBook._rise`."""
    vehicle_heard_s: float | None = None
    """When the session's vehicle tag was last heard (None: not yet, or no vehicle given)."""
    vehicle_sightings: int = 0

    @property
    def listening_since(self) -> float:
        return max(self.opened_at, self.spec.window_start_s)


class HandoffBook:
    """The handoff sessions of one gateway (its door zones), open, closing and reported."""

    def __init__(self, doors: frozenset[str]) -> None:
        self.doors = doors
        self._sessions: dict[str, _Session] = {}
        self._item_session: dict[str, str] = {}
        #: Reported sessions: id -> (fingerprint, reported_at), oldest first.
        self._reported: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.untracked = 0
        #: Neighbours' claims: item -> door -> (claim, received at).
        self._neighbours: dict[str, dict[str, tuple[Claim, float]]] = {}
        #: Bumped by every change a restart must not forget (an open, a close, a confirmation,
        #: a report): the pipeline saves the state when it moved, before the events go out.
        self.revision = 0
        #: Per door, the receivers (adapters) not listening now, and when one last came back: a
        #: vehicle is departed only after VEHICLE_GONE_S of silence heard by a listening door.
        #: Not persisted: the pipeline reports every receiver as it starts.
        self._deaf: dict[str, set[str]] = {}
        self._listening_from: dict[str, float] = {}

    # --- commands ------------------------------------------------------------------------------

    def open(
        self, spec: SessionSpec, now: float, *, manifest: bool = True
    ) -> Literal["opened", "already_open"]:
        """Open a session, or recognise a resend; raises :class:`CustodyError` (state untouched).
        ``manifest`` False: a session opened by a trigger, with nothing expected."""
        _check_spec(spec, self.doors, manifest=manifest)
        fp = spec.fingerprint()
        known = self._sessions.get(spec.session_id)
        if known is not None or spec.session_id in self._reported:
            earlier = known.spec.fingerprint() if known else self._reported[spec.session_id][0]
            if earlier != fp:
                raise CustodyError("session_id", "already used for a different session")
            if known is None or known.closed_at is not None:
                raise CustodyError("session_id", "this session is already closed")
            return "already_open"
        live = [s for s in self._sessions.values() if s.closed_at is None]
        if len(live) >= MAX_OPEN_SESSIONS:
            raise CustodyError("session_id", f"{MAX_OPEN_SESSIONS} sessions already open")
        clash = sorted(i for i in spec.expected if i in self._item_session)
        if clash:
            other = self._item_session[clash[0]]
            shown = ", ".join(clash[:5]) + (f" and {len(clash) - 5} more" if len(clash) > 5 else "")
            raise CustodyError("expected", f"{shown} already expected by open session {other}")
        self._sessions[spec.session_id] = _Session(
            spec, now, frozenset(spec.expected), order=tuple(sorted(spec.expected))
        )
        for item in spec.expected:
            self._item_session[item] = spec.session_id
        self.revision += 1
        return "opened"

    def open_triggered(self, spec: SessionSpec, now: float, vehicle_sightings: int) -> None:
        """Open a session for a vehicle's arrival (see :mod:`gateway.custody.triggers`): its
        vehicle has been heard ``vehicle_sightings`` times already, the last one ``now``."""
        self.open(spec, now, manifest=False)
        s = self._sessions[spec.session_id]
        s.vehicle_heard_s, s.vehicle_sightings = now, vehicle_sightings

    def door_busy(self, door: str) -> bool:
        """A session is open (not closing) on ``door``."""
        return any(s.spec.door == door and s.closed_at is None for s in self._sessions.values())

    def close(self, session_id: str, now: float) -> float:
        """Close a session now; it reports :data:`CLOSE_SETTLE_S` later (returned, monotonic)."""
        s = self._sessions.get(session_id)
        if s is None:
            if session_id in self._reported:
                raise CustodyError("session_id", "this session is already closed and reported")
            raise CustodyError("session_id", "no such session")
        if s.closed_at is not None:
            raise CustodyError("session_id", "this session is already closed")
        self._close(s, now, "command")
        return now + CLOSE_SETTLE_S

    def _close(self, s: _Session, at: float, reason: CloseReason) -> None:
        s.closed_at, s.close_reason = at, reason
        self.revision += 1
        for item in s.spec.expected:
            if self._item_session.get(item) == s.spec.session_id:
                del self._item_session[item]

    def receiver(self, door: str, receiver: str, up: bool, now: float) -> None:
        """A receiver of ``door`` stopped listening (``up`` False: a scanner down or restarted)
        or listens again: silence while it was deaf is no departure."""
        deaf = self._deaf.setdefault(door, set())
        if up:
            deaf.discard(receiver)
            self._listening_from[door] = now
        else:
            deaf.add(receiver)

    # --- evidence ------------------------------------------------------------------------------

    def observe(
        self, tag: str, asset: str | None, zone: str, rssi: int, t: float
    ) -> list[ItemConfirmed]:
        out: list[ItemConfirmed] = []
        for s in self._sessions.values():
            if s.spec.door != zone or t < s.spec.window_start_s:
                continue
            if s.closed_at is None and t > s.spec.window_end_s:
                continue  # tick() closes it; until then this is outside its window
            if s.spec.vehicle is not None and s.spec.vehicle in (tag, asset):
                if s.closed_at is None:
                    s.vehicle_heard_s = t
                    s.vehicle_sightings += 1
                continue  # the vehicle itself, not an item of its load
            key = _key(s.expected, tag, asset)
            tr = s.tracks.get(key)
            if tr is None:
                if len(s.tracks) >= len(s.expected) + MAX_TRACKED_PER_SESSION:
                    s.untracked += 1
                    self.untracked += 1
                    continue
                tr = s.tracks[key] = _Track(tag=tag, zone=zone, first_s=t, last_s=t)
            if tr.due(t):
                out += self._decide(s, key, tr, t)
            was = tr.cand_t
            tr.observe(t, rssi, zone)
            if tr.cand_t is not None:
                s.candidates.add(key)
                if was is None:
                    s.cohorts[key] = _cohort(s, key, tr.cand_t)
        return out

    def _decide(self, s: _Session, key: str, tr: _Track, now: float) -> list[ItemConfirmed]:
        s.candidates.discard(key)
        cand = tr.cand_t
        assert cand is not None
        cohort = s.cohorts.pop(key, {})
        rise = _cohort_rise(s, cohort, cand - s.listening_since, now - cand)
        outcome = tr.decide(s.listening_since, rise)
        if outcome != "none":
            self.revision += 1  # a crossing decided (confirmed or pending): saved at once
        if outcome == "level" and self._outclassed(key, tr.dwell_level or tr.ema, now):
            # A neighbour hears it clearly louder: it lies in their lane, whatever our manifest
            # says. Not confirmed live; the report decides with the evidence then.
            tr.confirmed, tr.pending = False, True
            return []
        if outcome == "level" and key in s.expected:
            # Also during the settle after a close: it counts, and the report agrees.
            spec = s.spec
            return [
                ItemConfirmed(
                    spec.session_id,
                    spec.door,
                    key,
                    "level",
                    now,
                    tr.evidence(key),
                    expected_count=len(s.expected),
                )
            ]
        return []

    def tick(self, now: float, position: Fix | None) -> list[ItemConfirmed | HandoffReport]:
        out: list[ItemConfirmed | HandoffReport] = []
        for s in list(self._sessions.values()):
            for key in [k for k in s.candidates if s.tracks[k].due(now)]:
                out += self._decide(s, key, s.tracks[key], now)
            if s.closed_at is None and now >= s.spec.window_end_s:
                self._close(s, s.spec.window_end_s, "window_end")
            if (
                s.closed_at is None
                and s.vehicle_heard_s is not None
                and s.vehicle_sightings >= VEHICLE_MIN_SIGHTINGS
                and not self._deaf.get(s.spec.door)
                and now - max(s.vehicle_heard_s, self._listening_from.get(s.spec.door, -1e18))
                >= VEHICLE_GONE_S
            ):
                # Departed when last heard: the report follows CLOSE_SETTLE_S after that.
                self._close(s, s.vehicle_heard_s, "vehicle_departed")
            if s.closed_at is not None and now >= s.closed_at + CLOSE_SETTLE_S:
                out += self._report(s, now, position)
        return out

    def _report(
        self, s: _Session, now: float, position: Fix | None
    ) -> list[ItemConfirmed | HandoffReport]:
        assert s.closed_at is not None
        out: list[ItemConfirmed | HandoffReport] = []
        confirmed: list[str] = []
        missing: list[str] = []
        unexpected: list[str] = []
        evidence: list[ItemEvidence] = []
        for item in s.spec.expected:
            tr = s.tracks.get(item)
            stayed = tr is not None and tr.pending and tr.last_s >= now - FADE_S
            if (
                tr is not None
                and not tr.confirmed
                and stayed
                and not self._outclassed(item, tr.ema, now)
            ):
                tr.confirmed = True
                out.append(
                    ItemConfirmed(
                        s.spec.session_id,
                        s.spec.door,
                        item,
                        "stayed",
                        now,
                        tr.evidence(item),
                        expected_count=len(s.expected),
                    )
                )
            (confirmed if tr is not None and tr.confirmed else missing).append(item)
            if tr is not None:
                evidence.append(tr.evidence(item))
        for key, tr in s.tracks.items():
            if key in s.expected or not (
                tr.confirmed or (tr.pending and tr.last_s >= now - FADE_S)
            ):
                continue
            if tr.dock_n < DWELL_MIN_SIGHTINGS:
                continue
            verdict = self._beats_neighbours(key, tr, now)
            if verdict is None:  # no neighbour spoke: our evidence alone must beat theirs
                verdict = (
                    tr.ema >= UNEXPECTED_MIN_LEVEL_DBM or tr.crossed_peak >= UNEXPECTED_MIN_PEAK_DBM
                )
            if verdict:
                unexpected.append(key)
                evidence.append(tr.evidence(key))
        spec = s.spec
        out.append(
            HandoffReport(
                session_id=spec.session_id,
                door=spec.door,
                from_party=spec.from_party,
                to_party=spec.to_party,
                documents=spec.documents,
                window_start_s=spec.window_start_s,
                window_end_s=spec.window_end_s,
                opened_at_s=s.opened_at,
                closed_at_s=s.closed_at,
                reported_at_s=now,
                close_reason=s.close_reason,
                expected=spec.expected,
                confirmed=tuple(confirmed),
                missing=tuple(missing),
                unexpected=tuple(sorted(unexpected)),
                evidence=tuple(sorted(evidence, key=lambda e: e.item)),
                position=position,
            )
        )
        del self._sessions[spec.session_id]
        self.revision += 1
        for key in s.tracks:
            self._neighbours.pop(key, None)
        self._reported[spec.session_id] = (spec.fingerprint(), now)
        while len(self._reported) > REPORTED_KEPT:
            self._reported.popitem(last=False)
        return out

    # --- arbitration between neighbouring doors ------------------------------------------------

    def claims(self) -> list[Claim]:
        """This gateway's claims: items carried through one of its doors, with their level since
        (a crossing still in its dwell counts, so neighbours hear of it before they decide)."""
        out = []
        for s in self._sessions.values():
            for key, tr in s.tracks.items():
                level = tr.claim_level()
                if level is not None:
                    expected = key in s.expected
                    out.append(Claim(s.spec.door, key, level, tr.crossed_peak, tr.n, expected))
        return out

    def neighbour_claims(self, claims: list[Claim], now: float) -> int:
        """Take neighbouring doors' claims (our own doors' are ignored); returns how many."""
        taken = 0
        for c in claims:
            if c.door in self.doors:
                continue
            self._neighbours.setdefault(c.item, {})[c.door] = (c, now)
            taken += 1
        return taken

    def _outclassed(self, key: str, level: float, now: float) -> bool:
        """A fresh neighbour claim beats our ``level`` for an item we expect: by more than
        :data:`CLAIM_MARGIN_DB` when the neighbour does not expect it (our manifest counts), at
        all when it expects it too (two manifests name it: the nearer door has it)."""
        return any(
            c.level_dbm > level + (0.0 if c.expected else CLAIM_MARGIN_DB)
            for c, at in self._neighbours.get(key, {}).values()
            if now - at <= CLAIM_MAX_AGE_S
        )

    def _beats_neighbours(self, key: str, tr: _Track, now: float) -> bool | None:
        """True / False when fresh neighbour claims exist for the item; None when none do."""
        fresh = [
            c for c, at in self._neighbours.get(key, {}).values() if now - at <= CLAIM_MAX_AGE_S
        ]
        if not fresh:
            return None
        # A neighbour that expects the item has the manifest on its side: beat it clearly.
        return all(tr.ema > c.level_dbm + (CLAIM_MARGIN_DB if c.expected else 0.0) for c in fresh)

    # --- introspection and persistence ----------------------------------------------------------

    def session_ids(self) -> tuple[str, ...]:
        return tuple(self._sessions)

    def state_of(self, session_id: str) -> Literal["open", "closing", "reported", "unknown"]:
        s = self._sessions.get(session_id)
        if s is not None:
            return "open" if s.closed_at is None else "closing"
        return "reported" if session_id in self._reported else "unknown"

    def to_json(self) -> JsonValue:
        return {
            "sessions": [
                {
                    "spec": {
                        "session_id": s.spec.session_id,
                        "door": s.spec.door,
                        "from_party": s.spec.from_party,
                        "to_party": s.spec.to_party,
                        "expected": list(s.spec.expected),
                        "window_start_s": s.spec.window_start_s,
                        "window_end_s": s.spec.window_end_s,
                        "documents": [list(d) for d in s.spec.documents],
                        "vehicle": s.spec.vehicle,
                    },
                    "opened_at": s.opened_at,
                    "closed_at": s.closed_at,
                    "close_reason": s.close_reason,
                    "vehicle_heard_s": s.vehicle_heard_s,
                    "vehicle_sightings": s.vehicle_sightings,
                    "untracked": s.untracked,
                    "tracks": {k: tr.to_json() for k, tr in s.tracks.items()},
                    "cohorts": {
                        k: {m: list(v) for m, v in members.items()}
                        for k, members in s.cohorts.items()
                    },
                }
                for s in self._sessions.values()
            ],
            "reported": [[k, fp, at] for k, (fp, at) in self._reported.items()],
            "untracked": self.untracked,
        }

    def restore(self, data: Any) -> None:
        """Replace the state with a :meth:`to_json` value (raises KeyError / TypeError /
        ValueError on a value that is not one; the caller then starts empty)."""
        sessions: dict[str, _Session] = {}
        items: dict[str, str] = {}
        for d in data["sessions"]:
            sp = d["spec"]
            spec = SessionSpec(
                session_id=str(sp["session_id"]),
                door=str(sp["door"]),
                from_party=str(sp["from_party"]),
                to_party=str(sp["to_party"]),
                expected=tuple(str(i) for i in sp["expected"]),
                window_start_s=float(sp["window_start_s"]),
                window_end_s=float(sp["window_end_s"]),
                documents=tuple((str(a), str(b)) for a, b in sp["documents"]),
                vehicle=None if sp.get("vehicle") is None else str(sp["vehicle"]),
            )
            s = _Session(
                spec,
                float(d["opened_at"]),
                frozenset(spec.expected),
                order=tuple(sorted(spec.expected)),
            )
            s.closed_at = d["closed_at"]
            reason = d["close_reason"]
            s.close_reason = reason if reason in ("window_end", "vehicle_departed") else "command"
            s.vehicle_heard_s = d.get("vehicle_heard_s")
            s.vehicle_sightings = int(d.get("vehicle_sightings", 0))
            s.untracked = int(d["untracked"])
            s.tracks = {str(k): _Track.from_json(v) for k, v in d["tracks"].items()}
            s.candidates = {k for k, tr in s.tracks.items() if tr.cand_t is not None}
            s.cohorts = {
                str(k): {
                    str(m): (int(a), float(b), int(c), float(e)) for m, (a, b, c, e) in v.items()
                }
                for k, v in d.get("cohorts", {}).items()
            }
            sessions[spec.session_id] = s
            if s.closed_at is None:
                items.update(dict.fromkeys(spec.expected, spec.session_id))
        reported = OrderedDict((str(k), (str(fp), float(at))) for k, fp, at in data["reported"])
        self._sessions, self._item_session, self._reported = sessions, items, reported
        self.untracked = int(data["untracked"])


def _level_before(n: int, total: float, listened_s: float) -> float | None:
    """An item's level before a portal read from ``n`` adverts summing to ``total``: their mean
    with enough of them; the mean of the few (or the receiver's floor for none) once the
    session had listened :data:`PRE_QUIET_S`; else unknown (we had not listened long enough)."""
    if n >= PRE_MIN_SIGHTINGS:
        return total / n
    if listened_s >= PRE_QUIET_S:
        return total / n if n else RECEIVER_FLOOR_DBM
    return None


def _cohort(s: _Session, key: str, t: float) -> dict[str, tuple[int, float, int, float]]:
    """The load a candidate crossing at ``t`` came with: the session's other expected items not
    confirmed yet (at most :data:`COHORT_MAX_ITEMS`), each with its adverts before the portal
    read and so far. An item never heard enters with nothing heard."""
    out: dict[str, tuple[int, float, int, float]] = {}
    for m in s.order:
        if len(out) >= COHORT_MAX_ITEMS:
            break
        if m == key:
            continue
        tr = s.tracks.get(m)
        if tr is None:
            out[m] = (0, 0.0, 0, 0.0)
        elif not tr.confirmed and tr.cand_t is None:
            pre_n, pre_sum = tr.level_before(t)
            out[m] = (pre_n, pre_sum, tr.n, tr.total)
    return out


def _cohort_rise(
    s: _Session,
    cohort: dict[str, tuple[int, float, int, float]],
    listened_s: float,
    elapsed_s: float,
) -> float:
    """How much the load rose from before a portal read to after its dwell: the median, over
    the cohort's items heard as well as a crossing must be (:data:`DWELL_MIN_SIGHTINGS` since),
    of each one's level since minus its level before. A vehicle reversing onto the door lifts
    its whole load together; a carry lifts one item. ``listened_s``: how long the session had
    listened before the portal read; ``elapsed_s``: since the portal read.

    A level is the mean over the item's advertising slots, an unheard slot counting at the
    receivers' floor: a load that came from beyond the floor was heard only on its loudest
    adverts before, and the mean of those alone would hide its rise. The slots are the item's
    own advert rate (the higher of before and since) times the time, before the portal read
    at most :data:`COHORT_BEFORE_S` of it (so a load heard well for that long is at rest
    whatever happened before, as the candidate's own level before is). 0 with fewer than
    :data:`COHORT_MIN_ITEMS` such items."""
    before_s = listened_s - PORTAL_WINDOW_S
    if before_s <= 0 or elapsed_s <= 0:
        return 0.0
    rises = []
    for m, (pre_n, pre_sum, n0, total0) in cohort.items():
        tr = s.tracks.get(m)
        post_n = 0 if tr is None else tr.n - n0
        if tr is None or post_n < DWELL_MIN_SIGHTINGS:
            continue
        post_sum = tr.total - total0
        rate = max(pre_n / before_s, post_n / elapsed_s)
        pre_slots = max(pre_n, rate * min(before_s, COHORT_BEFORE_S))
        post_slots = max(post_n, rate * elapsed_s)
        pre = (pre_sum + (pre_slots - pre_n) * RECEIVER_FLOOR_DBM) / pre_slots
        post = (post_sum + (post_slots - post_n) * RECEIVER_FLOOR_DBM) / post_slots
        rises.append(post - pre)
    return _median(rises) if len(rises) >= COHORT_MIN_ITEMS else 0.0


def _median(values: list[float]) -> float:
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def _key(expected: frozenset[str], tag: str, asset: str | None) -> str:
    if asset is not None and asset in expected:
        return asset
    if tag in expected:
        return tag
    return asset if asset is not None else tag


def _check_spec(spec: SessionSpec, doors: frozenset[str], *, manifest: bool = True) -> None:
    if not 0 < len(spec.session_id) <= MAX_ID_CHARS:
        raise CustodyError("session_id", f"1 to {MAX_ID_CHARS} characters")
    if spec.door not in doors:
        known = ", ".join(sorted(doors)) or "none"
        raise CustodyError(
            "door", f"unknown door {spec.door[:MAX_ID_CHARS]!r} (this gateway: {known})"
        )
    if manifest and not spec.expected:
        raise CustodyError("expected", "at least one expected item")
    if len(spec.expected) > MAX_ITEMS_PER_SESSION:
        raise CustodyError(
            "expected", f"{len(spec.expected)} items, at most {MAX_ITEMS_PER_SESSION} per session"
        )
    if len(set(spec.expected)) != len(spec.expected):
        raise CustodyError("expected", "an item is listed twice")
    if any(not 0 < len(i) <= 2 * MAX_ID_CHARS for i in spec.expected):
        raise CustodyError("expected", f"item ids are 1 to {2 * MAX_ID_CHARS} characters")
    if spec.vehicle is not None and not 0 < len(spec.vehicle) <= 2 * MAX_ID_CHARS:
        raise CustodyError("vehicle", f"1 to {2 * MAX_ID_CHARS} characters")
    if spec.vehicle is not None and spec.vehicle in spec.expected:
        raise CustodyError("vehicle", "the vehicle's tag is also an expected item")
    if len(spec.documents) > MAX_DOCUMENTS:
        raise CustodyError("documents", f"at most {MAX_DOCUMENTS}")
    if not spec.window_end_s > spec.window_start_s:
        raise CustodyError("window", "the window must end after it starts")
    if spec.window_end_s - spec.window_start_s > MAX_SESSION_WINDOW_S:
        raise CustodyError("window", f"at most {MAX_SESSION_WINDOW_S:.0f} s long")
