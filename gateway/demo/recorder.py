"""Everything the broker carried, into a JSON lines file, with a live tally for the progress line.

The recorder is one MQTT client (paho-mqtt, the gateway's own library) subscribed to ``#``:
events, batches, EPCIS documents, status births and wills, the platform's commands and the
gateways' answers, the site topic. Each message becomes one line ``{"topic", "payload",
"received", "retain"}``: the payload parsed as JSON (a zlib-compressed batch is inflated first),
or ``{"text": ...}`` / ``{"hex": ...}`` when it is not JSON. Nothing is dropped: a message that
cannot be parsed is still a line. paho's network thread only hands each message to the event
loop; writing and counting happen there, in arrival order.
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

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from gateway.report import describe_event, expand_payload

__all__ = ["Recorder", "RecorderError", "decode_payload", "recording"]

#: Keepalive of the recorder's connection: longer than any broker outage a scenario stages at
#: speed 1 (the broker is frozen, so a shorter keepalive would drop the recording client).
KEEPALIVE_S: Final = 900
#: How long connecting and subscribing may take on a loopback broker.
SUBSCRIBE_TIMEOUT_S: Final = 15.0
#: How long the last command may wait for its PUBACK.
PUBLISH_TIMEOUT_S: Final = 15.0


class RecorderError(ConnectionError):
    """The recorder could not connect or subscribe."""


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

    client: mqtt.Client
    out: IO[str]
    messages: int = 0
    events: Counter[str] = field(default_factory=Counter)
    online: set[str] = field(default_factory=set)
    results: list[dict[str, Any]] = field(default_factory=list)
    happened: str = ""
    latest_event_time: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _last: mqtt.MQTTMessageInfo | None = None

    def record(self, topic: str, raw: bytes, retain: bool, received: datetime) -> None:
        """One message, on the event loop (paho's thread hands it over)."""
        payload = decode_payload(raw)
        line = {
            "topic": topic,
            "payload": payload,
            "received": received.isoformat(),
            "retain": retain,
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
        """Queue one command at QoS 1 (paho sends in order)."""
        self._last = self.client.publish(topic, json.dumps(payload), qos=1)

    async def flush(self) -> None:
        """Wait until the last command queued has its PUBACK."""
        last = self._last
        if last is not None:
            await asyncio.to_thread(last.wait_for_publish, PUBLISH_TIMEOUT_S)

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
    loop = asyncio.get_running_loop()
    subscribed: asyncio.Future[None] = loop.create_future()
    with path.open("a", encoding="utf-8") as out:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"tagrelay-demo-recorder-{id(out):x}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        recorder = Recorder(client, out)

        def settle(error: str | None) -> None:
            if not subscribed.done():
                if error is None:
                    subscribed.set_result(None)
                else:
                    subscribed.set_exception(RecorderError(error))

        def on_connect(
            c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object
        ) -> None:
            if reason.is_failure:
                loop.call_soon_threadsafe(settle, f"broker refused the recorder: {reason}")
            else:
                c.subscribe("#", qos=1)

        def on_subscribe(
            _c: mqtt.Client, _u: object, _m: int, reasons: list[ReasonCode], _p: object
        ) -> None:
            failed = [r for r in reasons if r.is_failure]
            loop.call_soon_threadsafe(settle, f"subscribe refused: {failed}" if failed else None)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            when = datetime.now(UTC)
            loop.call_soon_threadsafe(
                recorder.record, msg.topic, bytes(msg.payload), msg.retain, when
            )

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        try:
            await asyncio.to_thread(client.connect, host, port, KEEPALIVE_S)
        except OSError as exc:
            raise RecorderError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
        client.loop_start()
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                await subscribed
            yield recorder
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            await asyncio.sleep(0)  # messages handed over before the stop are written
            out.flush()
