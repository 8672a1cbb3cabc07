"""The platform's side as a paho client on its own network thread, and the daemon as a real
process: for tests that publish what any client allowed on the command topics could publish
(retained messages, every MQTT 5 property) at a running ``python -m gateway run``."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.fixtures.mosquitto import Broker, stop_process

GATEWAY: Final = "gw-cmd"
BASE: Final = f"tagrelay/v1/{GATEWAY}"
CMD: Final = f"{BASE}/cmd"
RESULT: Final = f"{BASE}/result"
STATUS: Final = f"{BASE}/status"
#: Where the platform wants its MQTT 5 answers.
REPLIES: Final = "platform/replies"
#: A broker round trip and a command on a shared, loaded machine: generous.
ANSWER_TIMEOUT_S: Final = 20.0
#: How long the daemon gets to connect after its start (python start-up included).
START_TIMEOUT_S: Final = 60.0


def write_config(tmp_path: Path, broker: Broker, uplink_extra: str = "") -> Path:
    path = tmp_path / "tagrelay.toml"
    path.write_text(
        f'gateway_id = "{GATEWAY}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "[uplink]\n"
        f'host = "{broker.host}"\nport = {broker.port}\ntransport = "tcp"\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.5\n" + uplink_extra
    )
    return path


@contextmanager
def run_daemon(tmp_path: Path, config: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m gateway run`` (this tree's code), stopped by pid at the end."""
    with (tmp_path / "daemon.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        stop_process(proc)


def properties(**values: Any) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None
    at: int  # arrival index
    seqs: tuple[int, ...] = ()  # on an event topic: the "seq" of each event, batches unpacked


def _event_seqs(topic: str, payload: bytes) -> tuple[int, ...]:
    if not topic.startswith(f"{BASE}/events/"):
        return ()
    data = payload if payload[:1] in (b"{", b"[") else zlib.decompress(payload)
    value = json.loads(data)
    # The daemon's own events (a handoff report, a tag binding) have no test sequence number.
    return tuple(e["seq"] for e in (value if isinstance(value, list) else [value]) if "seq" in e)


@dataclass
class Platform:
    """A paho MQTT 5 client subscribed to everything (``#``, no local echo)."""

    client: paho.Client
    seen: list[Seen] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    pubacks: dict[int, int] = field(default_factory=dict)
    disconnects: list[str] = field(default_factory=list)
    #: Every event "seq" received so far (duplicates collapse here, not in ``seen``).
    distinct: set[int] = field(default_factory=set)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    # -- paho callbacks (network thread) ---------------------------------------------------

    def on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        props = msg.properties
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        payload = bytes(msg.payload)
        seqs = _event_seqs(msg.topic, payload)
        with self.cond:
            self.seen.append(Seen(msg.topic, payload, msg.retain, corr, len(self.seen), seqs))
            self.distinct.update(seqs)
            self.cond.notify_all()

    def on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        with self.cond:
            self.pubacks[mid] = rc.value
            self.cond.notify_all()

    def on_disconnect(self, client: paho.Client, userdata: Any, *args: Any) -> None:
        with self.cond:
            self.disconnects.append(str(args[1]) if len(args) > 1 else "?")
            self.cond.notify_all()

    # -- test API ---------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout_s):
                raise TimeoutError("the awaited message did not arrive")

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        props: Properties | None = None,
    ) -> int:
        """Publish at QoS 1 and wait for the broker's PUBACK; return its reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        self.wait(lambda: info.mid in self.pubacks)
        return self.pubacks.pop(info.mid)

    def mark(self) -> int:
        with self.cond:
            return len(self.seen)

    def since(self, mark: int) -> list[Seen]:
        with self.cond:
            return self.seen[mark:]

    def ping(self) -> dict[str, Any]:
        """A ping answered on the MQTT 5 response topic: the daemon is alive, connected and
        its command loop got past everything published before."""
        cid = f"alive-{os.getpid()}-{next(self._ids)}"
        corr = cid.encode()
        topic = f"{REPLIES}/alive"
        self.publish(
            f"{CMD}/ping",
            json.dumps({"id": cid}).encode(),
            props=properties(ResponseTopic=topic, CorrelationData=corr),
        )
        self.wait(lambda: any(s.correlation == corr and s.topic == topic for s in self.seen))
        answer = next(s for s in self.seen if s.correlation == corr)
        body: dict[str, Any] = json.loads(answer.payload)
        assert body["ok"] is True, body
        assert body["id"] == cid, body
        return body

    def wait_online(self, after: int) -> None:
        """Until a birth (``state: online``) arrives after ``mark()`` = ``after``: the daemon
        has subscribed to its command topics."""

        def online() -> bool:
            return any(
                s.topic == STATUS and json.loads(s.payload)["state"] == "online"
                for s in self.seen[after:]
            )

        self.wait(online, START_TIMEOUT_S)

    def events_since(self, mark: int) -> list[int]:
        """The "seq" of every event received since ``mark``, in arrival order."""
        return [seq for s in self.since(mark) for seq in s.seqs]

    def event_messages_since(self, mark: int) -> int:
        with self.cond:
            return sum(1 for s in self.seen[mark:] if s.seqs)

    def answers(self, mark: int) -> list[Seen]:
        """Command responses (anything carrying a ``command`` field) since ``mark``, the
        liveness pings' own answers left out."""
        out = []
        for s in self.since(mark):
            if s.topic.startswith((f"{BASE}/events/", STATUS)):
                continue
            try:
                body = json.loads(s.payload)
            except ValueError:
                continue
            if (
                isinstance(body, dict)
                and "command" in body
                and not str(body.get("id") or "").startswith("alive-")
            ):
                out.append(s)
        return out


@contextmanager
def platform(broker: Broker, name: str = "platform") -> Iterator[Platform]:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{os.getpid()}-{time.monotonic_ns()}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    p = Platform(client)
    client.on_message = p.on_message
    client.on_publish = p.on_publish
    client.on_disconnect = p.on_disconnect
    # Without it Nagle holds each small PUBLISH for the previous one's ACK (tens of ms).
    client.on_socket_open = lambda c, u, sock: sock.setsockopt(  # type: ignore[attr-defined]
        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
    )
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        subscribed = threading.Event()
        client.on_subscribe = lambda *args: subscribed.set()
        client.subscribe("#", options=SubscribeOptions(qos=1, noLocal=True))
        assert subscribed.wait(ANSWER_TIMEOUT_S), "no SUBACK"
        yield p
    finally:
        client.disconnect()
        client.loop_stop()
