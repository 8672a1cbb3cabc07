"""Everything the broker carried, into a JSON lines file, with a live tally for the progress line.

The recorder is one MQTT client subscribed to ``#``: events, batches, EPCIS documents, status
births and wills, the platform's commands and the gateways' answers, the site topic. Each
message becomes one line ``{"topic", "payload", "received", "retain"}``: the payload parsed as
JSON (a zlib-compressed batch is inflated first), or ``{"text": ...}`` / ``{"hex": ...}`` when
it is not JSON. Nothing is dropped: a message that cannot be parsed is still a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import aiomqtt

from gateway.report import describe_event, expand_payload

__all__ = ["Recorder", "decode_payload", "recording"]

#: Keepalive of the recorder's connection: longer than any broker outage a scenario stages at
#: speed 1 (the broker is frozen, so a shorter keepalive would drop the recording client).
KEEPALIVE_S: Final = 900


def decode_payload(raw: bytes) -> Any:
    """A message payload as JSON if it is JSON (inflating a zlib batch), else text or hex."""
    data = raw
    if data[:1] == b"\x78":
        with contextlib.suppress(zlib.error):
            data = zlib.decompress(data)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        return {"text": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"hex": raw.hex()}


@dataclass
class Recorder:
    """The live tally of what was recorded (read by the progress display)."""

    client: aiomqtt.Client
    out: IO[str]
    messages: int = 0
    events: Counter[str] = field(default_factory=Counter)
    online: set[str] = field(default_factory=set)
    results: list[dict[str, Any]] = field(default_factory=list)
    happened: str = ""
    latest_event_time: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self) -> None:
        async for msg in self.client.messages:
            raw = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
            topic = str(msg.topic)
            payload = decode_payload(raw)
            line = {
                "topic": topic,
                "payload": payload,
                "received": datetime.now(UTC).isoformat(),
                "retain": bool(msg.retain),
            }
            self.out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
            self.messages += 1
            self._tally(topic, payload)
            self.changed.set()

    def _tally(self, topic: str, payload: Any) -> None:
        parts = topic.split("/")
        if (
            "/events/" not in topic
            and isinstance(payload, dict)
            and payload.get("kind") == "gateway.status"
        ):
            gw = str(payload.get("gateway_id", parts[-2]))
            if payload.get("state") == "online":
                self.online.add(gw)
            else:
                self.online.discard(gw)
            return
        if "/result/" in topic and isinstance(payload, dict):
            self.results.append(payload)
            return
        if "/events/" not in topic:
            return
        for event in expand_payload(payload):
            kind = str(event.get("kind", "epcis.document"))
            self.events[kind] += 1
            time = event.get("time")
            if isinstance(time, str) and (
                self.latest_event_time is None or time > self.latest_event_time
            ):
                self.latest_event_time = time
            text = describe_event(event)
            if text is not None:
                self.happened = text

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self.client.publish(topic, json.dumps(payload), qos=1)

    async def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        """True once ``predicate()`` holds, False after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            return False
        return True


@contextlib.asynccontextmanager
async def recording(host: str, port: int, path: Path) -> AsyncIterator[Recorder]:
    """Subscribe to everything on the broker and append it to ``path`` until the block ends."""
    with path.open("a", encoding="utf-8") as out:
        async with aiomqtt.Client(
            host,
            port,
            identifier=f"tagrelay-demo-recorder-{id(out):x}",
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=KEEPALIVE_S,
        ) as client:
            await client.subscribe("#", qos=1)
            recorder = Recorder(client, out)
            task = asyncio.create_task(recorder.pump())
            try:
                yield recorder
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await task
                out.flush()
