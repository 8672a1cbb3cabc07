"""The whole gateway under load: serial frames and BLE adverts in, PUBACKs out, beside baselines.

Everything runs as in the field, on loopback: a private mosquitto on a free port, the daemon as
a real process (``python -m gateway run --config ...``), a simulated SmartLabel reader on a pty
(``simulator.serial``) and the fake BlueZ on a private D-Bus bus (``python -m simulator.bluez``,
its own process). The daemon's figures come from outside it: CPU and peak RSS from
``/proc/PID``, counts from its Prometheus endpoint (PUBACKed events, adverts received, queue
drops, outbox depth), alarm receipt from a subscriber. Phases:

1. serial throughput: Environment frames from 1,000 labels, at most ``READER_WINDOW_FRAMES``
   un-ACKed at a time (as a reader's buffer allows), each committed durably before its ACK,
   then published with QoS 1. Events PUBACKed per second (the daemon's
   ``tagrelay_mqtt_events_acked_total``), sustained (between 10 % and 90 % of the events) and
   from the first frame written to the last PUBACK, with telemetry batching off (one event per
   message) and on, beside the baseline measured in the same run over the
   same frame bytes: a minimal pipeline (split + COBS + CRC + ``struct`` decode, ``sqlite3``
   WAL with synchronous=FULL, one transaction per 1 KiB read, paho QoS 1 with the same window,
   rows deleted once PUBACKed). Rounds alternate baseline / daemon; the best of each counts.
2. the BLE side: at 2,000 and 5,000 adverts/s (200 and 500 tags at 10 Hz) from the fake BlueZ,
   bare bleak counting the adverts in this process (``bench/ble.py``'s baseline), then the
   daemon (scan, decode, presence, conditions, outbox, uplink) with the same load. CPU seconds
   per 1,000 adverts each (the daemon's over the first half of the traffic), adverts lost or
   dropped by the daemon, and, in the second half, the latency of alarms (a shock frame every
   ``ALARM_INTERVAL_S`` through the reader) from the frame written to a subscriber's receipt of
   its event: an upper bound of frame in -> PUBACK.
3. backlog: a backlog of 1M telemetry events built directly through the outbox API (what a
   long broker outage leaves), the daemon started with the broker down, 1,000 labels heard
   through the reader (tracked tags), then the broker started: the time until the outbox is
   empty and everything PUBACKed, and the daemon's peak RSS (VmHWM) over the whole phase.

Run: ``python bench/e2e.py [--quick]``. ``--quick`` uses small sizes (a smoke run of the whole
bench, not figures). The last line is one JSON object with the figures and the checks.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import collections
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from cobs import cobs
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

if __package__ in (None, ""):
    # Run as a script: make the repository's packages importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ble import PHASES as BLE_PHASES
from bench.ble import Phase as BlePhase
from bench.ble import _read_json, _run_phase
from bench.uplink import telemetry_payload
from foundation.clock import SystemClock
from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxConfig, OutboxEvent
from protocols.smartlabel import Environment, Message, Shock, build
from simulator.bluez import PrivateBus
from simulator.serial import PtyPort, SmartLabelReaderSim

GATEWAY_ID: Final = "bench-e2e"
#: Tracked SmartLabels behind the reader (the issue's 1,000 tracked tags).
LABELS: Final = 1_000
#: ... and in a --quick run, which only checks that the bench works.
QUICK_LABELS: Final = 100
LABEL_BASE: Final = 0x5A00_0000_0000_0000
#: Alarm frames come from labels of their own, one per shock, so a receipt names its frame.
ALARM_LABEL_BASE: Final = 0x5B00_0000_0000_0000
#: Frames a reader keeps un-ACKed at once: about 4 KB of frames, what a reader's UART buffer
#: and the pty hold without loss. More would overflow the line, not load the gateway more.
READER_WINDOW_FRAMES: Final = 100
#: The in-flight window of the baseline's paho client: the uplink's default.
MQTT_WINDOW: Final = 50
#: The baseline reads the serial stream in reads of this size (as in bench/decode.py).
READ_BYTES: Final = 1024
#: One shock frame this often during the BLE phases (50 alarms/s).
ALARM_INTERVAL_S: Final = 0.02
#: Alarms go during this share of a BLE phase (from its middle: the first half measures CPU).
ALARM_SHARE_OF_HALF: Final = 0.4
#: The outbox cap for the backlog phase: 1M events of ~330 B do not fit the 256 MiB default.
BACKLOG_MAX_BYTES: Final = 1 << 30
FILL_CHUNK_EVENTS: Final = 5_000
#: Poll period of the daemon's metrics (an external process: no event to await); each scrape
#: costs the daemon some CPU (it walks its condition series), so not more often.
POLL_S: Final = 0.1
#: A phase that has not finished by then is a failure, not a hang.
PHASE_TIMEOUT_S: Final = 900.0
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0

TARGET_PER_EVENT_RATIO: Final = 0.7
TARGET_BATCHED_RATIO: Final = 3.0
TARGET_PEAK_RSS_MIB: Final = 64.0
TARGET_BLE_CPU_RATIO: Final = 2.0
TARGET_ALARM_P99_MS: Final = 100.0


@dataclass(frozen=True)
class Sizes:
    labels: int
    frames: int
    rounds: int
    ble_duration_s: float
    backlog: int
    backlog_frames_per_label: int


FULL: Final = Sizes(
    labels=LABELS,
    frames=20_000,
    rounds=2,
    ble_duration_s=8.0,
    backlog=1_000_000,
    backlog_frames_per_label=2,
)
QUICK: Final = Sizes(
    labels=QUICK_LABELS,
    frames=1_000,
    rounds=1,
    ble_duration_s=1.0,
    backlog=10_000,
    backlog_frames_per_label=1,
)


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_pid(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, then SIGKILL if it does not go: by pid, never by name."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    return proc.returncode


class Broker:
    """mosquitto on ``port`` (as bench/uplink.py starts it); can be started again on it."""

    def __init__(self, workdir: Path, port: int) -> None:
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if binary is None:
            raise SystemExit("mosquitto is not installed")
        self.binary = binary
        self.port = port
        self.conf = workdir / f"mosquitto-{port}.conf"
        self.conf.write_text(
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 0\nmax_queued_messages 0\nlog_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"mosquitto exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape(url: str) -> dict[str, float]:
    """The daemon's metrics, each family summed over its labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is not None:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


@dataclass
class DaemonSetup:
    broker_port: int
    batching: bool = True
    reader_link: Path | None = None
    bus_address: str | None = None
    max_bytes: int | None = None


class Daemon:
    """``tagrelay run`` as a real process with its own state directory and metrics port."""

    def __init__(self, workdir: Path, name: str, setup: DaemonSetup) -> None:
        self.dir = workdir / name
        self.state_dir = self.dir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        lines = [
            f'gateway_id = "{GATEWAY_ID}"',
            f'state_dir = "{self.state_dir}"',
            "[logging]",
            'level = "WARNING"',
            "[metrics]",
            "enabled = true",
            f"port = {self.metrics_port}",
            "[uplink]",
            'host = "127.0.0.1"',
            f"port = {setup.broker_port}",
            'transport = "tcp"',
            "reconnect_min_s = 0.05",
            "reconnect_max_s = 0.25",
            "[uplink.batching]",
            f"enabled = {'true' if setup.batching else 'false'}",
            "[conditions]",
            'default_profile = "pharma-2-8"',
        ]
        if setup.max_bytes is not None:
            lines += ["[outbox]", f"max_bytes = {setup.max_bytes}"]
        if setup.reader_link is not None:
            lines += [
                "[[smartlabel_readers]]",
                f'path = "{setup.reader_link}"',
                'zone = "cold-store"',
            ]
        if setup.bus_address is not None:
            lines += [
                "[ble]",
                f'dbus_system_bus_address = "{setup.bus_address}"',
                "[[ble.scanners]]",
                'adapter = "hci0"',
                'zone = "cold-store"',
            ]
        self.config = self.dir / "tagrelay.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.dir / "daemon.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self, *, connected: bool = True) -> None:
        self.proc = self._spawn()
        # Up when its metrics answer (they start after the pipeline), connected if asked.
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the daemon exited with {self.proc.returncode}: {self.log()}")
                with contextlib.suppress(OSError):
                    m = await self.metrics()
                    if not connected or m.get("tagrelay_mqtt_connected") == 1.0:
                        return
                await asyncio.sleep(POLL_S)

    async def metrics(self) -> dict[str, float]:
        return await asyncio.to_thread(scrape, self.url)

    def log(self) -> str:
        """The tail of the daemon's output (WARNING and above)."""
        return (self.dir / "daemon.log").read_text()[-2000:]

    def stop(self) -> None:
        if self.proc is not None:
            code = stop_pid(self.proc)
            self.proc = None
            if code != 0 or "Traceback" in self.log():
                print(f"warning: the daemon exited with {code}: {self.log()}", file=sys.stderr)


@contextlib.asynccontextmanager
async def running(daemon: Daemon, *, connected: bool = True) -> Any:
    try:
        await daemon.start(connected=connected)
        yield daemon
    finally:
        daemon.stop()


# -- the frames ------------------------------------------------------------------------------


def environment_frames(n: int, labels: int) -> list[Message]:
    """``n`` readings round-robin over ``labels`` labels, inside pharma-2-8's band."""
    now = int(time.time())
    out: list[Message] = []
    for i in range(n):
        label = LABEL_BASE + i % labels
        seq = 1 + i // labels
        out.append(Environment(label, seq, now, 5.0 + (i % 7) / 10, 55.0 + (i % 5)))
    return out


class Reader:
    """A simulated reader on a pty: sends frames keeping a window of un-ACKed ones."""

    def __init__(self, link: Path) -> None:
        self.port = PtyPort(link)
        self.sim = SmartLabelReaderSim(self.port)
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Reader:
        await self._stack.enter_async_context(self.port)
        await self._stack.enter_async_context(self.sim)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def send(self, frames: Sequence[Message], window: int = READER_WINDOW_FRAMES) -> None:
        sim = self.sim
        for msg in frames:
            if sim.unacked >= window:
                await sim.wait_for(lambda: sim.unacked < window)
            sim.send(msg)

    async def all_acked(self) -> None:
        await self.sim.wait_for(lambda: self.sim.unacked == 0)


# -- baseline: struct decode + sqlite3 + paho ------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One serial throughput run: first frame written -> last PUBACK, and sustained."""

    overall_per_s: float
    #: Between 10 % and 90 % of the events PUBACKed: without the start and the tail (a last
    #: batch waits up to max_age_ms before it goes).
    sustained_per_s: float
    cpu_us_per_event: float
    events: int


def sustained(samples: Sequence[tuple[float, float]], n: float) -> float:
    """Events/s between the samples where 10 % and 90 % of ``n`` were done."""
    low = next(s for s in samples if s[1] >= 0.1 * n)
    high = next(s for s in samples if s[1] >= 0.9 * n)
    if high[0] <= low[0]:
        return high[1] / high[0] if high[0] > 0 else 0.0
    return (high[1] - low[1]) / (high[0] - low[0])


_ENV: Final = struct.Struct("<BBQIIhH")


def baseline(port: int, stream: bytes, db: Path) -> Run:
    """The minimal pipeline over ``stream``, frames read -> PUBACK, and its CPU per event."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload BLOB)")
    window = threading.Semaphore(MQTT_WINDOW)
    done = threading.Event()
    expected = stream.count(b"\x00")
    acked = 0
    marks: dict[float, float] = {}  # fraction of the events acked -> when
    # PUBACKs on one connection come in publish order: the oldest published rows are the acked.
    published: collections.deque[int] = collections.deque()

    def on_publish(client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked in (expected // 10, expected * 9 // 10):
            marks[acked] = time.perf_counter()
        if acked >= expected:
            done.set()

    def delete_acked() -> None:
        n = acked - (expected - len(published) - pending)
        conn.executemany(
            "DELETE FROM events WHERE id = ?", [(published.popleft(),) for _ in range(n)]
        )

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="baseline",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(MQTT_WINDOW)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    topic = f"tagrelay/v1/{GATEWAY_ID}-baseline/events/telemetry/reading"
    pending = expected  # frames not yet published
    cpu0 = time.process_time()
    start = time.perf_counter()
    buffer = b""
    for offset in range(0, len(stream), READ_BYTES):
        *frames, buffer = (buffer + stream[offset : offset + READ_BYTES]).split(b"\x00")
        rows = []
        for chunk in frames:
            body = cobs.decode(chunk)
            if binascii.crc_hqx(body[:-2], 0xFFFF) != body[-2] | (body[-1] << 8):
                continue
            _, _, label, seq, label_time, temp, hum = _ENV.unpack_from(body)
            rows.append(
                json.dumps(
                    {
                        "kind": "telemetry.reading",
                        "label": f"{label:016x}",
                        "seq": seq,
                        "time": label_time,
                        "temperature_c": temp / 100,
                        "humidity_pct": hum / 100,
                    }
                ).encode()
            )
        conn.execute("BEGIN")
        delete_acked()
        ids = [
            conn.execute("INSERT INTO events (payload) VALUES (?)", (p,)).lastrowid for p in rows
        ]
        conn.execute("COMMIT")  # the frames of this read are durable: they may be ACKed now
        for row_id, payload in zip(ids, rows, strict=True):
            window.acquire()
            published.append(row_id or 0)
            pending -= 1
            client.publish(topic, payload, qos=1)
    if not done.wait(PHASE_TIMEOUT_S):
        raise SystemExit(f"baseline: {acked} of {expected} acknowledged")
    conn.execute("BEGIN")
    delete_acked()
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    left = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    client.loop_stop()
    client.disconnect()
    if left:
        raise SystemExit(f"baseline: {left} rows left")
    low, high = expected // 10, expected * 9 // 10
    steady = (high - low) / (marks[high] - marks[low]) if marks[high] > marks[low] else 0.0
    return Run(expected / elapsed, steady, cpu / expected * 1e6, expected)


# -- the daemon's serial throughput -----------------------------------------------------------


async def wait_acked(
    daemon: Daemon,
    at_least: float,
    samples: list[tuple[float, float]] | None = None,
    origin: tuple[float, float] = (0.0, 0.0),
) -> dict[str, float]:
    """Poll until every committed event is PUBACKed (and at least ``at_least`` of them);
    ``samples`` gets (seconds, events PUBACKed) since ``origin`` (a time and a count)."""
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        while True:
            m = await daemon.metrics()
            acked = m.get("tagrelay_mqtt_events_acked_total", 0.0)
            if samples is not None:
                samples.append((time.perf_counter() - origin[0], acked - origin[1]))
            if acked >= max(at_least, m.get("tagrelay_events_total", 0.0)):
                return m
            await asyncio.sleep(POLL_S)


async def serial_throughput(
    workdir: Path, broker: Broker, frames: list[Message], labels: int, *, batching: bool, name: str
) -> Run:
    """Frames written -> PUBACK through one daemon, and its CPU per event."""
    link = workdir / name / "reader"
    setup = DaemonSetup(broker.port, batching=batching, reader_link=link)
    async with Reader(link) as reader:
        daemon = Daemon(workdir, name, setup)
        async with running(daemon):
            # One frame per label first: the labels are known (tracked) before timing starts.
            await reader.send(frames[:labels])
            await reader.all_acked()
            before = await wait_acked(daemon, 0)
            acked0 = before.get("tagrelay_mqtt_events_acked_total", 0.0)
            n = len(frames) - labels
            samples: list[tuple[float, float]] = []
            cpu0 = proc_cpu_s(daemon.pid)
            start = time.perf_counter()
            poller = asyncio.create_task(wait_acked(daemon, acked0 + n, samples, (start, acked0)))
            await reader.send(frames[labels:])
            await reader.all_acked()
            after = await poller
            elapsed = time.perf_counter() - start
            cpu = proc_cpu_s(daemon.pid) - cpu0
    events = int(after["tagrelay_mqtt_events_acked_total"] - acked0)
    return Run(events / elapsed, sustained(samples, n), cpu / events * 1e6, events)


# -- BLE --------------------------------------------------------------------------------------


class AlarmWatch:
    """A platform-side subscriber: when each shock event arrived (CLOCK_MONOTONIC)."""

    def __init__(self, port: int) -> None:
        self.received: dict[str, float] = {}
        self._subscribed = threading.Event()
        self._changed = threading.Condition()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="alarm-watch",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"tagrelay/v1/{GATEWAY_ID}/events/condition/shock", qos=1)
        self.client.loop_start()
        if not self._subscribed.wait(START_TIMEOUT_S):
            raise SystemExit("the alarm subscriber did not subscribe")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        event = json.loads(msg.payload)
        with self._changed:
            self.received.setdefault(event["source"]["device"], now)
            self._changed.notify_all()

    def wait_count(self, n: int, timeout_s: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= n, timeout_s):
                raise SystemExit(f"only {len(self.received)} of {n} alarms reached the subscriber")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def send_alarms(reader: Reader, sent: dict[str, float], duration_s: float) -> None:
    """One shock frame every ALARM_INTERVAL_S for ``duration_s``, each from a label of its own."""
    k = len(sent)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(duration_s, stop.set)
    while not stop.is_set():
        label = ALARM_LABEL_BASE + k
        sent[f"smartlabel:{label:016x}"] = time.monotonic()
        reader.sim.send(Shock(label, 1, int(time.time()), 31_000, -4_000, 9_000, 12, 10_000))
        k += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ALARM_INTERVAL_S):
                await stop.wait()


@dataclass
class BleDaemonPhase:
    tags: int
    offered: int = 0
    offered_per_s: float = 0.0
    received: int = 0
    queue_dropped: int = 0
    #: Daemon CPU seconds over the first half of the traffic, and the adverts it received.
    cpu_s: float = 0.0
    cpu_adverts: int = 0
    alarm_latencies_s: list[float] = field(default_factory=list)
    alarms_sent: int = 0

    @property
    def lost(self) -> int:
        return self.offered - self.received + self.queue_dropped


async def ble_daemon(
    workdir: Path, bus: PrivateBus, broker: Broker, tags: int, rate_hz: float, duration_s: float
) -> BleDaemonPhase:
    phase = BleDaemonPhase(tags)
    name = f"ble-{tags}"
    link = workdir / name / "reader"
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator.bluez", "--bus-address", bus.address,
        "--tags", str(tags), "--rate-hz", str(rate_hz), "--duration-s", str(duration_s),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert fake.stdout is not None
    watch = AlarmWatch(broker.port)
    try:
        await _read_json(fake.stdout, "serving", 30.0)
        async with Reader(link) as reader:
            setup = DaemonSetup(broker.port, reader_link=link, bus_address=bus.address)
            daemon = Daemon(workdir, name, setup)
            async with running(daemon):
                # The fake starts its traffic once the daemon's scanner scans.
                await _read_json(fake.stdout, "ready", 30.0)
                # CPU over the first half of the traffic, adverts only; alarms in the second.
                cpu0 = proc_cpu_s(daemon.pid)
                await asyncio.sleep(duration_s / 2)
                phase.cpu_s = proc_cpu_s(daemon.pid) - cpu0
                half = await daemon.metrics()
                phase.cpu_adverts = int(half.get("tagrelay_adverts_received_total", 0.0))
                sent: dict[str, float] = {}
                # Alarms while the traffic lasts (most of its second half).
                await send_alarms(reader, sent, duration_s * ALARM_SHARE_OF_HALF)
                summary = await _read_json(fake.stdout, "offered", duration_s + 60.0)
                phase.offered = int(summary["offered"])
                phase.offered_per_s = float(summary["offered_per_s"])
                # Drained: every offered advert counted, or nothing new for a second.
                last, quiet_since = -1.0, time.monotonic()
                while True:
                    m = await daemon.metrics()
                    got = m.get("tagrelay_adverts_received_total", 0.0)
                    if got >= phase.offered or time.monotonic() - quiet_since > 1.0:
                        break
                    if got != last:
                        last, quiet_since = got, time.monotonic()
                    await asyncio.sleep(POLL_S)
                # Counted from the daemon's start: the fake sends nothing before "ready".
                phase.received = int(got)
                phase.queue_dropped = int(m.get("tagrelay_driver_queue_dropped_total", 0.0))
                await reader.all_acked()
                await asyncio.to_thread(watch.wait_count, len(sent), 30.0)
                phase.alarms_sent = len(sent)
                phase.alarm_latencies_s = [watch.received[k] - t for k, t in sent.items()]
    finally:
        watch.close()
        if fake.returncode is None:
            fake.terminate()
            try:
                async with asyncio.timeout(5.0):
                    await fake.wait()
            except TimeoutError:
                fake.kill()
                await fake.wait()
    return phase


# -- backlog ----------------------------------------------------------------------------------


async def build_backlog(path: Path, n: int) -> None:
    config = OutboxConfig(max_bytes=BACKLOG_MAX_BYTES, group_commit_max_events=FILL_CHUNK_EVENTS)
    async with Outbox(path, config, SystemClock()) as outbox:
        for start in range(0, n, FILL_CHUNK_EVENTS):
            chunk = []
            for i in range(start, min(start + FILL_CHUNK_EVENTS, n)):
                event_id, payload = telemetry_payload(i)
                chunk.append(
                    OutboxEvent(event_id, EventClass.TELEMETRY, "telemetry.reading", payload,
                                source="0011223344556677")
                )  # fmt: skip
            result = await outbox.accept(chunk)
            if any(s is not AcceptStatus.ACCEPTED for s in result.statuses):
                raise SystemExit("the backlog was not accepted whole")


async def backlog_drain(workdir: Path, sizes: Sizes) -> dict[str, float]:
    name = "backlog"
    link = workdir / name / "reader"
    port = free_port()
    broker = Broker(workdir, port)
    daemon = Daemon(workdir, name, DaemonSetup(port, reader_link=link, max_bytes=BACKLOG_MAX_BYTES))
    t0 = time.perf_counter()
    await build_backlog(daemon.state_dir / "outbox.db", sizes.backlog)
    fill_s = time.perf_counter() - t0
    frames = environment_frames(sizes.labels * sizes.backlog_frames_per_label, sizes.labels)
    try:
        async with Reader(link) as reader, running(daemon, connected=False):
            t0 = time.perf_counter()
            await reader.send(frames)
            await reader.all_acked()
            outage_frames_s = time.perf_counter() - t0
            m = await daemon.metrics()
            committed = m.get("tagrelay_events_total", 0.0)
            depth = m.get("tagrelay_outbox_events", 0.0)
            rss_full, _ = proc_rss_mib(daemon.pid)
            broker.start()
            start = time.perf_counter()
            async with asyncio.timeout(PHASE_TIMEOUT_S):
                while True:
                    m = await daemon.metrics()
                    if m.get("tagrelay_outbox_events", 1.0) == 0.0:
                        break
                    await asyncio.sleep(POLL_S)
            drain_s = time.perf_counter() - start
            _, peak = proc_rss_mib(daemon.pid)
            acked = m.get("tagrelay_mqtt_events_acked_total", 0.0)
    finally:
        broker.stop()
    return {
        "backlog_fill_s": round(fill_s, 1),
        "backlog_events_at_reconnect": int(depth),
        "backlog_label_events_during_outage": int(committed),
        "backlog_label_frames_s": round(outage_frames_s, 1),
        "backlog_rss_before_drain_mib": round(rss_full, 1),
        "backlog_drain_s": round(drain_s, 1),
        "backlog_drain_events_per_s": round(acked / drain_s),
        "backlog_events_acked": int(acked),
        "peak_rss_mib": round(peak, 1),
    }


# -- main -------------------------------------------------------------------------------------


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else 0.0


def check(value: float, target: str, ok: bool) -> dict[str, object]:
    return {"value": value, "target": target, "ok": ok}


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"


async def main(sizes: Sizes) -> dict[str, Any]:
    figures: dict[str, Any] = {"machine_at_start": machine()}
    checks: dict[str, dict[str, object]] = {}
    print(f"machine: {figures['machine_at_start']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tagrelay-e2e-") as tmp:
        workdir = Path(tmp)
        broker = Broker(workdir, free_port())
        broker.start()
        try:
            frames = environment_frames(sizes.labels + sizes.frames, sizes.labels)
            stream = b"".join(build(m) for m in frames[sizes.labels :])
            runs: dict[str, list[Run]] = {"baseline": [], "single": [], "batched": []}
            for r in range(sizes.rounds):
                runs["baseline"].append(
                    await asyncio.to_thread(baseline, broker.port, stream, workdir / f"base{r}.db")
                )
                for mode in ("single", "batched"):
                    runs[mode].append(
                        await serial_throughput(
                            workdir,
                            broker,
                            frames,
                            sizes.labels,
                            batching=mode == "batched",
                            name=f"{mode}{r}",
                        )
                    )
                print(
                    f"round {r + 1}/{sizes.rounds}: "
                    + ", ".join(
                        f"{k} {v[-1].sustained_per_s:,.0f} events/s sustained "
                        f"({v[-1].overall_per_s:,.0f} overall) {v[-1].cpu_us_per_event:,.0f} us "
                        "CPU/event"
                        for k, v in runs.items()
                    ),
                    flush=True,
                )
            best = {k: max(v, key=lambda run: run.sustained_per_s) for k, v in runs.items()}
            base_rate = best["baseline"].sustained_per_s
            for key, label in (("baseline", "baseline"), ("single", "per_event"),
                               ("batched", "batched")):  # fmt: skip
                run = best[key]
                rate = run.sustained_per_s
                figures[f"serial_{label}_events_per_s"] = round(rate)
                figures[f"serial_{label}_events_per_s_rounds"] = [
                    round(x.sustained_per_s) for x in runs[key]
                ]
                figures[f"serial_{label}_overall_events_per_s"] = round(run.overall_per_s)
                figures[f"serial_{label}_cpu_us_per_event"] = round(run.cpu_us_per_event, 1)
                figures[f"serial_{label}_events"] = run.events
                print(
                    f"serial {label:9}: {rate:9,.0f} events/s sustained "
                    f"({rate / base_rate:.2f} x baseline; first frame -> last PUBACK "
                    f"{run.overall_per_s:,.0f}/s), {run.cpu_us_per_event:,.0f} us CPU per event, "
                    f"{run.events} events",
                    flush=True,
                )
            per_event_ratio = best["single"].sustained_per_s / base_rate
            batched_ratio = best["batched"].sustained_per_s / base_rate
            checks["per_event_vs_baseline"] = check(
                round(per_event_ratio, 3), f">= {TARGET_PER_EVENT_RATIO} x the baseline",
                per_event_ratio >= TARGET_PER_EVENT_RATIO,
            )  # fmt: skip
            checks["batched_vs_baseline"] = check(
                round(batched_ratio, 3), f">= {TARGET_BATCHED_RATIO:g} x the per-event baseline",
                batched_ratio >= TARGET_BATCHED_RATIO,
            )  # fmt: skip

            with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as busdir:
                async with PrivateBus(Path(busdir)) as bus:
                    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
                    for tags, rate_hz in BLE_PHASES:
                        bare = BlePhase(tags, rate_hz, "baseline")
                        await _run_phase(bus, bare, sizes.ble_duration_s)
                        bare_per_1000 = bare.cpu_s / max(bare.delivered, 1) * 1000
                        d = await ble_daemon(
                            workdir, bus, broker, tags, rate_hz, sizes.ble_duration_s
                        )
                        d_per_1000 = d.cpu_s / max(d.cpu_adverts, 1) * 1000
                        rate = round(tags * rate_hz)
                        lat_p99 = p99(d.alarm_latencies_s) * 1000
                        lat_p50 = statistics.median(d.alarm_latencies_s) * 1000
                        figures.update(
                            {
                                f"ble_{rate}_offered_adverts_per_s": d.offered_per_s,
                                f"ble_{rate}_bare_bleak_adverts": bare.delivered,
                                f"ble_{rate}_bare_bleak_cpu_s_per_1000_adverts": round(
                                    bare_per_1000, 4
                                ),
                                f"ble_{rate}_daemon_offered_adverts": d.offered,
                                f"ble_{rate}_daemon_received_adverts": d.received,
                                f"ble_{rate}_daemon_lost_or_dropped_adverts": d.lost,
                                f"ble_{rate}_daemon_cpu_s_per_1000_adverts": round(d_per_1000, 4),
                                f"ble_{rate}_alarms": d.alarms_sent,
                                f"ble_{rate}_alarm_p50_ms": round(lat_p50, 2),
                                f"ble_{rate}_alarm_p99_ms": round(lat_p99, 2),
                            }
                        )
                        print(
                            f"BLE {rate} adverts/s: bare bleak {bare_per_1000:.3f} CPU s/1000 "
                            f"({bare.delivered} of {bare.offered}), daemon {d_per_1000:.3f} CPU "
                            f"s/1000 ({d.received} of {d.offered}, {d.queue_dropped} dropped) = "
                            f"{d_per_1000 / bare_per_1000:.2f} x; alarms frame->subscriber "
                            f"p50 {lat_p50:.1f} ms p99 {lat_p99:.1f} ms (n={d.alarms_sent})",
                            flush=True,
                        )
                        ratio = d_per_1000 / bare_per_1000
                        checks[f"ble_{rate}_cpu_vs_bare_bleak"] = check(
                            round(ratio, 2),
                            f"<= {TARGET_BLE_CPU_RATIO:g} x bare bleak",
                            ratio <= TARGET_BLE_CPU_RATIO,
                        )
                        checks[f"ble_{rate}_none_dropped"] = check(
                            d.lost, "0 adverts lost or dropped", d.lost == 0
                        )
                        checks[f"ble_{rate}_alarm_p99_ms"] = check(
                            round(lat_p99, 2),
                            f"< {TARGET_ALARM_P99_MS:g} ms (frame written -> subscriber receipt)",
                            lat_p99 < TARGET_ALARM_P99_MS,
                        )
        finally:
            broker.stop()

        backlog = await backlog_drain(workdir, sizes)
        figures.update(backlog)
        figures["backlog_events"] = sizes.backlog
        figures["tracked_tags"] = sizes.labels
        print(
            f"backlog of {sizes.backlog} events + {sizes.labels} labels heard during the outage: "
            f"drained in {backlog['backlog_drain_s']} s "
            f"({backlog['backlog_drain_events_per_s']:,} events/s), "
            f"peak RSS {backlog['peak_rss_mib']} MiB",
            flush=True,
        )
        checks["peak_rss_mib"] = check(
            backlog["peak_rss_mib"],
            f"<= {TARGET_PEAK_RSS_MIB:g} MiB with {sizes.labels} tracked tags and a "
            f"{sizes.backlog} event backlog",
            backlog["peak_rss_mib"] <= TARGET_PEAK_RSS_MIB,
        )
    figures["machine_at_end"] = machine()
    figures["checks"] = checks
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    result = asyncio.run(main(QUICK if args.quick else FULL))
    print(json.dumps(result))
