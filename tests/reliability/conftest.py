"""Shared pieces of the reliability suite: the daemon as a real process that can be started,
killed by pid and started again on the same state; a platform-side recorder that keeps
everything the broker carried (persistent MQTT session, so nothing published while it
reconnects is missed); a mosquitto whose sessions survive its own SIGKILL; and samplers for a
process's memory and file descriptors from /proc."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.events import TelemetryReading
from gateway.events.common import LabelFrame
from gateway.registry import smartlabel_tag_id
from protocols.smartlabel import Environment
from simulator.serial import SmartLabelReaderSim
from tests.fixtures.mosquitto import (
    Broker,
    _find_binary,
    _mosquitto_conf,
    free_port,
    stop_process,
)

#: A daemon's start (python start-up, SQLite recovery, MQTT connect) on a shared machine.
START_TIMEOUT_S: Final = 60.0
#: How long a daemon gets to exit after SIGTERM, or to vanish after SIGKILL.
EXIT_TIMEOUT_S: Final = 30.0
#: The recorder's patience for an awaited message.
WAIT_TIMEOUT_S: Final = 60.0
#: Everything under the project's topic tree.
TOPICS: Final = "tagrelay/v1/#"


def uplink_section(broker: Broker, extra: str = "") -> str:
    return (
        "[uplink]\n"
        f'host = "{broker.host}"\nport = {broker.port}\ntransport = "tcp"\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.5\n" + extra
    )


def write_config(
    path: Path, gateway_id: str, broker: Broker, body: str = "", state_dir: Path | None = None
) -> Path:
    """A gateway config at ``path`` with its state beside it in ``state/`` (or in
    ``state_dir``); ``body`` adds sections after ``[uplink]`` (start it with a header)."""
    state = state_dir or path.parent / "state"
    path.write_text(
        f'gateway_id = "{gateway_id}"\nstate_dir = "{state}"\n' + uplink_section(broker) + body
    )
    return path


#: Frames are written to the pty in bursts every LABEL_TICK_S (the reader's UART flushing).
LABEL_TICK_S: Final = 0.01
LABEL_EPOCH: Final = 1_767_225_600


class LabelStream:
    """Frames from many labels at a steady rate into a simulated reader, and what each was sent
    as. A frame arriving while the reader holds ``buffer`` un-ACKed frames is lost at the reader
    (never transmitted, so never ACKed), as in its firmware."""

    def __init__(
        self,
        reader: SmartLabelReaderSim,
        gateway_id: str,
        labels: Sequence[int],
        rate_fps: float,
        buffer: int,
    ) -> None:
        self.reader = reader
        self.gateway_id = gateway_id
        self.labels = list(labels)
        self.rate_fps = rate_fps
        self.buffer = buffer
        self.times: dict[tuple[int, int], int] = {}
        #: Frame -> its position in the stream (0 for the first frame relayed).
        self.sent_index: dict[tuple[int, int], int] = {}
        self.offered = 0
        self.sent = 0
        self.overflowed = 0
        self.elapsed_s = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not stop.is_set():
            due = int((loop.time() - started) * self.rate_fps)
            while self.offered < due:
                self.offered += 1
                if self.reader.unacked >= self.buffer:
                    self.overflowed += 1
                    continue
                i = self.sent
                label = self.labels[i % len(self.labels)]
                seq = self.reader.next_seq(label)
                self.times[(label, seq)] = LABEL_EPOCH + i // len(self.labels)
                self.sent_index[(label, seq)] = i
                self.reader.send(
                    Environment(
                        label_id=label,
                        seq=seq,
                        label_time=self.times[(label, seq)],
                        temperature_c=4.0 + (i % 13) / 10,
                        humidity_pct=70.0,
                    )
                )
                self.sent += 1
            await asyncio.sleep(LABEL_TICK_S)
        self.elapsed_s = loop.time() - started

    def event_ids(self, keys: set[tuple[int, int]]) -> set[str]:
        return {
            TelemetryReading.make_id(
                self.gateway_id,
                LabelFrame(smartlabel_tag_id(label), seq, None, self.times[(label, seq)]),
            )
            for label, seq in keys
        }


@dataclass
class Daemon:
    """``python -m gateway run --config CONFIG`` as a real process, restartable on the same
    config and state. Every start appends to one log; every pid it ever had is kept."""

    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)
    env: dict[str, str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not running"
        return self.proc.pid

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as out:
            out.write(f"\n=== start {len(self.pids) + 1} ===\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.pids.append(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int:
        """SIGKILL by pid (a power cut for this process) and reap it; returns the exit code,
        which is -9 unless the daemon had already died on its own."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(EXIT_TIMEOUT_S)
        self.proc = None
        return code

    def terminate(self) -> int:
        """SIGTERM and wait: the clean shutdown; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(EXIT_TIMEOUT_S)
        self.proc = None
        return code

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def open_fds(self) -> int:
        return proc_open_fds(self.pid)


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def proc_open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Make :class:`Daemon` objects; each is stopped by pid at teardown, test failed or not."""
    made: list[Daemon] = []

    def make(config: Path, log: Path | None = None, env: dict[str, str] | None = None) -> Daemon:
        d = Daemon(config, log or config.with_suffix(".log"), env=env)
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in made:
            d.stop()


def decode_events(topic: str, payload: bytes) -> list[dict[str, Any]]:
    """The events in one message on an ``.../events/...`` topic (batches unpacked)."""
    if "/events/" not in topic:
        return []
    data = payload if payload[:1] in (b"{", b"[") else zlib.decompress(payload)
    value = json.loads(data)
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool
    at: float  # monotonic arrival time


@dataclass
class Recorder:
    """The platform: a paho MQTT 5 client on its own thread, subscribed at QoS 1 to everything
    under the project's topics with a persistent session (clean_start false, session kept for an
    hour), reconnecting by itself. ``events`` counts each event id as often as it arrived."""

    client: paho.Client
    seen: list[Seen] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    copies: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    subscribed: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)
    pubacks: dict[int, int] = field(default_factory=dict)

    def on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, *a: Any) -> None:
        # A broker that lost the session (killed before it saved it) gets the subscription again.
        client.subscribe(TOPICS, options=SubscribeOptions(qos=1, noLocal=True))
        with self.cond:
            self.connects += 1
            self.cond.notify_all()

    def on_subscribe(self, *args: Any) -> None:
        with self.cond:
            self.subscribed += 1
            self.cond.notify_all()

    def on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        try:
            events = decode_events(msg.topic, payload)
        except ValueError:
            events = []
        with self.cond:
            self.seen.append(Seen(msg.topic, payload, msg.retain, time.monotonic()))
            for e in events:
                self.copies[e["event_id"]] += 1
                self.events.setdefault(e["event_id"], e)
            self.cond.notify_all()

    def on_publish(self, client: paho.Client, userdata: Any, mid: int, *args: Any) -> None:
        with self.cond:
            self.pubacks[mid] = 0
            self.cond.notify_all()

    # -- test API ------------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout_s: float = WAIT_TIMEOUT_S) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout_s):
                raise TimeoutError(f"condition not met within {timeout_s} s")

    def mark(self) -> int:
        with self.cond:
            return len(self.seen)

    def since(self, mark: int) -> list[Seen]:
        with self.cond:
            return self.seen[mark:]

    def event_ids(self) -> set[str]:
        with self.cond:
            return set(self.events)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self.cond:
            return [e for e in self.events.values() if e["kind"] == kind]

    def statuses(self, gateway_id: str, after: int = 0) -> list[dict[str, Any]]:
        topic = f"tagrelay/v1/{gateway_id}/status"
        return [json.loads(s.payload) for s in self.since(after) if s.topic == topic and s.payload]

    def wait_online(self, gateway_id: str, after: int, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until a birth arrives after ``mark()`` = ``after``: the daemon is connected and
        subscribed to its commands."""
        self.wait(
            lambda: any(s["state"] == "online" for s in self.statuses(gateway_id, after)),
            timeout_s,
        )

    def publish(self, topic: str, payload: bytes, props: Properties | None = None) -> None:
        """QoS 1, waiting for the broker's PUBACK."""
        info = self.client.publish(topic, payload, qos=1, properties=props)
        self.wait(lambda: info.mid in self.pubacks, 30.0)
        with self.cond:
            self.pubacks.pop(info.mid)

    def command(
        self, gateway_id: str, name: str, body: dict[str, Any], timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Publish a command and return the gateway's answer (on its result topic)."""
        mark = self.mark()
        topic = f"tagrelay/v1/{gateway_id}/cmd/{name.replace('.', '/')}"
        self.publish(topic, json.dumps(body).encode())

        def answer() -> dict[str, Any] | None:
            for s in self.seen[mark:]:
                if s.topic.startswith(f"tagrelay/v1/{gateway_id}/result/"):
                    value = json.loads(s.payload)
                    if isinstance(value, dict) and value.get("id") == body.get("id"):
                        return value
            return None

        self.wait(lambda: answer() is not None, timeout_s)
        result = answer()
        assert result is not None
        return result


@pytest.fixture
def recorder_factory() -> Iterator[Callable[[Broker], Recorder]]:
    clients: list[paho.Client] = []

    def connect(broker: Broker, name: str = "platform") -> Recorder:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{name}-{os.getpid()}-{time.monotonic_ns()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        rec = Recorder(client)
        client.on_connect = rec.on_connect
        client.on_subscribe = rec.on_subscribe
        client.on_message = rec.on_message
        client.on_publish = rec.on_publish
        client.on_socket_open = lambda c, u, sock: sock.setsockopt(  # type: ignore[attr-defined]
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        client.reconnect_delay_set(1, 1)
        client.max_inflight_messages_set(1000)
        connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect_props.SessionExpiryInterval = 3600
        client.connect(broker.host, broker.port, clean_start=False, properties=connect_props)
        client.loop_start()
        clients.append(client)
        rec.wait(lambda: rec.subscribed >= 1, 30.0)
        return rec

    try:
        yield connect
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()


@pytest.fixture
def recorder(mosquitto: Broker, recorder_factory: Callable[[Broker], Recorder]) -> Recorder:
    return recorder_factory(mosquitto)


@pytest.fixture
def durable_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A mosquitto that saves its sessions to disk every second, so a subscriber's persistent
    session (and the messages queued for it) survives the broker's own SIGKILL and restart."""
    binary = _find_binary("mosquitto")
    if binary is None:
        pytest.skip("mosquitto is not installed")
    d = tmp_path_factory.mktemp("mosquitto-durable")
    port = free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(_mosquitto_conf("persistent", port, d, None) + "autosave_interval 1\n")
    broker = Broker("durable", port, [binary, "-c", str(conf)], d / "mosquitto.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
