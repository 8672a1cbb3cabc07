"""Uplink benchmark: outbox drain rate against a raw paho loop, batching, bytes per event on the
wire, and alarm latency while a telemetry backlog drains.

Starts its own mosquitto on a free 127.0.0.1 port (stopped by pid at the end). Bytes on the wire
are the broker's own ``$SYS/broker/bytes/received`` counter (MQTT packets as received, headers
and properties included). Prints the figures, then one JSON line with them and the checks.

    .venv/bin/python bench/uplink.py [--events 200000] [--backlog 100000] [--rounds 3]

The one-event-per-message rate and its raw paho baseline are each the best of ``--rounds``
alternating rounds (raw, uplink, raw, uplink, ...): on a shared machine a neighbour's load
hits whichever run it overlaps, and the best round is the least disturbed one of each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foundation.clock import SystemClock
from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxConfig, OutboxEvent
from gateway.uplink import (
    BatchingConfig,
    PubAckReport,
    StatusInfo,
    Uplink,
    UplinkConfig,
)

#: The in-flight window for both our uplink and the raw paho baseline (the config default).
WINDOW: Final = 50
#: Events handed to the outbox per accept call while pre-filling (one group commit each).
FILL_CHUNK_EVENTS: Final = 5000
#: One alarm every this many seconds during the latency run.
ALARM_INTERVAL_S: Final = 0.02
#: How often mosquitto publishes $SYS counters (its minimum is 1 s).
SYS_INTERVAL_S: Final = 1
GATEWAY_ID: Final = "bench-gw"
#: Alternating (raw paho, uplink) rounds of the single-message drain; the best of each counts.
DEFAULT_ROUNDS: Final = 3
#: A phase that has not finished by then is reported as a failure instead of hanging.
PHASE_TIMEOUT_S: Final = 900.0
T0: Final = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def telemetry_payload(n: int) -> tuple[str, bytes]:
    """A realistic telemetry.reading event (~330 bytes of JSON)."""
    event_id = hashlib.sha256(f"label:0011223344556677:seq:{n}".encode()).hexdigest()[:32]
    body = {
        "event_id": event_id,
        "kind": "telemetry.reading",
        "gateway_id": "truck-0042",
        "time": (T0 + timedelta(seconds=30 * n)).isoformat().replace("+00:00", "Z"),
        "time_source": "gps",
        "source": {"type": "smartlabel", "id": "0011223344556677"},
        "position": {"lat": round(48.1372 + n * 1e-5, 6), "lon": round(11.5756 + n * 2e-5, 6)},
        "reading": {
            "temperature_c": round(4.0 + (n % 37) / 10, 2),
            "humidity_pct": round(55 + (n % 23) / 2, 1),
            "battery_v": round(3.0 - (n % 11) / 100, 2),
        },
        "seq": n,
    }
    return event_id, json.dumps(body, separators=(",", ":")).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if binary is None:
            raise SystemExit("mosquitto is not installed")
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"sys_interval {SYS_INTERVAL_S}\nmax_inflight_messages 0\nmax_queued_messages 0\n"
            "log_dest none\n"
        )
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class SysBytes:
    """Follows the broker's received-bytes counter through $SYS."""

    def __init__(self, port: int) -> None:
        self.value = 0
        self.updates = 0
        self._cond = threading.Condition()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("$SYS/broker/bytes/received")
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.value = int(msg.payload)
            self.updates += 1
            self._cond.notify_all()

    def fresh(self) -> int:
        """The counter after the next two updates (so it covers everything sent before)."""
        with self._cond:
            target = self.updates + 2
            self._cond.wait_for(lambda: self.updates >= target, timeout=10)
            return self.value

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def raw_paho_rate(port: int, payloads: list[bytes]) -> float:
    """A raw paho client (its own network thread), QoS 1, the same payloads, and the same
    window: at most WINDOW publishes unacknowledged (paho's own queue handling is O(n) per
    PUBACK, so handing it 200k messages at once would measure that instead)."""
    done = threading.Event()
    window = threading.Semaphore(WINDOW)
    acked = 0
    n = len(payloads)

    def on_publish(client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked >= n:
            done.set()

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="raw-paho",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(WINDOW)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    topic = f"tagrelay/v1/{GATEWAY_ID}/events/telemetry/reading"
    start = time.perf_counter()
    for payload in payloads:
        window.acquire()
        client.publish(topic, payload, qos=1)
    finished = done.wait(timeout=PHASE_TIMEOUT_S)
    elapsed = time.perf_counter() - start
    if not finished:
        raise SystemExit(f"raw paho: only {acked} of {n} acknowledged after {elapsed:.0f} s")
    client.loop_stop()
    client.disconnect()
    return n / elapsed


async def fill(outbox: Outbox, first: int, n: int) -> None:
    for start in range(first, first + n, FILL_CHUNK_EVENTS):
        chunk = []
        for i in range(start, min(start + FILL_CHUNK_EVENTS, first + n)):
            event_id, payload = telemetry_payload(i)
            chunk.append(
                OutboxEvent(
                    event_id, EventClass.TELEMETRY, "telemetry.reading", payload, source="0011"
                )
            )
        result = await outbox.accept(chunk)
        refused = sum(status is not AcceptStatus.ACCEPTED for status in result.statuses)
        if refused:
            raise SystemExit(f"the outbox did not accept {refused} of {len(chunk)} events")


def bench_uplink(
    port: int, batching: BatchingConfig, outbox: Outbox, on_delivery: Callable[[PubAckReport], None]
) -> Uplink:
    """The uplink under test: plain TCP to the local broker, the shared window."""
    config = UplinkConfig(
        host="127.0.0.1", port=port, transport="tcp", in_flight_window=WINDOW, batching=batching
    )
    return Uplink(
        config,
        GATEWAY_ID,
        outbox,
        SystemClock(),
        status=StatusInfo("bench", "bench"),
        on_delivery=on_delivery,
    )


async def drain(
    workdir: Path, name: str, port: int, n: int, batching: BatchingConfig, sysbytes: SysBytes
) -> tuple[float, float]:
    """Events/s from a pre-filled outbox to acked + deleted, and wire bytes per event."""
    async with Outbox(workdir / f"{name}.db", OutboxConfig(), SystemClock()) as outbox:
        await fill(outbox, 0, n)
        acked = 0
        all_acked = asyncio.Event()

        def on_delivery(d: PubAckReport) -> None:
            nonlocal acked
            acked += len(d.event_ids)
            if acked >= n:
                all_acked.set()

        before = await asyncio.to_thread(sysbytes.fresh)
        start = time.perf_counter()
        async with bench_uplink(port, batching, outbox, on_delivery):
            try:
                async with asyncio.timeout(PHASE_TIMEOUT_S):
                    await all_acked.wait()
            except TimeoutError:
                raise SystemExit(f"{name}: only {acked} of {n} acknowledged") from None
            await outbox.flush()
            elapsed = time.perf_counter() - start
        depth = (await outbox.stats()).depth
        assert depth == 0, f"{depth} events left in the outbox"
        after = await asyncio.to_thread(sysbytes.fresh)
    return n / elapsed, (after - before) / n


async def alarm_latency(
    workdir: Path, name: str, port: int, backlog: int, batching: BatchingConfig
) -> tuple[list[float], list[float], list[float], float]:
    """Accept -> PUBACK of alarms accepted while a telemetry backlog drains, and the part of
    it spent in the outbox's durable commit (seconds)."""
    async with Outbox(workdir / f"{name}.db", OutboxConfig(), SystemClock()) as outbox:
        await fill(outbox, 0, backlog)
        accepted_at: dict[str, float] = {}
        latencies: list[float] = []
        commits: list[float] = []
        committed_at: dict[str, float] = {}
        after_commit: list[float] = []
        telemetry_acked = 0
        drained = asyncio.Event()

        def on_delivery(d: PubAckReport) -> None:
            nonlocal telemetry_acked
            now = time.perf_counter()
            if d.event_class is EventClass.ALARM:
                for event_id in d.event_ids:
                    latencies.append(now - accepted_at[event_id])
                    after_commit.append(now - committed_at[event_id])
            else:
                telemetry_acked += len(d.event_ids)
                if telemetry_acked >= backlog:
                    drained.set()

        start = time.perf_counter()
        async with bench_uplink(port, batching, outbox, on_delivery):
            i = 0
            deadline = time.perf_counter() + PHASE_TIMEOUT_S
            while not drained.is_set():
                if time.perf_counter() > deadline:
                    raise SystemExit(f"{name}: {telemetry_acked} of {backlog} acknowledged")
                event_id = f"alarm-{i}"
                accepted_at[event_id] = time.perf_counter()
                payload = json.dumps({"event_id": event_id, "kind": "condition.shock"}).encode()
                await outbox.accept(
                    [OutboxEvent(event_id, EventClass.ALARM, "condition.shock", payload)]
                )
                committed_at[event_id] = time.perf_counter()
                commits.append(committed_at[event_id] - accepted_at[event_id])
                i += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ALARM_INTERVAL_S):
                        await drained.wait()
            drain_s = time.perf_counter() - start
        # Leaving the uplink waited for the in-flight window, alarms included.
        return latencies, commits, after_commit, drain_s


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else 0.0


async def main(events: int, backlog: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tagrelay-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)
        sysbytes = SysBytes(broker.port)
        try:
            payloads = [telemetry_payload(i)[1] for i in range(events)]
            json_bytes = statistics.mean(len(p) for p in payloads)
            print(f"events {events}, mean event JSON {json_bytes:.0f} B, window {WINDOW}")
            raws: list[float] = []
            singles: list[float] = []
            single_bpe = 0.0
            for r in range(rounds):
                raws.append(await asyncio.to_thread(raw_paho_rate, broker.port, payloads))
                rate, single_bpe = await drain(
                    workdir, f"single-{r}", broker.port, events, BatchingConfig(enabled=False),
                    sysbytes,
                )  # fmt: skip
                singles.append(rate)
                print(
                    f"round {r + 1}/{rounds}: raw paho {raws[-1]:8.0f} events/s, "
                    f"uplink {singles[-1]:8.0f} events/s ({singles[-1] / raws[-1]:.2f} x)"
                )
            raw, single = max(raws), max(singles)
            print(f"raw paho loop, one event per message:       {raw:10.0f} events/s (best)")
            print(
                f"uplink drain, one event per message:        {single:10.0f} events/s (best) "
                f"({single / raw:.2f} x raw), {single_bpe:.0f} B/event on the wire"
            )
            batched, batched_bpe = await drain(
                workdir, "batched", broker.port, events, BatchingConfig(), sysbytes
            )
            print(
                f"uplink drain, batched + zlib:               {batched:10.0f} events/s "
                f"({batched / raw:.2f} x raw), {batched_bpe:.1f} B/event on the wire"
            )
            plain_n = min(events, 50_000)
            _, plain_bpe = await drain(
                workdir,
                "plainbatch",
                broker.port,
                plain_n,
                BatchingConfig(compression="none"),
                sysbytes,
            )
            print(
                f"batched, no compression ({plain_n} events): {plain_bpe:.1f} B/event on the wire"
            )
            lat, commits, uplink_part, drain_s = await alarm_latency(
                workdir, "alarms-batched", broker.port, backlog, BatchingConfig()
            )
            lat_single, _, _, drain_single_s = await alarm_latency(
                workdir, "alarms-single", broker.port, backlog, BatchingConfig(enabled=False)
            )
        finally:
            sysbytes.close()
            broker.stop()
    p99_ms = p99(lat) * 1000
    p99_single_ms = p99(lat_single) * 1000
    p99_commit_ms = p99(commits) * 1000
    p99_uplink_ms = p99(uplink_part) * 1000
    print(
        f"alarm accept->PUBACK during a {backlog} telemetry drain (batched, {drain_s:.1f} s): "
        f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99_ms:.1f} ms, n={len(lat)}"
    )
    print(
        f"same, batching off ({drain_single_s:.1f} s): "
        f"p50 {statistics.median(lat_single) * 1000:.1f} ms, p99 {p99_single_ms:.1f} ms, "
        f"n={len(lat_single)}"
    )
    print(
        f"alarm p99 breakdown (batched): outbox commit {p99_commit_ms:.1f} ms, "
        f"commit->PUBACK {p99_uplink_ms:.1f} ms"
    )
    return {
        "events": events,
        "event_json_bytes": round(json_bytes, 1),
        "rounds": rounds,
        "raw_paho_events_per_s": round(raw),
        "drain_single_events_per_s": round(single),
        "raw_paho_events_per_s_rounds": [round(x) for x in raws],
        "drain_single_events_per_s_rounds": [round(x) for x in singles],
        "drain_batched_events_per_s": round(batched),
        "wire_bytes_per_event_single": round(single_bpe, 1),
        "wire_bytes_per_event_batched_zlib": round(batched_bpe, 1),
        "wire_bytes_per_event_batched_plain": round(plain_bpe, 1),
        "alarm_p99_ms_batched": round(p99_ms, 2),
        "alarm_p99_ms_single": round(p99_single_ms, 2),
        "alarm_commit_p99_ms": round(p99_commit_ms, 2),
        "alarm_commit_to_puback_p99_ms": round(p99_uplink_ms, 2),
        "alarm_count": len(lat),
        "checks": {
            "drain_vs_raw_paho": {
                "value": round(single / raw, 3),
                "target": ">= 0.7",
                "ok": single / raw >= 0.7,
            },
            "batched_vs_raw_paho": {
                "value": round(batched / raw, 3),
                "target": ">= 3",
                "ok": batched / raw >= 3,
            },
            "batched_wire_bytes_per_event": {
                "value": round(batched_bpe, 1),
                "target": "<= 60",
                "ok": batched_bpe <= 60,
            },
            "alarm_p99_ms": {"value": round(p99_ms, 2), "target": "< 50", "ok": p99_ms < 50},
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    args = parser.parse_args()
    result = asyncio.run(main(args.events, args.backlog, args.rounds))
    print(json.dumps(result))
