"""The MQTT topic tree of one gateway, built once from the prefix and the gateway id.

Dotted names (event kinds like ``telemetry.reading``, command names like ``config.get``)
become topic levels (``telemetry/reading``): NATS' MQTT front end refuses '.' in topics, and
levels let the platform subscribe to ``.../events/telemetry/#``.

- ``<prefix>/<gateway_id>/events/<kind as levels>``
- ``<prefix>/<gateway_id>/status``
- ``<prefix>/<gateway_id>/cmd/<name as levels>``
- ``<prefix>/<gateway_id>/result/<name as levels>`` (MQTT 3.1.1 has no response topic)

docs/mqtt.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


def _levels(name: str) -> str:
    return name.replace(".", "/")


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    gateway_id: str

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
