"""The MQTT topic tree of one gateway, built once from the prefix and the gateway id.

``<prefix>/<gateway_id>/events/<kind>``, ``.../status``, ``.../cmd/<name>`` and, for MQTT 3.1.1
(which has no response topic), ``.../cmd/<name>/result``. docs/mqtt.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


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
        """The subscription filter: one level under cmd/, so results are not matched."""
        return f"{self.base}/cmd/+"

    def event(self, kind: str) -> str:
        return f"{self.base}/events/{kind}"

    def command_name(self, topic: str) -> str | None:
        """The command name of a message on ``.../cmd/<name>``, else None."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if name and "/" not in name else None

    def command_result(self, name: str) -> str:
        return f"{self.base}/cmd/{name}/result"
