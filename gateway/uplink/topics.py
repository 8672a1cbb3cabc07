"""The MQTT topic tree of one gateway, built once from the prefix and the gateway id.

Dotted names (event kinds like ``telemetry.reading``, command names like ``config.get``)
become topic levels (``telemetry/reading``): NATS' MQTT front end refuses '.' in topics, and
levels let the platform subscribe to ``.../events/telemetry/#``.

- ``<prefix>/<gateway_id>/events/<kind as levels>``
- ``<prefix>/<gateway_id>/status``
- ``<prefix>/<gateway_id>/cmd/<name as levels>``
- ``<prefix>/<gateway_id>/result/<name as levels>`` (MQTT 3.1.1 has no response topic)
- ``<prefix>/site/<site>/claims/<gateway_id>`` (neighbouring door gateways' claims; a gateway
  id ``site`` is therefore reserved when a site is configured)

A topic the gateway publishes to on someone else's word (an MQTT 5 response topic) is
checked first with :meth:`Topics.response_topic_problem`: paho raises on wildcards, and a
broker drops the connection over characters MQTT forbids.

docs/mqtt.md is the reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Topics", "topic_name_problem"]

#: MQTT's limit on any string, a topic name included: a two-byte length.
TOPIC_MAX_BYTES: Final = 65_535

#: Code points a topic name must not hold: the wildcards, U+0000, the control characters and
#: the non-characters that MQTT 5 section 1.5.4 says a string should not include (mosquitto
#: disconnects a client that sends them), and surrogates (not encodable as UTF-8).
_FORBIDDEN: Final = re.compile(
    "[+#\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)


def topic_name_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None if it can."""
    if not topic:
        return "empty topic"
    bad = _FORBIDDEN.search(topic)
    if bad is not None:
        return f"topic holds {bad.group()!a}"
    if len(topic.encode("utf-8")) > TOPIC_MAX_BYTES:
        return f"topic longer than {TOPIC_MAX_BYTES} bytes"
    return None


def _levels(name: str) -> str:
    return name.replace(".", "/")


#: The first level after the prefix that holds site topics instead of a gateway's own.
SITE_LEVEL: Final = "site"


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    gateway_id: str
    #: The site whose claims we share; None = no site topic.
    site: str | None = None

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def commands(self) -> str:
        """The subscription filter for every command."""
        return f"{self.base}/cmd/#"

    def event(self, kind: str) -> str:
        return f"{self.base}/events/{_levels(kind)}"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{_levels(name)}"

    def command_name(self, topic: str) -> str | None:
        """The (dotted) command name of a message on ``.../cmd/<levels>``, else None."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        levels = topic[len(head) :].split("/")
        return ".".join(levels) if all(levels) else None

    def command_result(self, name: str) -> str:
        return f"{self.base}/result/{_levels(name)}"

    @property
    def site_claims_prefix(self) -> str | None:
        """``<prefix>/site/<site>/claims/``: what every site claims topic starts with."""
        if self.site is None:
            return None
        return f"{self.prefix}/{SITE_LEVEL}/{self.site}/claims/"

    @property
    def site_claims(self) -> str | None:
        """Where this gateway publishes its claims, or None without a site."""
        head = self.site_claims_prefix
        return None if head is None else f"{head}{self.gateway_id}"

    @property
    def site_claims_filter(self) -> str | None:
        """The subscription filter for every gateway's claims of the site, or None."""
        head = self.site_claims_prefix
        return None if head is None else f"{head}+"

    def site_sender(self, topic: str) -> str | None:
        """The gateway id that published a message on our site's claims topic, else None
        (another topic, or an empty level)."""
        head = self.site_claims_prefix
        if head is None or not topic.startswith(head):
            return None
        sender = topic[len(head) :]
        return sender if sender and "/" not in sender else None

    def response_topic_problem(self, topic: str) -> str | None:
        """Why the gateway will not answer on this MQTT 5 response topic, or None.

        Besides what no topic may hold: no ``$`` topics (reserved for the broker), and nothing
        inside the gateway's own tree but ``result/``: an answer on ``cmd/`` would come back
        as a command, one on ``events/`` or ``status`` would pose as the gateway's own data.
        """
        problem = topic_name_problem(topic)
        if problem is not None:
            return problem
        if topic.startswith("$"):
            return "topics starting with $ belong to the broker"
        if (topic == self.base or topic.startswith(f"{self.base}/")) and not topic.startswith(
            f"{self.base}/result/"
        ):
            return "inside the gateway's own topics (only result/ may be used)"
        return None
