"""The uplink: drains the outbox to the MQTT broker and serves downlink commands.

Data path: ``Outbox.lease`` ─▶ publish (QoS 1, bounded in-flight window, telemetry batched) ─▶
PUBACK ─▶ ``Outbox.ack`` (success) or ``Outbox.reject`` (reason >= 0x80, dead letter). When the
connection drops, whatever is leased and not acknowledged is released and leased again after
reconnect (at-least-once; consumers de-duplicate on ``event_id``). Each connect publishes a
retained birth on ``.../status``; the broker holds the matching will.

Duplicates have a bound by design. The outbox deletes acknowledged rows in batches, so after
a crash (power cut, kill -9) it sends again what was in flight and what was acknowledged but
not yet deleted. The second part is capped: past ``ACK_COMMIT_AT_EVENTS`` acknowledged events
the uplink has them committed at once (``Outbox.flush``), and at ``ACK_LAG_MAX_EVENTS`` the
publisher waits for that commit (docs/mqtt.md, "Duplicates").

:class:`Uplink` is an async context manager owning its tasks; leaving it publishes the
offline status, disconnects cleanly and hands un-acknowledged rows back to the outbox.

Commands survive a dead zone: the broker keeps the gateway's session (``session_expiry_s``)
and queues the commands published meanwhile; they are answered after reconnect, once each
(docs/mqtt.md, "Sessions").

With ``UplinkConfig.site`` set, neighbouring door gateways exchange claims on the site topic:
:meth:`Uplink.publish_site` sends ours (QoS 0, not through the outbox: a claim is stale in
seconds), :meth:`Uplink.site_messages` yields the other gateways' (docs/mqtt.md, "Site topic").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal, Self

from pydantic import JsonValue
from pydantic_core import from_json, to_jsonable_python

from drivers.clock import Clock
from gateway.outbox import EventClass, LeasedEvent, Outbox, OutboxError
from gateway.uplink._mqtt import InboundMessage, MqttSession, PubAck, Will
from gateway.uplink.backoff import Backoff
from gateway.uplink.commands import (
    CommandErrorReason,
    CommandProcessor,
    CommandRegistry,
    CommandResponse,
    default_registry,
)
from gateway.uplink.config import UplinkConfig
from gateway.uplink.errors import UplinkError, UplinkErrorReason
from gateway.uplink.status import GatewayStatus
from gateway.uplink.topics import SITE_LEVEL, Topics, topic_name_problem

__all__ = ["ConnectionState", "Delivery", "SiteMessage", "StatusInfo", "Uplink", "UplinkStats"]

_log = logging.getLogger(__name__)

#: Upper bound of one lease: large enough to fill a telemetry batch in one query, small enough
#: that an alarm accepted meanwhile waits for at most one lease (a few ms of SQLite).
LEASE_MAX_EVENTS: Final = 1000
#: On a clean stop, how long in-flight publishes get to be acknowledged before we disconnect.
DRAIN_TIMEOUT_S: Final = 5.0
#: How long the birth / death messages and the clean DISCONNECT may take.
STATUS_TIMEOUT_S: Final = 5.0
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

#: Correlation data copied into a response: MQTT's own limit is 65 535 bytes; a platform
#: needs a request id, not a payload, and a bound keeps one command from a 64 KiB answer.
CORRELATION_MAX_BYTES: Final = 1024

JSON_CONTENT_TYPE: Final = "application/json"

#: Neighbours' claim messages waiting for the pipeline; beyond this the oldest is dropped and
#: counted (the newest claim of a door supersedes its older ones). 64 = a few seconds of
#: claims from a dozen doors, each every few seconds.
SITE_QUEUE_MESSAGES: Final = 64
#: Message expiry of a claim we publish: brokers that queue QoS 0 messages for an offline
#: session (some do) must not hand a neighbour claims older than a few publish periods.
SITE_MESSAGE_EXPIRY_S: Final = 10


class ConnectionState(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """What the birth message says about this gateway build and configuration."""

    version: str
    config_hash: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One PUBACK, for observers (metrics, the benchmark)."""

    event_ids: tuple[str, ...]
    event_class: EventClass
    ack: PubAck
    #: From handing the PUBLISH to the client to its PUBACK (``Clock.monotonic()`` seconds).
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SiteMessage:
    """A claim summary a neighbouring gateway published on the site topic."""

    #: The gateway that published it (the last topic level).
    sender: str
    #: The payload as received, and as parsed (a JSON object or array).
    payload: bytes
    data: JsonValue
    #: ``Clock.monotonic()`` when it arrived (what ``neighbour_claims`` wants).
    received_s: float


@dataclass(frozen=True, slots=True)
class UplinkStats:
    state: ConnectionState
    connects: int
    messages_published: int
    events_published: int
    events_acked: int
    events_rejected: int
    reject_reasons: dict[str, int]
    batches_published: int
    commands_handled: dict[str, int]
    command_errors: dict[str, int]
    #: Acknowledged events whose deletes are not known to be committed (<= ACK_LAG_MAX_EVENTS
    #: plus what the window had in flight): what a crash now would send again.
    ack_lag_events: int
    #: Connects where the broker still held our session (commands queued meanwhile came).
    sessions_resumed: int = 0
    #: Claims handed to the broker / not sent, per reason (``disabled``, ``oversize``,
    #: ``disconnected``).
    site_published: int = 0
    site_not_sent: dict[str, int] = field(default_factory=dict)
    #: Neighbours' claims queued for the pipeline / dropped, per reason (``own``,
    #: ``bad_topic``, ``retained``, ``malformed_packet``, ``oversize``, ``garbage``,
    #: ``queue_full``, ``subscribe_refused``).
    site_received: int = 0
    site_dropped: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Batch:
    kind: str
    started_s: float
    rows: list[LeasedEvent] = field(default_factory=list)
    size: int = 0


class Uplink:
    """Delivery from the outbox to the broker, plus status and commands."""

    def __init__(
        self,
        config: UplinkConfig,
        gateway_id: str,
        outbox: Outbox,
        clock: Clock,
        *,
        status: StatusInfo,
        commands: CommandRegistry | None = None,
        clock_state: Callable[[], str] = lambda: "unknown",
        on_delivery: Callable[[Delivery], None] | None = None,
        on_state: Callable[[ConnectionState, str], None] | None = None,
        rng: random.Random | None = None,
        rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._config = config
        self._gateway_id = gateway_id
        self._outbox = outbox
        self._clock = clock
        self._status = status
        self._clock_state = clock_state
        self._on_delivery = on_delivery
        self._on_state = on_state
        #: Applied to each stored payload right before it is sent (the clock corrects the times
        #: of events stamped before a trusted time source appeared); never changes the id.
        self._rewrite = rewrite
        if config.site is not None and gateway_id == SITE_LEVEL:
            # <prefix>/site/... would be both this gateway's tree and the site topics.
            raise ValueError(f'gateway id "{SITE_LEVEL}" is reserved when a site is configured')
        self._topics = Topics(config.topic_prefix, gateway_id, config.site)
        if commands is None:
            commands = default_registry(
                clock,
                to_jsonable_python(config.model_dump(mode="json")),
                self._outbox_stats_json,
            )
        self._processor = CommandProcessor(
            commands,
            clock,
            max_bytes=config.command_max_bytes,
            results_kept=config.command_results_kept,
        )
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, rng)
        self._password = config.password.get_secret_value() if config.password is not None else None
        self._state = ConnectionState.DISCONNECTED
        self._state_detail = ""
        self._state_events = {s: asyncio.Event() for s in ConnectionState}
        self._stop = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._acker_task: asyncio.Task[None] | None = None
        # Window and acknowledgement bookkeeping (per session, reset on connect).
        self._in_flight = 0
        self._in_flight_batches = 0
        self._alarm_pending = False
        self._slot_freed = asyncio.Event()
        self._all_acked = asyncio.Event()
        self._to_ack: list[int] = []
        self._to_reject: list[tuple[list[int], str]] = []
        self._ack_wakeup = asyncio.Event()
        self._ack_lock = asyncio.Lock()
        # Running totals of acknowledged events: handed to Outbox.ack, known committed.
        self._acked_events = 0
        self._handed_events = 0
        self._committed_events = 0
        self._reject_log_s: dict[str, float] = {}
        self._connect_failures_logged: set[UplinkErrorReason] = set()
        self._counts: Counter[str] = Counter()
        self._reject_reasons: Counter[str] = Counter()
        # The site topic: the connected session (for publish_site), neighbours' claims.
        self._session: MqttSession | None = None
        self._site_queue: asyncio.Queue[SiteMessage | None] = asyncio.Queue(SITE_QUEUE_MESSAGES)
        self._site_closed = False
        self._site_not_sent: Counter[str] = Counter()
        self._site_dropped: Counter[str] = Counter()
        self._site_refusal_logged = False

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._acker_task = asyncio.create_task(self._acker(), name="uplink-acker")
        self._run_task = asyncio.create_task(self._run(), name="uplink")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        try:
            if self._run_task is not None:
                await self._run_task
        finally:
            if self._acker_task is not None:
                self._acker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._acker_task
            await self._flush_acks()
            self._set_state(ConnectionState.STOPPED, "stopped")
            self._close_site()

    def stop(self) -> None:
        """Ask for a clean stop (what leaving the context manager does)."""
        self._stop.set()

    async def wait_finished(self) -> None:
        """Return when the uplink's loop ended; raise what ended it if it failed (a bug:
        connection problems are retried forever). For supervisors."""
        if self._run_task is not None:
            await asyncio.shield(self._run_task)

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def state_detail(self) -> str:
        """Why we are in this state (an UplinkErrorReason value when disconnected)."""
        return self._state_detail

    @property
    def topics(self) -> Topics:
        return self._topics

    async def wait_state(self, state: ConnectionState) -> None:
        await self._state_events[state].wait()

    def stats(self) -> UplinkStats:
        return UplinkStats(
            state=self._state,
            connects=self._counts["connects"],
            messages_published=self._counts["messages"],
            events_published=self._counts["events"],
            events_acked=self._counts["acked"],
            events_rejected=self._counts["rejected"],
            reject_reasons=dict(self._reject_reasons),
            batches_published=self._counts["batches"],
            commands_handled=dict(self._processor.handled),
            command_errors={r.value: n for r, n in self._processor.errors.items()},
            ack_lag_events=self._ack_lag(),
            sessions_resumed=self._counts["sessions_resumed"],
            site_published=self._counts["site_published"],
            site_not_sent=dict(self._site_not_sent),
            site_received=self._counts["site_received"],
            site_dropped=dict(self._site_dropped),
        )

    def _set_state(self, state: ConnectionState, detail: str) -> None:
        """Log once per change of state or reason, not once per attempt."""
        if state == self._state and detail == self._state_detail:
            return
        level = logging.WARNING if state == ConnectionState.DISCONNECTED else logging.INFO
        _log.log(level, "uplink %s: %s", state.value, detail)
        self._state_events[self._state].clear()
        self._state = state
        self._state_detail = detail
        self._state_events[state].set()
        if self._on_state is not None:
            self._on_state(state, detail)

    # -- the connection loop --------------------------------------------------------------

    async def _run(self) -> None:
        cfg = self._config
        while not self._stop.is_set():
            if self._state != ConnectionState.DISCONNECTED:
                self._set_state(ConnectionState.CONNECTING, f"{cfg.host}:{cfg.port}")
            session = MqttSession(
                cfg,
                self._gateway_id,
                self._will(),
                self._password,
                side_topic_prefix=self._topics.site_claims_prefix,
                on_side_message=self._on_site_message,
            )
            try:
                await session.connect()
                await self._serve(session)
            except UplinkError as exc:
                # Same reason as last time: stays one log line however long the outage is.
                self._set_state(ConnectionState.DISCONNECTED, exc.reason.value)
                if exc.reason != UplinkErrorReason.CONNECTION_LOST:
                    _log.debug("connect attempt failed: %s", exc)
                    self._log_connect_failure(exc)
            finally:
                self._session = None
                await session.aclose()
                await self._after_session()
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay_s()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    def _log_connect_failure(self, exc: UplinkError) -> None:
        # The first failure of a kind explains itself (TLS problems must say what failed).
        if exc.reason not in self._connect_failures_logged:
            self._connect_failures_logged.add(exc.reason)
            _log.error("uplink cannot connect: %s", exc)

    def _will(self) -> Will:
        return Will(self._topics.status, self._status_payload("offline", None, "connection lost"))

    def _status_payload(
        self, state: Literal["online", "offline"], depth: int | None, reason: str | None
    ) -> bytes:
        return GatewayStatus(
            gateway_id=self._gateway_id,
            state=state,
            version=self._status.version,
            config_hash=self._status.config_hash,
            clock_state=self._clock_state(),
            outbox_depth=depth,
            time=self._clock.now() if depth is not None else None,
            reason=reason,
        ).to_bytes()

    async def _serve(self, session: MqttSession) -> None:
        self._in_flight = 0
        self._in_flight_batches = 0
        self._alarm_pending = False
        self._all_acked.set()
        # Always subscribe, also on a resumed session: the broker may have lost it (expired,
        # restarted without persistence); on one it kept, this replaces the subscription
        # with the same options. Commands it queued are already in ``session.inbound``.
        await session.subscribe(self._topics.commands)
        await self._subscribe_site(session)
        if session.session_present:
            self._counts["sessions_resumed"] += 1
        depth = (await self._outbox.stats()).depth
        birth = await session.publish_and_wait(
            self._topics.status, self._status_payload("online", depth, None), retain=True
        )
        if not birth.ok:
            _log.error("broker refused the birth message: %s", birth.reason)
        self._counts["connects"] += 1
        self._backoff.reset()
        self._connect_failures_logged.clear()  # the next outage explains itself again
        self._set_state(ConnectionState.CONNECTED, f"{self._config.host}:{self._config.port}")
        self._session = session
        publisher = asyncio.create_task(self._publish_loop(session), name="uplink-publish")
        commands = asyncio.create_task(self._command_loop(session), name="uplink-commands")
        alarms = asyncio.create_task(self._watch_alarms(), name="uplink-alarms")
        stop = asyncio.create_task(self._stop.wait())
        tasks = (publisher, commands, alarms, stop)
        waiters: list[asyncio.Future[Any]] = [*tasks, session.closed]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, UplinkError):
                raise result
            if isinstance(result, Exception):
                raise result  # a bug: let the daemon's TaskGroup see it
        if session.closed.done():
            raise UplinkError(UplinkErrorReason.CONNECTION_LOST, session.closed.result())
        # Clean stop: let the in-flight window drain, then say goodbye ourselves.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._all_acked.wait()
        with contextlib.suppress(UplinkError, TimeoutError):
            async with asyncio.timeout(STATUS_TIMEOUT_S):
                await session.publish_and_wait(
                    self._topics.status,
                    self._status_payload("offline", None, "shutdown"),
                    retain=True,
                )
        await session.disconnect(STATUS_TIMEOUT_S)

    async def _after_session(self) -> None:
        """Acknowledged rows are deleted; everything else leased goes back to the queue."""
        await self._flush_acks()
        # release_all keeps acknowledged rows leased (not sent again) but does not commit
        # their deletes: commit them now, so that a stop or an outage leaves no acknowledged
        # row behind for the outbox's ack delay (and the ack lag is known, not assumed).
        # A failed commit (full disk) is retried by the outbox; the lag stays counted.
        await self._commit_acks()
        await self._outbox.release_all()
        self._in_flight = 0
        self._in_flight_batches = 0

    # -- publishing -----------------------------------------------------------------------

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
            or self._ack_lag() >= max_lag
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
                urgent.extend(
                    await self._outbox.lease(ALARM_LEASE_MAX_EVENTS, classes=(EventClass.ALARM,))
                )
                continue
            item = ready.popleft()
            if isinstance(item, _Batch):
                ready_events -= len(item.rows)
                self._send_batch(session, item)
            else:
                ready_events -= 1
                self._send_single(session, item)

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
        self._counts["batches"] += 1
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
                observer(Delivery(event_ids, event_class, ack, latency_s))

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
        self._counts["messages"] += 1
        self._counts["events"] += len(rows)

    def _acked(self, row_ids: list[int], ack: PubAck) -> None:
        self._in_flight -= 1
        self._slot_freed.set()
        if self._in_flight <= 0:
            self._all_acked.set()
        if ack.ok:
            self._to_ack.extend(row_ids)
            self._counts["acked"] += len(row_ids)
            self._acked_events += len(row_ids)
        else:
            reason = f"puback 0x{ack.reason_code:02x} {ack.reason}"
            self._to_reject.append((row_ids, reason))
            self._counts["rejected"] += len(row_ids)
            self._reject_reasons[reason] += len(row_ids)
            now = self._clock.monotonic()
            last = self._reject_log_s.get(reason)
            if last is None or now - last >= REJECT_LOG_INTERVAL_S:
                self._reject_log_s[reason] = now
                _log.error(
                    "broker refused a publish (%s): %d event(s) to dead letters; "
                    "%d refused for this reason so far",
                    reason,
                    len(row_ids),
                    self._reject_reasons[reason],
                )
        self._ack_wakeup.set()

    def _ack_lag(self) -> int:
        return self._acked_events - self._committed_events

    async def _acker(self) -> None:
        """Hand PUBACKs to the outbox as they come; once ``ACK_COMMIT_AT_EVENTS`` of them
        wait for their delete, have it committed now (the publisher waits at
        ``ACK_LAG_MAX_EVENTS``). Outbox errors are retried, never raised: the publisher
        depends on this task."""
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            await self._flush_acks()
            while self._ack_lag() >= ACK_COMMIT_AT_EVENTS:
                if not await self._commit_acks():
                    await asyncio.sleep(ACK_COMMIT_RETRY_S)
                await self._flush_acks()

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

    async def _flush_acks(self) -> None:
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

    # -- the site topic -------------------------------------------------------------------

    def publish_site(self, payload: bytes) -> None:
        """Publish our claim summary on ``<prefix>/site/<site>/claims/<gateway_id>``: QoS 0,
        not retained, not through the outbox (a claim is stale in seconds; the next one
        replaces it). Never raises: without a site, over ``site_max_bytes`` or while
        disconnected it is dropped and counted (``UplinkStats.site_not_sent``)."""
        topic = self._topics.site_claims
        if topic is None:
            self._site_not_sent["disabled"] += 1
            return
        if len(payload) > self._config.site_max_bytes:
            self._site_not_sent["oversize"] += 1
            return
        session = self._session
        if session is None or not session.publish_qos0(
            topic, payload, expiry_s=SITE_MESSAGE_EXPIRY_S, content_type=JSON_CONTENT_TYPE
        ):
            self._site_not_sent["disconnected"] += 1
            return
        self._counts["site_published"] += 1

    async def site_messages(self) -> AsyncIterator[SiteMessage]:
        """Claims from the OTHER gateways of the site, in arrival order, for one consumer.

        Ends at once without a site, and when the uplink stops. Messages arriving while
        nobody reads wait in a queue of ``SITE_QUEUE_MESSAGES``; beyond it the oldest is
        dropped and counted (``UplinkStats.site_dropped["queue_full"]``)."""
        if self._topics.site is None:
            return
        while not self._site_closed or not self._site_queue.empty():
            msg = await self._site_queue.get()
            if msg is None:
                return
            yield msg

    async def _subscribe_site(self, session: MqttSession) -> None:
        """QoS 0 (a claim missed is replaced by the next; the broker queues nothing for us
        while offline), no local echo under MQTT 5. A refusal (the ACL) costs the site topic,
        not the connection: commands and events go on."""
        site_filter = self._topics.site_claims_filter
        if site_filter is None:
            return
        try:
            await session.subscribe(site_filter, qos=0, no_local=True)
        except UplinkError as exc:
            if exc.reason != UplinkErrorReason.SUBSCRIBE_REFUSED:
                raise
            self._site_dropped["subscribe_refused"] += 1
            if not self._site_refusal_logged:
                self._site_refusal_logged = True
                _log.error("site topic unavailable, deciding without neighbours: %s", exc)

    def _on_site_message(self, msg: InboundMessage) -> None:
        """Called from paho's reader: checks, parses and queues; never raises."""
        dropped = self._site_dropped
        sender = self._topics.site_sender(msg.topic)
        if sender is None:
            dropped["bad_topic"] += 1
            return
        if sender == self._gateway_id:
            dropped["own"] += 1  # MQTT 3.1.1 has no "no local" option
            return
        if msg.retain:
            dropped["retained"] += 1  # someone's old claim, not a current one
            return
        if msg.malformed is not None:
            dropped["malformed_packet"] += 1
            return
        if len(msg.payload) > self._config.site_max_bytes:
            dropped["oversize"] += 1
            return
        try:
            data: JsonValue = from_json(msg.payload, allow_inf_nan=False)
        except ValueError:
            dropped["garbage"] += 1
            return
        if not isinstance(data, dict | list):
            dropped["garbage"] += 1
            return
        self._site_put(SiteMessage(sender, msg.payload, data, self._clock.monotonic()))
        self._counts["site_received"] += 1

    def _site_put(self, item: SiteMessage | None) -> None:
        """Queue, dropping the oldest message when full."""
        queue = self._site_queue
        if queue.full():
            old = queue.get_nowait()
            if old is not None:
                self._site_dropped["queue_full"] += 1
        queue.put_nowait(item)

    def _close_site(self) -> None:
        """Ends ``site_messages`` once what is queued was read."""
        if not self._site_closed:
            self._site_closed = True
            self._site_put(None)

    # -- commands -------------------------------------------------------------------------

    async def _command_loop(self, session: MqttSession) -> None:
        """Answer commands one by one. Nothing a message holds can end this loop: it is the
        boundary where an unexpected error is counted (``internal``) and the message dropped;
        only a lost connection ends it."""
        dropped = 0
        while True:
            msg = await session.inbound.get()
            if session.inbound_dropped > dropped:  # the queue overflowed meanwhile
                for _ in range(session.inbound_dropped - dropped):
                    self._processor.drop(
                        msg.topic[-64:], CommandErrorReason.OVERLOADED, "queue full"
                    )
                dropped = session.inbound_dropped
            try:
                self._answer(session, msg, await self._respond(session, msg))
            except UplinkError:
                raise  # the connection is gone: the session ends, the platform resends
            except Exception as exc:
                self._processor.drop(
                    msg.topic[-64:], CommandErrorReason.INTERNAL, f"{type(exc).__name__}: {exc}"
                )

    async def _respond(
        self, session: MqttSession, msg: InboundMessage
    ) -> tuple[str, CommandResponse, bytes | None] | None:
        """(topic, response, correlation data) for one command message, or None to drop it.
        What the transport carries is checked before the command runs."""
        processor = self._processor
        name = self._topics.command_name(msg.topic)
        if name is None:
            processor.drop(msg.topic[-64:], CommandErrorReason.NOT_A_COMMAND_TOPIC, "empty level")
            return None
        if msg.retain:
            # Sent because we subscribed (3.1.1, or a broker ignoring retain handling): an
            # old message nobody waits for, and one that would run again at every connect.
            processor.drop(name, CommandErrorReason.RETAINED, "retained command not executed")
            return None
        topic = self._topics.command_result(name)
        if msg.malformed is not None:
            reason = CommandErrorReason.MALFORMED_PACKET
            return topic, processor.refuse(name, msg.payload, reason, msg.malformed), None
        correlation = msg.correlation_data if session.v5 else None
        if correlation is not None and len(correlation) > CORRELATION_MAX_BYTES:
            reason = CommandErrorReason.BAD_CORRELATION_DATA
            detail = f"{len(correlation)} bytes, limit {CORRELATION_MAX_BYTES}"
            return topic, processor.refuse(name, msg.payload, reason, detail), None
        if session.v5 and msg.response_topic is not None:
            problem = self._topics.response_topic_problem(msg.response_topic)
            if problem is not None:
                reason = CommandErrorReason.BAD_RESPONSE_TOPIC
                return topic, processor.refuse(name, msg.payload, reason, problem), correlation
            topic = msg.response_topic
        return topic, await processor.handle(name, msg.payload), correlation

    def _answer(
        self,
        session: MqttSession,
        msg: InboundMessage,
        answer: tuple[str, CommandResponse, bytes | None] | None,
    ) -> None:
        if answer is None:
            return
        topic, response, correlation = answer
        problem = topic_name_problem(topic)
        if problem is not None:  # a result topic from a 64 KiB command topic, say
            self._processor.drop(response.command, CommandErrorReason.BAD_RESPONSE_TOPIC, problem)
            return
        session.publish(
            topic,
            response.to_bytes(),
            _ignore_ack,
            content_type=JSON_CONTENT_TYPE,
            correlation_data=correlation,
        )

    async def _outbox_stats_json(self) -> JsonValue:
        stats = await self._outbox.stats()
        result: JsonValue = to_jsonable_python(stats)
        return result


def _ignore_ack(ack: PubAck) -> None:
    """Command responses are best effort: a lost one is recovered by the platform resending."""
