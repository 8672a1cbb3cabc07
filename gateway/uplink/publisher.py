"""The publisher window: outbox rows out as QoS 1 publishes, PUBACKs back into the outbox.

Data path: ``Outbox.lease`` ─▶ publish (bounded in-flight window, telemetry batched, alarms
ahead of the backlog on reserved slots) ─▶ PUBACK ─▶ ``Outbox.ack`` (success) or
``Outbox.reject`` (reason >= 0x80, dead letter). :meth:`Publisher.workers` are the tasks it runs
for one connection (the session loop runs them); :meth:`Publisher.run_acker` runs for the uplink's
whole life and hands PUBACKs to the outbox in batches.

Duplicates have a bound by design. The outbox deletes acknowledged rows in batches, so after
a crash (power cut, kill -9) it sends again what was in flight and what was acknowledged but
not yet deleted. The second part is capped: past ``ACK_COMMIT_AT_EVENTS`` acknowledged events
the acker has them committed at once (``Outbox.flush``), and at ``ACK_LAG_MAX_EVENTS`` the
window waits for that commit (docs/mqtt.md, "Duplicates").

Progress, for a watchdog: with ``busy`` given, the publish loop's leases run inside
``busy(PUBLISH_STAGE)`` and the acker's hand-over to the outbox inside ``busy(ACKS_STAGE)``
(the daemon passes :meth:`gateway.health.Liveness.working`). Waiting is never busy: for
events, for a window slot, for PUBACKs, or for a connection (without one the loop does not
run), so only an outbox call that never returns stops the watchdog's pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import zlib
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Final

from foundation.clock import Clock
from gateway.outbox import EventClass, LeasedEvent, Outbox, OutboxError
from gateway.uplink._mqtt import MqttSession, PubAck
from gateway.uplink.config import UplinkConfig
from gateway.uplink.topics import Topics

__all__ = [
    "ACKS_STAGE",
    "ACK_COMMIT_AT_EVENTS",
    "ACK_LAG_MAX_EVENTS",
    "ALARM_RESERVED_SLOTS",
    "JSON_CONTENT_TYPE",
    "PUBLISH_STAGE",
    "BusyHook",
    "PubAckReport",
    "Publisher",
]

_log = logging.getLogger(__name__)

#: Upper bound of one lease: large enough to fill a telemetry batch in one query, small enough
#: that an alarm accepted meanwhile waits for at most one lease (a few ms of SQLite).
LEASE_MAX_EVENTS: Final = 1000
#: One log line per PUBACK failure reason per this period; the rest is counted.
REJECT_LOG_INTERVAL_S: Final = 60.0
#: zlib level 6: most of level 9's ratio on repetitive JSON at a fraction of its CPU.
ZLIB_LEVEL: Final = 6
#: Publishes an alarm may have in flight beyond the window: an alarm never waits for a slot
#: that the backlog holds (the issue's bound: accept to PUBACK under 50 ms during a drain).
ALARM_RESERVED_SLOTS: Final = 8
#: Alarms fetched at once when an alarm commit interrupts the wait for a window slot.
ALARM_LEASE_MAX_EVENTS: Final = 100
#: Classes that may be batched: periodic readings and tracks, never evidence or alarms.
BATCHED_CLASSES: Final = frozenset({EventClass.TELEMETRY})
#: Acknowledged events whose deletes the outbox has not committed yet, at most: a crash sends
#: them again, so with the events in flight this bounds the duplicates after a crash. The
#: publisher waits at this many. 1000 is the outbox's own ack batch and two default telemetry
#: batches; without a cap a fast drain ran 13 000 events ahead of its deletes (kill -9 test).
ACK_LAG_MAX_EVENTS: Final = 1000
#: From this many acknowledged events the outbox is asked to commit their deletes at once
#: (not after its ack delay), so that in a drain the commit is usually done before the cap.
ACK_COMMIT_AT_EVENTS: Final = ACK_LAG_MAX_EVENTS // 2
#: After a failed ack commit (disk full, I/O error) ask again after this long; the outbox
#: logs the failure itself.
ACK_COMMIT_RETRY_S: Final = 1.0

JSON_CONTENT_TYPE: Final = "application/json"
#: The names the publisher's work is reported under to ``busy`` (watchdog stages).
PUBLISH_STAGE: Final = "uplink:publish"
ACKS_STAGE: Final = "uplink:acks"

#: Marks a named piece of work as busy for the ``async with`` block (progress tracking).
BusyHook = Callable[[str], AbstractAsyncContextManager[object]]


@dataclass(frozen=True, slots=True)
class PubAckReport:
    """The broker's answer to one of our publishes, with the events it carried: what the
    ``on_delivery`` observers (metrics, the benchmark) receive per PUBACK."""

    event_ids: tuple[str, ...]
    event_class: EventClass
    ack: PubAck
    #: From handing the PUBLISH to the client to its PUBACK (``Clock.monotonic()`` seconds).
    latency_s: float = 0.0


@dataclass(slots=True)
class _Batch:
    kind: str
    started_s: float
    rows: list[LeasedEvent] = field(default_factory=list)
    size: int = 0


class Publisher:
    """The in-flight window, batching and acknowledgement batching of the uplink."""

    def __init__(
        self,
        config: UplinkConfig,
        outbox: Outbox,
        clock: Clock,
        topics: Topics,
        *,
        on_delivery: Callable[[PubAckReport], None] | None = None,
        rewrite: Callable[[bytes], bytes] | None = None,
        busy: BusyHook | None = None,
    ) -> None:
        self._config = config
        self._outbox = outbox
        self._clock = clock
        self._topics = topics
        self._on_delivery = on_delivery
        #: Applied to each stored payload right before it is sent (the clock corrects the times
        #: of events stamped before a trusted time source appeared); never changes the id.
        self._rewrite = rewrite
        self._busy = busy
        # The window (per connection, reset by workers()).
        self._in_flight = 0
        self._in_flight_batches = 0
        self._alarm_pending = False
        self._slot_freed = asyncio.Event()
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        # Acknowledgements waiting to be handed to the outbox.
        self._to_ack: list[int] = []
        self._to_reject: list[tuple[list[int], str]] = []
        self._ack_wakeup = asyncio.Event()
        self._ack_lock = asyncio.Lock()
        # Running totals of acknowledged events: handed to Outbox.ack, known committed.
        self._acked_events = 0
        self._handed_events = 0
        self._committed_events = 0
        self._reject_log_s: dict[str, float] = {}
        #: messages, events, acked, rejected, batches.
        self.counts: Counter[str] = Counter()
        self.reject_reasons: Counter[str] = Counter()

    # -- one connection -------------------------------------------------------------------

    def workers(self, session: MqttSession) -> dict[str, Coroutine[Any, Any, None]]:
        """The tasks of one connection, by name: they run until cancelled (the connection
        ended or the uplink stops); the publish loop raises UplinkError when it finds the
        connection gone."""
        self._in_flight = 0
        self._in_flight_batches = 0
        self._alarm_pending = False
        self._all_acked.set()
        return {"publish": self._publish_loop(session), "alarms": self._watch_alarms()}

    @property
    def in_flight(self) -> int:
        """Publishes of the current connection not yet acknowledged."""
        return self._in_flight

    async def wait_all_acked(self, timeout_s: float) -> None:
        """On a clean stop: give the window up to ``timeout_s`` to be acknowledged."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._all_acked.wait()

    async def after_session(self) -> None:
        """Acknowledged rows are deleted; everything else leased goes back to the queue."""
        await self.flush_acks()
        # release_all keeps acknowledged rows leased (not sent again) but does not commit
        # their deletes: commit them now, so that a stop or an outage leaves no acknowledged
        # row behind for the outbox's ack delay (and the ack lag is known, not assumed).
        # A failed commit (full disk) is retried by the outbox; the lag stays counted.
        await self._commit_acks()
        await self._outbox.release_all()
        self._in_flight = 0
        self._in_flight_batches = 0

    # -- the window -----------------------------------------------------------------------

    async def _wait_slot(self, *, alarm: bool = False, batch: bool = False) -> bool:
        """Wait for room in the window; alarms have reserved slots, batches their own cap.

        Returns False, without a slot, when an alarm was committed meanwhile: the caller
        leases it and sends it first instead of waiting behind its own backlog.
        """
        window = self._config.in_flight_window + (ALARM_RESERVED_SLOTS if alarm else 0)
        max_batches = self._config.batching.max_in_flight
        max_lag = ACK_LAG_MAX_EVENTS + (ALARM_RESERVED_SLOTS if alarm else 0)
        while (
            self._in_flight >= window
            or (batch and self._in_flight_batches >= max_batches)
            or self.ack_lag() >= max_lag
        ):
            if not alarm and self._alarm_pending:
                return False
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return True

    async def _watch_alarms(self) -> None:
        """Wake the publisher out of a slot wait when the outbox commits an alarm."""
        while True:
            await self._outbox.wait_alarm()
            self._alarm_pending = True
            self._slot_freed.set()

    async def _publish_loop(self, session: MqttSession) -> None:
        """Keep the window full: a short queue of leased messages is refilled while the
        window is still half full, so every PUBACK is answered by the next PUBLISH at once
        (a stop-and-go window leaves the TCP connection idle for a round trip each time)."""
        cfg = self._config
        batching = cfg.batching.enabled
        # Leased-ahead depth: one window's worth, refilled two windows at a time, so a lease
        # stuck behind an outbox commit (fsync) does not let the window run dry.
        low_water = cfg.in_flight_window
        lease_size = LEASE_MAX_EVENTS if batching else 2 * cfg.in_flight_window
        pending: dict[str, _Batch] = {}
        urgent: deque[LeasedEvent] = deque()  # alarms: ahead of everything leased before
        ready: deque[LeasedEvent | _Batch] = deque()
        ready_events = 0
        outbox_drained = False
        while True:
            queued = len(urgent) + len(ready)
            if not outbox_drained and queued < low_water and ready_events < LEASE_MAX_EVENTS:
                async with self._working(PUBLISH_STAGE):
                    rows = await self._outbox.lease(lease_size)
                outbox_drained = len(rows) < lease_size
                for row in rows:
                    if row.event_class is EventClass.ALARM:
                        urgent.append(row)
                    elif batching and row.event_class in BATCHED_CLASSES:
                        full = self._add_to_batch(pending, row)
                        if full is not None:
                            ready.append(full)
                            ready_events += len(full.rows)
                    else:
                        ready.append(row)
                        ready_events += 1
            for batch in self._aged(pending):
                ready.append(batch)
                ready_events += len(batch.rows)
            if not urgent and not ready:
                await self._idle(pending)
                outbox_drained = False
                continue
            if urgent:
                await self._wait_slot(alarm=True)
                self._send_single(session, urgent.popleft())
                continue
            if not await self._wait_slot(batch=isinstance(ready[0], _Batch)):
                self._alarm_pending = False
                async with self._working(PUBLISH_STAGE):
                    alarms = await self._outbox.lease(
                        ALARM_LEASE_MAX_EVENTS, classes=(EventClass.ALARM,)
                    )
                urgent.extend(alarms)
                continue
            item = ready.popleft()
            if isinstance(item, _Batch):
                ready_events -= len(item.rows)
                self._send_batch(session, item)
            else:
                ready_events -= 1
                self._send_single(session, item)

    def _working(self, stage: str) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext() if self._busy is None else self._busy(stage)

    # -- batching -------------------------------------------------------------------------

    def _add_to_batch(self, pending: dict[str, _Batch], row: LeasedEvent) -> _Batch | None:
        """Add to the kind's open batch; return the batch once it is full."""
        limits = self._config.batching
        batch = pending.get(row.kind)
        if batch is None:
            batch = pending[row.kind] = _Batch(row.kind, self._clock.monotonic())
        batch.rows.append(row)
        batch.size += len(row.payload) + 1
        if len(batch.rows) >= limits.max_events or batch.size >= limits.max_bytes:
            return pending.pop(row.kind)
        return None

    def _aged(self, pending: dict[str, _Batch]) -> list[_Batch]:
        """Open batches older than max_age, removed from ``pending``."""
        max_age_s = self._config.batching.max_age_ms / 1000
        now = self._clock.monotonic()
        return [pending.pop(k) for k, b in list(pending.items()) if now - b.started_s >= max_age_s]

    async def _idle(self, pending: dict[str, _Batch]) -> None:
        """Nothing to send: wait for new events, or for the oldest open batch's deadline."""
        if not pending:
            await self._outbox.wait_available()
            return
        max_age_s = self._config.batching.max_age_ms / 1000
        oldest = min(b.started_s for b in pending.values())
        timeout_s = oldest + max_age_s - self._clock.monotonic()
        if timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._outbox.wait_available()

    # -- sending --------------------------------------------------------------------------

    def _send_single(self, session: MqttSession, row: LeasedEvent) -> None:
        expiry = math.ceil(row.expires_in_s) if row.expires_in_s is not None else None
        payload = row.payload if self._rewrite is None else self._rewrite(row.payload)
        self._publish(
            session,
            self._topics.event(row.kind),
            payload,
            [row],
            expiry_s=expiry,
            user_properties=(),
        )

    def _send_batch(self, session: MqttSession, batch: _Batch) -> None:
        rows = batch.rows
        rewrite = self._rewrite
        parts = (r.payload if rewrite is None else rewrite(r.payload) for r in rows)
        payload = b"[" + b",".join(parts) + b"]"
        props = [("batch-size", str(len(rows)))]
        if self._config.batching.compression == "zlib":
            payload = zlib.compress(payload, ZLIB_LEVEL)
            props.append(("content-encoding", "zlib"))
        expiries = [r.expires_in_s for r in rows if r.expires_in_s is not None]
        expiry = math.ceil(min(expiries)) if expiries else None
        self.counts["batches"] += 1
        self._publish(
            session,
            self._topics.event(batch.kind),
            payload,
            rows,
            expiry,
            user_properties=props,
            batch=True,
        )

    def _publish(
        self,
        session: MqttSession,
        topic: str,
        payload: bytes,
        rows: list[LeasedEvent],
        expiry_s: int | None,
        user_properties: list[tuple[str, str]] | tuple[()],
        *,
        batch: bool = False,
    ) -> None:
        row_ids = [r.row_id for r in rows]
        event_class = rows[0].event_class
        observer = self._on_delivery
        event_ids = tuple(r.event_id for r in rows) if observer is not None else ()
        sent_s = self._clock.monotonic() if observer is not None else 0.0

        def on_ack(ack: PubAck) -> None:
            if batch:
                self._in_flight_batches -= 1
            self._acked(row_ids, ack)
            if observer is not None:
                latency_s = self._clock.monotonic() - sent_s
                observer(PubAckReport(event_ids, event_class, ack, latency_s))

        session.publish(
            topic,
            payload,
            on_ack,
            expiry_s=expiry_s,
            content_type=JSON_CONTENT_TYPE,
            user_properties=user_properties,
        )
        self._in_flight += 1
        if batch:
            self._in_flight_batches += 1
        self._all_acked.clear()
        self.counts["messages"] += 1
        self.counts["events"] += len(rows)

    # -- acknowledgements -----------------------------------------------------------------

    def _acked(self, row_ids: list[int], ack: PubAck) -> None:
        self._in_flight -= 1
        self._slot_freed.set()
        if self._in_flight <= 0:
            self._all_acked.set()
        if ack.ok:
            self._to_ack.extend(row_ids)
            self.counts["acked"] += len(row_ids)
            self._acked_events += len(row_ids)
        else:
            reason = f"puback 0x{ack.reason_code:02x} {ack.reason}"
            self._to_reject.append((row_ids, reason))
            self.counts["rejected"] += len(row_ids)
            self.reject_reasons[reason] += len(row_ids)
            now = self._clock.monotonic()
            last = self._reject_log_s.get(reason)
            if last is None or now - last >= REJECT_LOG_INTERVAL_S:
                self._reject_log_s[reason] = now
                _log.error(
                    "broker refused a publish (%s): %d event(s) to dead letters; "
                    "%d refused for this reason so far",
                    reason,
                    len(row_ids),
                    self.reject_reasons[reason],
                )
        self._ack_wakeup.set()

    def ack_lag(self) -> int:
        """Acknowledged events whose deletes are not known to be committed."""
        return self._acked_events - self._committed_events

    async def run_acker(self) -> None:
        """Hand PUBACKs to the outbox as they come; once ``ACK_COMMIT_AT_EVENTS`` of them
        wait for their delete, have it committed now (the window waits at
        ``ACK_LAG_MAX_EVENTS``). Outbox errors are retried, never raised: the window
        depends on this task."""
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            async with self._working(ACKS_STAGE):
                await self.flush_acks()
                while self.ack_lag() >= ACK_COMMIT_AT_EVENTS:
                    if not await self._commit_acks():
                        break  # retried after a pause, which is not busy
                    await self.flush_acks()
            if self.ack_lag() >= ACK_COMMIT_AT_EVENTS:
                await asyncio.sleep(ACK_COMMIT_RETRY_S)
                self._ack_wakeup.set()

    async def _commit_acks(self) -> bool:
        """Wait until the acks handed in so far are committed; False if the commit failed."""
        handed = self._handed_events
        try:
            await self._outbox.flush()
        except OutboxError as exc:
            _log.debug("ack commit failed, retrying: %s", exc)
            return False
        self._committed_events = max(self._committed_events, handed)
        self._slot_freed.set()
        return True

    async def flush_acks(self) -> None:
        """Hand collected acks and rejects to the outbox. A reject that fails (disk full)
        is kept for the next call; the rows stay leased meanwhile."""
        async with self._ack_lock:
            while self._to_ack or self._to_reject:
                acks, self._to_ack = self._to_ack, []
                rejects, self._to_reject = self._to_reject, []
                if acks:
                    await self._outbox.ack(acks)
                    self._handed_events += len(acks)
                for n, (row_ids, reason) in enumerate(rejects):
                    try:
                        await self._outbox.reject(row_ids, reason)
                    except OutboxError as exc:
                        _log.debug("reject failed, retrying later: %s", exc)
                        self._to_reject[:0] = rejects[n:]
                        return
