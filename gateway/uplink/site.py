"""The site topic: door gateways of one site exchange their claim summaries.

:meth:`SiteChannel.publish` sends ours (QoS 0, not through the outbox: a claim is stale in
seconds), :meth:`SiteChannel.messages` yields the other gateways' (docs/mqtt.md, "Site topic").
The session loop subscribes through :meth:`SiteChannel.subscribe` on every connect and tells the
channel which connection is current.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue
from pydantic_core import from_json

from foundation.clock import Clock
from gateway.uplink._mqtt import InboundMessage, MqttSession
from gateway.uplink.errors import UplinkError, UplinkErrorReason
from gateway.uplink.publisher import JSON_CONTENT_TYPE
from gateway.uplink.topics import Topics

__all__ = ["SITE_QUEUE_MESSAGES", "SiteChannel", "SiteMessage"]

_log = logging.getLogger(__name__)

#: Neighbours' claim messages waiting for the pipeline; beyond this the oldest is dropped and
#: counted (the newest claim of a door supersedes its older ones). 64 = a few seconds of
#: claims from a dozen doors, each every few seconds.
SITE_QUEUE_MESSAGES: Final = 64
#: Message expiry of a claim we publish: brokers that queue QoS 0 messages for an offline
#: session (some do) must not hand a neighbour claims older than a few publish periods.
SITE_MESSAGE_EXPIRY_S: Final = 10


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


class SiteChannel:
    """Our claims out, the neighbours' claims in; counts what is not sent or dropped."""

    def __init__(self, topics: Topics, gateway_id: str, max_bytes: int, clock: Clock) -> None:
        self._topics = topics
        self._gateway_id = gateway_id
        self._max_bytes = max_bytes
        self._clock = clock
        #: The connected session (None while disconnected).
        self.session: MqttSession | None = None
        self._queue: asyncio.Queue[SiteMessage | None] = asyncio.Queue(SITE_QUEUE_MESSAGES)
        self._closed = False
        self._refusal_logged = False
        self.published = 0
        self.received = 0
        self.not_sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def publish(self, payload: bytes) -> None:
        """See :meth:`gateway.uplink.Uplink.publish_site`."""
        topic = self._topics.site_claims
        if topic is None:
            self.not_sent["disabled"] += 1
            return
        if len(payload) > self._max_bytes:
            self.not_sent["oversize"] += 1
            return
        session = self.session
        if session is None or not session.publish_qos0(
            topic, payload, expiry_s=SITE_MESSAGE_EXPIRY_S, content_type=JSON_CONTENT_TYPE
        ):
            self.not_sent["disconnected"] += 1
            return
        self.published += 1

    async def messages(self) -> AsyncIterator[SiteMessage]:
        """See :meth:`gateway.uplink.Uplink.site_messages`."""
        if self._topics.site is None:
            return
        while not self._closed or not self._queue.empty():
            msg = await self._queue.get()
            if msg is None:
                return
            yield msg

    async def subscribe(self, session: MqttSession) -> None:
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
            self.dropped["subscribe_refused"] += 1
            if not self._refusal_logged:
                self._refusal_logged = True
                _log.error("site topic unavailable, deciding without neighbours: %s", exc)

    def on_message(self, msg: InboundMessage) -> None:
        """Called from paho's reader: checks, parses and queues; never raises."""
        dropped = self.dropped
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
        if len(msg.payload) > self._max_bytes:
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
        self._put(SiteMessage(sender, msg.payload, data, self._clock.monotonic()))
        self.received += 1

    def _put(self, item: SiteMessage | None) -> None:
        """Queue, dropping the oldest message when full."""
        queue = self._queue
        if queue.full():
            old = queue.get_nowait()
            if old is not None:
                self.dropped["queue_full"] += 1
        queue.put_nowait(item)

    def close(self) -> None:
        """Ends ``messages`` once what is queued was read."""
        if not self._closed:
            self._closed = True
            self._put(None)
