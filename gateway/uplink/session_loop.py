"""The session loop: connect, announce, serve, lose the connection, back off, connect again.

One :class:`SessionLoop` runs for the uplink's life. Per connection it subscribes (commands,
the site topic), publishes the retained birth on ``.../status`` (the broker holds the matching
will), runs the connection's workers (the publisher window, command dispatch) until the
connection ends or the uplink stops, and on a clean stop publishes the offline status and
disconnects. Connection problems are retried forever with jittered exponential backoff; the
connection state and its reason are logged once per change, never once per attempt.

Two gateways with the same ``gateway_id`` (a cloned SD card image) use the same MQTT client id,
and the broker hands the session to whichever connected last. Without care each reconnects at
once and takes it back, dozens of times a minute, each time re-publishing the retained status.
Under MQTT 5 a broker may say so (DISCONNECT reason 0x8E, "session taken over"); under 3.1.1,
and with brokers that just close the socket (mosquitto 2.0 does, under MQTT 5 too), the old
connection simply ends, so connections that end right after they began, several in a row,
count as a takeover as well; not those that ended while publishes of ours were refused or
unanswered (mosquitto 2.0 closes the connection on a publish its ACL denies). Independently of
that, only a connection that stood for ``SHORT_SESSION_S`` resets the reconnect backoff, so
connections dropped right after connect, for whatever reason, never reconnect at the minimum
delay again and again. A takeover is logged in one line that names the likely cause, shown
in the state (``session_taken_over``) and counted (``UplinkStats.session_takeovers``), and
the next attempts wait on a slower backoff that grows to ``TAKEOVER_BACKOFF_MAX_S``.

A broker cluster is several endpoints (``host:port`` then ``fallback_brokers``): a failed
attempt or a lost connection moves the next attempt to the next endpoint, round and round, on
the same backoff. The broker's session (subscriptions, queued commands) is the cluster's, not
the node's, so the session resumes wherever the gateway lands: docs/fleet.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

from foundation.clock import Clock
from foundation.lifecycle import TaskOwner
from gateway.outbox import Outbox
from gateway.uplink._mqtt import SESSION_TAKEN_OVER, MqttSession, Will
from gateway.uplink.backoff import Backoff
from gateway.uplink.config import BrokerEndpoint, UplinkConfig
from gateway.uplink.dispatch import CommandDispatcher
from gateway.uplink.errors import UplinkError, UplinkErrorReason
from gateway.uplink.publisher import Publisher
from gateway.uplink.site import SiteChannel
from gateway.uplink.status import GatewayStatus
from gateway.uplink.topics import Topics

__all__ = ["ConnectionState", "SessionLoop", "StatusInfo"]

_log = logging.getLogger(__name__)

#: On a clean stop, how long in-flight publishes get to be acknowledged before we disconnect.
DRAIN_TIMEOUT_S: Final = 5.0
#: How long the birth / death messages and the clean DISCONNECT may take.
STATUS_TIMEOUT_S: Final = 5.0
#: Without a reason code for a takeover (3.1.1; brokers that just close the socket), a
#: connection that ends within this long of its CONNACK is "dropped right after connect".
#: Ten seconds is far beyond a peer's reconnect delay (0.5 s to a few seconds) and far below
#: a real session's life.
SHORT_SESSION_S: Final = 10.0
#: This many such connections in a row count as a takeover: one or two are a broker restart
#: or a flaky link; a clone takes the session back every time.
SHORT_SESSIONS_FOR_TAKEOVER: Final = 3
#: Backoff after a takeover: each wait between half and all of its bound, the bound doubling
#: from 5 s to 5 min. Two clones then trade the session a few times an hour, not every second.
TAKEOVER_BACKOFF_MIN_S: Final = 5.0
TAKEOVER_BACKOFF_MAX_S: Final = 300.0
#: A connection that lasts this long ends a takeover episode: the backoff starts again from
#: its minimum and the next takeover is logged again.
STABLE_SESSION_S: Final = 60.0


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


class SessionLoop:
    """Connects, reconnects and announces; runs the connection's workers while connected."""

    def __init__(
        self,
        config: UplinkConfig,
        gateway_id: str,
        outbox: Outbox,
        clock: Clock,
        topics: Topics,
        *,
        status: StatusInfo,
        clock_state: Callable[[], str],
        publisher: Publisher,
        dispatcher: CommandDispatcher,
        site: SiteChannel,
        stop: asyncio.Event,
        on_state: Callable[[ConnectionState, str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._gateway_id = gateway_id
        self._outbox = outbox
        self._clock = clock
        self._topics = topics
        self._status = status
        self._clock_state = clock_state
        self._publisher = publisher
        self._dispatcher = dispatcher
        self._site = site
        self._stop = stop
        self._on_state = on_state
        self._password = config.password.get_secret_value() if config.password is not None else None
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, rng)
        self._takeover_backoff = Backoff(
            TAKEOVER_BACKOFF_MIN_S, TAKEOVER_BACKOFF_MAX_S, rng, floor_fraction=0.5
        )
        self._endpoints = config.endpoints()
        self._endpoint_index = 0
        self._state = ConnectionState.DISCONNECTED
        self._state_detail = ""
        self._state_events = {s: asyncio.Event() for s in ConnectionState}
        self._connect_failures_logged: set[UplinkErrorReason] = set()
        #: Takeover bookkeeping: connections dropped right after connect, whether the
        #: next wait is a takeover's, whether this episode was logged.
        self._short_sessions = 0
        self._taken_over = False
        self._takeover_logged = False
        #: connects, sessions_resumed, session_takeovers, endpoint_switches.
        self.counts: Counter[str] = Counter()

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def state_detail(self) -> str:
        return self._state_detail

    @property
    def endpoint(self) -> BrokerEndpoint:
        """The broker node connected to, or that the next attempt goes to."""
        return self._endpoints[self._endpoint_index]

    async def wait_state(self, state: ConnectionState) -> None:
        await self._state_events[state].wait()

    def set_state(self, state: ConnectionState, detail: str) -> None:
        """Log once per change of state or reason, not once per attempt. "disconnected" is
        said only when a connection was lost; a failed attempt is "not connected"."""
        if state == self._state and detail == self._state_detail:
            return
        if state == ConnectionState.DISCONNECTED:
            lost = self._state == ConnectionState.CONNECTED
            _log.warning("uplink %s: %s", "disconnected" if lost else "not connected", detail)
        else:
            _log.info("uplink %s: %s", state.value, detail)
        self._state_events[self._state].clear()
        self._state = state
        self._state_detail = detail
        self._state_events[state].set()
        if self._on_state is not None:
            self._on_state(state, detail)

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Until the stop event is set; connection problems never end it."""
        while not self._stop.is_set():
            endpoint = self.endpoint
            if self._state != ConnectionState.DISCONNECTED:
                self.set_state(ConnectionState.CONNECTING, str(endpoint))
            session = MqttSession(
                self._config.model_copy(update={"host": endpoint.host, "port": endpoint.port}),
                self._gateway_id,
                self._will(),
                self._password,
                side_topic_prefix=self._topics.site_claims_prefix,
                on_side_message=self._site.on_message,
            )
            connected_at: list[float] = []
            refused_before = self._publisher.counts["rejected"]
            try:
                await session.connect()
                await self._serve(session, connected_at)
            except UplinkError as exc:
                lasted_s = self._clock.monotonic() - connected_at[0] if connected_at else None
                # Dropped while publishes of ours were refused or unanswered: maybe over
                # what we sent (mosquitto 2.0 closes the connection on a publish its ACL
                # denies), so no sign of a takeover.
                ours = (
                    self._publisher.counts["rejected"] > refused_before
                    or self._publisher.in_flight > 0
                )
                self._failed(exc, lasted_s, maybe_ours=ours)
                self._next_endpoint(lost=lasted_s is not None)
            finally:
                self._site.session = None
                try:
                    await session.aclose()
                finally:
                    await self._publisher.after_session()
            if self._stop.is_set():
                break
            if self._taken_over:
                delay = self._takeover_backoff.next_delay_s()
            else:
                delay = self._backoff.next_delay_s()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    def _failed(self, exc: UplinkError, lasted_s: float | None, *, maybe_ours: bool) -> None:
        """One attempt or connection ended with ``exc``; ``lasted_s`` is how long it was
        connected (None: it never was); ``maybe_ours``: it ended while the broker had
        refused or not yet answered publishes of ours (not a sign of a takeover)."""
        if lasted_s is not None and lasted_s >= SHORT_SESSION_S:
            # Only a connection that stood resets the backoff: one dropped right after
            # connect, again and again, must not reconnect at the minimum delay each time.
            self._backoff.reset()
        if lasted_s is not None and lasted_s >= STABLE_SESSION_S:
            self._end_takeover_episode()
        reason = exc.reason
        if reason == UplinkErrorReason.CONNECTION_LOST and lasted_s is not None:
            short = lasted_s < SHORT_SESSION_S and not maybe_ours
            self._short_sessions = self._short_sessions + 1 if short else 0
            if self._short_sessions >= SHORT_SESSIONS_FOR_TAKEOVER:
                reason = UplinkErrorReason.SESSION_TAKEN_OVER
        if reason == UplinkErrorReason.SESSION_TAKEN_OVER:
            self._taken_over = True
            self.counts["session_takeovers"] += 1
            self.set_state(ConnectionState.DISCONNECTED, reason.value)
            self._log_takeover(exc)
            return
        self._taken_over = False
        # Same reason as last time: stays one log line however long the outage is.
        self.set_state(ConnectionState.DISCONNECTED, reason.value)
        if reason != UplinkErrorReason.CONNECTION_LOST:
            _log.debug("connect attempt failed: %s", exc)
            # The first failure of a kind explains itself (TLS problems must say what failed).
            if reason not in self._connect_failures_logged:
                self._connect_failures_logged.add(reason)
                _log.error("uplink cannot connect: %s", exc)

    def _next_endpoint(self, *, lost: bool) -> None:
        """Move the next attempt to the next broker node (a no-op with one). Said at info
        level when a connection was lost; each failed attempt's move only at debug level,
        so an outage of the whole cluster stays the one "not connected" line."""
        if len(self._endpoints) == 1:
            return
        old = self.endpoint
        self._endpoint_index = (self._endpoint_index + 1) % len(self._endpoints)
        self.counts["endpoint_switches"] += 1
        _log.log(
            logging.INFO if lost else logging.DEBUG,
            "uplink: %s %s, next attempt on %s (broker %d of %d)",
            "lost" if lost else "could not connect to",
            old,
            self.endpoint,
            self._endpoint_index + 1,
            len(self._endpoints),
        )

    def _log_takeover(self, exc: UplinkError) -> None:
        if self._takeover_logged:
            return
        self._takeover_logged = True
        how = (
            "the broker said so (session taken over)"
            if exc.reason == UplinkErrorReason.SESSION_TAKEN_OVER
            else f"the broker closed {self._short_sessions} connections in a row right after"
            " connect"
        )
        _log.error(
            "uplink: another client with the same client id %r took the MQTT session over (%s);"
            " likely a cloned image: give each gateway its own gateway_id. Reconnecting with"
            " backoff up to %.0f s instead of taking the session back at once",
            self._gateway_id,
            how,
            TAKEOVER_BACKOFF_MAX_S,
        )

    def _end_takeover_episode(self) -> None:
        self._short_sessions = 0
        self._taken_over = False
        self._takeover_logged = False
        self._takeover_backoff.reset()

    # -- one connection -------------------------------------------------------------------

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

    async def _serve(self, session: MqttSession, connected_at: list[float]) -> None:
        # Always subscribe, also on a resumed session: the broker may have lost it (expired,
        # restarted without persistence); on one it kept, this replaces the subscription
        # with the same options. Commands it queued are already in ``session.inbound``.
        await session.subscribe(self._topics.commands)
        await self._site.subscribe(session)
        if session.session_present:
            self.counts["sessions_resumed"] += 1
        depth = (await self._outbox.stats()).depth
        birth = await session.publish_and_wait(
            self._topics.status, self._status_payload("online", depth, None), retain=True
        )
        if not birth.ok:
            _log.error("broker refused the birth message: %s", birth.reason)
        self.counts["connects"] += 1
        connected_at.append(self._clock.monotonic())
        self._connect_failures_logged.clear()  # the next outage explains itself again
        self.set_state(ConnectionState.CONNECTED, str(self.endpoint))
        self._site.session = session
        await self._run_workers(session)
        if session.closed.done():
            reason = UplinkErrorReason.CONNECTION_LOST
            if session.disconnect_code == SESSION_TAKEN_OVER:
                reason = UplinkErrorReason.SESSION_TAKEN_OVER
            raise UplinkError(reason, session.closed.result())
        # Clean stop: let the in-flight window drain, then say goodbye ourselves.
        await self._publisher.wait_all_acked(DRAIN_TIMEOUT_S)
        with contextlib.suppress(UplinkError, TimeoutError):
            async with asyncio.timeout(STATUS_TIMEOUT_S):
                await session.publish_and_wait(
                    self._topics.status,
                    self._status_payload("offline", None, "shutdown"),
                    retain=True,
                )
        await session.disconnect(STATUS_TIMEOUT_S)

    async def _run_workers(self, session: MqttSession) -> None:
        """The publisher window and command dispatch, until the connection ends or the
        uplink stops. A worker's UplinkError (the connection is gone) is raised as such;
        any other failure is a bug and goes up as the TaskGroup's ExceptionGroup."""
        owner = TaskOwner("uplink-connection")
        await owner.start()
        try:
            for name, work in self._publisher.workers(session).items():
                owner.spawn(work, name=name)
            owner.spawn(self._dispatcher.run(session), name="commands")
            stop = owner.spawn(self._stop.wait(), name="stop")
            ends: list[asyncio.Future[Any]] = [stop, session.closed]
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            try:
                await owner.stop()
            except BaseExceptionGroup as group:
                raise _connection_error(group) from None


def _connection_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The UplinkError when that is all the workers raised; else the group itself."""
    matched, rest = group.split(UplinkError)
    if matched is None or rest is not None:
        return group
    first: BaseException = matched
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
