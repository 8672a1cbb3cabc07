"""The uplink: drains the outbox to the MQTT broker and serves downlink commands.

:class:`Uplink` is the one object the daemon holds: an async context manager that puts three
rooms together and owns their tasks (see docs/mqtt.md):

- :mod:`gateway.uplink.session_loop`: connect / reconnect with backoff, subscriptions, the
  retained birth on ``.../status`` (the broker holds the matching will), session takeovers.
- :mod:`gateway.uplink.publisher`: the in-flight window, batching and acknowledgement batching
  (``Outbox.lease`` ─▶ QoS 1 publish ─▶ PUBACK ─▶ ``Outbox.ack`` / ``Outbox.reject``). When
  the connection drops, whatever is leased and not acknowledged is released and leased again
  after reconnect (at-least-once; consumers de-duplicate on ``event_id``).
- :mod:`gateway.uplink.dispatch`: commands in, one response each out.

Leaving the context publishes the offline status, disconnects cleanly and hands
un-acknowledged rows back to the outbox.

Commands survive a dead zone: the broker keeps the gateway's session (``session_expiry_s``)
and queues the commands published meanwhile; they are answered after reconnect, once each
(docs/mqtt.md, "Sessions").

With ``UplinkConfig.site`` set, neighbouring door gateways exchange claims on the site topic:
:meth:`Uplink.publish_site` sends ours, :meth:`Uplink.site_messages` yields the other
gateways' (:mod:`gateway.uplink.site`; docs/mqtt.md, "Site topic").
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from pydantic import JsonValue
from pydantic_core import to_jsonable_python

from foundation.clock import Clock
from foundation.lifecycle import TaskOwner
from gateway.outbox import Outbox
from gateway.uplink.commands import CommandProcessor, CommandRegistry, default_registry
from gateway.uplink.config import UplinkConfig
from gateway.uplink.dispatch import CommandDispatcher
from gateway.uplink.publisher import BusyHook, PubAckReport, Publisher
from gateway.uplink.session_loop import ConnectionState, SessionLoop, StatusInfo
from gateway.uplink.site import SiteChannel, SiteMessage
from gateway.uplink.topics import SITE_LEVEL, Topics

__all__ = [
    "ConnectionState",
    "PubAckReport",
    "SiteMessage",
    "StatusInfo",
    "Uplink",
    "UplinkStats",
]


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
    #: Times another client with our client id took the session over (a cloned gateway_id).
    session_takeovers: int = 0
    #: The broker node connected to, or that the next attempt goes to (``host:port``).
    broker: str = ""
    #: Moves to the next broker node (``fallback_brokers``) after a failure or a lost connection.
    broker_switches: int = 0


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
        on_delivery: Callable[[PubAckReport], None] | None = None,
        on_state: Callable[[ConnectionState, str], None] | None = None,
        rng: random.Random | None = None,
        rewrite: Callable[[bytes], bytes] | None = None,
        busy: BusyHook | None = None,
    ) -> None:
        """``on_delivery`` is called with each PUBACK (metrics, the benchmark); ``rewrite`` is
        applied to each stored payload right before it is sent (the clock corrects the times
        of events stamped before a trusted time source appeared); it never changes the id.
        ``busy(stage)`` is entered around the publisher's outbox work (the watchdog's progress
        tracking, :mod:`gateway.uplink.publisher`)."""
        self._outbox = outbox
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
        processor = CommandProcessor(
            commands,
            clock,
            max_bytes=config.command_max_bytes,
            results_kept=config.command_results_kept,
        )
        self._stop = asyncio.Event()
        self._publisher = Publisher(
            config,
            outbox,
            clock,
            self._topics,
            on_delivery=on_delivery,
            rewrite=rewrite,
            busy=busy,
        )
        self._dispatcher = CommandDispatcher(processor, self._topics)
        self._site = SiteChannel(self._topics, gateway_id, config.site_max_bytes, clock)
        self._session_loop = SessionLoop(
            config,
            gateway_id,
            outbox,
            clock,
            self._topics,
            status=status,
            clock_state=clock_state,
            publisher=self._publisher,
            dispatcher=self._dispatcher,
            site=self._site,
            stop=self._stop,
            on_state=on_state,
            rng=rng,
        )
        self._owner = TaskOwner("uplink")
        self._finished: asyncio.Future[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._finished = asyncio.get_running_loop().create_future()
        await self._owner.start()
        self._owner.spawn(self._publisher.run_acker(), name="acker")
        self._owner.spawn(self._run_session_loop(self._finished), name="session-loop")
        return self

    async def _run_session_loop(self, finished: asyncio.Future[None]) -> None:
        """The session loop ends only when asked to; if it fails anyway (a bug), the
        failure goes to :meth:`wait_finished` (the daemon's supervisor) and to the exit of
        this context, not to whichever task happened to enter it."""
        try:
            await self._session_loop.run()
        except Exception as exc:
            finished.set_exception(exc)
        else:
            finished.set_result(None)
        finally:
            if not finished.done():
                finished.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        try:
            if self._finished is not None:
                # The loop says goodbye and ends by itself; its failure is raised here.
                await asyncio.shield(self._finished)
        finally:
            try:
                await self._owner.stop(exc_type, exc, tb)  # the acker, and the loop if cancelled
            finally:
                await self._publisher.flush_acks()
                self._session_loop.set_state(ConnectionState.STOPPED, "stopped")
                self._site.close()

    def stop(self) -> None:
        """Ask for a clean stop (what leaving the context manager does)."""
        self._stop.set()

    async def wait_finished(self) -> None:
        """Return when the uplink's loop ended; raise what ended it if it failed (a bug:
        connection problems are retried forever). For supervisors."""
        if self._finished is not None:
            await asyncio.shield(self._finished)

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._session_loop.state

    @property
    def state_detail(self) -> str:
        """Why we are in this state (an UplinkErrorReason value when disconnected)."""
        return self._session_loop.state_detail

    @property
    def topics(self) -> Topics:
        return self._topics

    async def wait_state(self, state: ConnectionState) -> None:
        await self._session_loop.wait_state(state)

    def stats(self) -> UplinkStats:
        sessions = self._session_loop.counts
        published = self._publisher.counts
        processor = self._dispatcher.processor
        site = self._site
        return UplinkStats(
            state=self._session_loop.state,
            connects=sessions["connects"],
            messages_published=published["messages"],
            events_published=published["events"],
            events_acked=published["acked"],
            events_rejected=published["rejected"],
            reject_reasons=dict(self._publisher.reject_reasons),
            batches_published=published["batches"],
            commands_handled=dict(processor.handled),
            command_errors={r.value: n for r, n in processor.errors.items()},
            ack_lag_events=self._publisher.ack_lag(),
            sessions_resumed=sessions["sessions_resumed"],
            site_published=site.published,
            site_not_sent=dict(site.not_sent),
            site_received=site.received,
            site_dropped=dict(site.dropped),
            session_takeovers=sessions["session_takeovers"],
            broker=str(self._session_loop.endpoint),
            broker_switches=sessions["endpoint_switches"],
        )

    # -- the site topic -------------------------------------------------------------------

    def publish_site(self, payload: bytes) -> None:
        """Publish our claim summary on ``<prefix>/site/<site>/claims/<gateway_id>``: QoS 0,
        not retained, not through the outbox (a claim is stale in seconds; the next one
        replaces it). Never raises: without a site, over ``site_max_bytes`` or while
        disconnected it is dropped and counted (``UplinkStats.site_not_sent``)."""
        self._site.publish(payload)

    def site_messages(self) -> AsyncIterator[SiteMessage]:
        """Claims from the OTHER gateways of the site, in arrival order, for one consumer.

        Ends at once without a site, and when the uplink stops. Messages arriving while
        nobody reads wait in a queue of ``SITE_QUEUE_MESSAGES``; beyond it the oldest is
        dropped and counted (``UplinkStats.site_dropped["queue_full"]``)."""
        return self._site.messages()

    async def _outbox_stats_json(self) -> JsonValue:
        stats = await self._outbox.stats()
        result: JsonValue = to_jsonable_python(stats)
        return result
