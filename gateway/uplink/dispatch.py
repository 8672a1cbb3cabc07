"""Command dispatch: messages on ``.../cmd/#`` in, one response each out.

For one connection, :meth:`CommandDispatcher.run` reads the session's inbound queue, checks what
the transport carries (retain flag, malformed properties, correlation data, response topic),
runs the command through the :class:`CommandProcessor` and publishes its response on the
request's response topic (MQTT 5) or ``.../result/<name levels>``. docs/mqtt.md, "Commands".
"""

from __future__ import annotations

import logging
from typing import Final

from gateway.uplink._mqtt import InboundMessage, MqttSession, PubAck
from gateway.uplink.commands import CommandErrorReason, CommandProcessor, CommandResponse
from gateway.uplink.errors import UplinkError
from gateway.uplink.publisher import JSON_CONTENT_TYPE
from gateway.uplink.topics import Topics, topic_name_problem

__all__ = ["CORRELATION_MAX_BYTES", "CommandDispatcher"]

_log = logging.getLogger(__name__)

#: Correlation data copied into a response: MQTT's own limit is 65 535 bytes; a platform
#: needs a request id, not a payload, and a bound keeps one command from a 64 KiB answer.
CORRELATION_MAX_BYTES: Final = 1024

#: Where the response to a command goes, what it says, and the correlation data it carries.
_Answer = tuple[str, CommandResponse, bytes | None]


class CommandDispatcher:
    """Answers the commands of one connection at a time, one by one."""

    def __init__(self, processor: CommandProcessor, topics: Topics) -> None:
        self.processor = processor
        self._topics = topics

    async def run(self, session: MqttSession) -> None:
        """Answer commands one by one. Nothing a message holds can end this loop: it is the
        boundary where an unexpected error is counted (``internal``) and the message dropped;
        only a lost connection ends it."""
        dropped = 0
        while True:
            msg = await session.inbound.get()
            if session.inbound_dropped > dropped:  # the queue overflowed meanwhile
                for _ in range(session.inbound_dropped - dropped):
                    self.processor.drop(
                        msg.topic[-64:], CommandErrorReason.OVERLOADED, "queue full"
                    )
                dropped = session.inbound_dropped
            try:
                self._answer(session, await self._respond(session, msg))
            except UplinkError:
                raise  # the connection is gone: the session ends, the platform resends
            except Exception as exc:
                self.processor.drop(
                    msg.topic[-64:], CommandErrorReason.INTERNAL, f"{type(exc).__name__}: {exc}"
                )

    async def _respond(self, session: MqttSession, msg: InboundMessage) -> _Answer | None:
        """(topic, response, correlation data) for one command message, or None to drop it.
        What the transport carries is checked before the command runs."""
        processor = self.processor
        name = self._topics.command_name(msg.topic)
        if name is None:
            return self._no_command_name(session, msg)
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

    def _no_command_name(self, session: MqttSession, msg: InboundMessage) -> _Answer | None:
        """A message on the bare ``.../cmd`` topic (``cmd/#`` matches it) or with an empty
        level (``cmd/a//b``): no command to run and no ``result/<name>`` topic. The sender
        still gets an error on its response topic when it gave a usable one (MQTT 5); it is
        always counted and logged."""
        reason = CommandErrorReason.NOT_A_COMMAND_TOPIC
        detail = (
            f"no command name in {msg.topic[-64:]!r}: publish on {self._topics.command('<name>')}"
        )
        response_topic = msg.response_topic if session.v5 and msg.malformed is None else None
        correlation = msg.correlation_data if response_topic is not None else None
        if (
            response_topic is None
            or msg.retain
            or self._topics.response_topic_problem(response_topic) is not None
            or (correlation is not None and len(correlation) > CORRELATION_MAX_BYTES)
        ):
            self.processor.drop("", reason, detail)
            return None
        return response_topic, self.processor.refuse("", msg.payload, reason, detail), correlation

    def _answer(self, session: MqttSession, answer: _Answer | None) -> None:
        if answer is None:
            return
        topic, response, correlation = answer
        problem = topic_name_problem(topic)
        if problem is not None:  # a result topic from a 64 KiB command topic, say
            self.processor.drop(response.command, CommandErrorReason.BAD_RESPONSE_TOPIC, problem)
            return
        session.publish(
            topic,
            response.to_bytes(),
            _ignore_ack,
            content_type=JSON_CONTENT_TYPE,
            correlation_data=correlation,
        )


def _ignore_ack(ack: PubAck) -> None:
    """Command responses are best effort: a lost one is recovered by the platform resending."""
