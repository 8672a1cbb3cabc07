"""Outbox throughput, disk writes per event, and memory with a large backlog.

All on real SQLite files in a temporary directory on the same disk, with the same ~300-byte
JSON events, each figure next to a baseline measured in the same run:

1. durable accept rate: the outbox (WAL, synchronous=FULL, group commit, 32 producers handing
   in 10 events each) vs raw sqlite3 ``executemany`` with one transaction per 100 rows, FULL;
2. lease + ack rate: the uplink's loop (lease 100, ack, batched deletes) vs raw SELECT 100 +
   DELETE in one transaction per batch; rates are the best of 3 rounds, baseline and outbox
   alternating (the baselines have no UNIQUE index: they are the floor of SQLite's cost);
3. bytes written to disk per event over its whole life (accept, lease, ack, checkpoint, close),
   from the kernel's per-process counter (/proc/self/io write_bytes), both after an outage
   (50k queued, then drained) and streaming (uplink keeping up); plus a naive design that
   commits every event on its own, for scale;
4. resident memory with a backlog of 100,000 and of 1,000,000 events (filled in large batches).

Run: ``.venv/bin/python bench/outbox.py [--events 50000] [--backlog 1000000]``.
The last line is one JSON object with the figures and the checks against the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from foundation.clock import SystemClock
from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxConfig, OutboxEvent

#: Producers handing events in concurrently (labels behind a reader, BLE, GPS ...).
PRODUCERS: Final = 32
#: Events per accept call (one serial frame or one pipeline step).
EVENTS_PER_ACCEPT: Final = 10
#: Rows per transaction in the raw baseline, as the outbox requirements define it.
BASELINE_BATCH_ROWS: Final = 100
LEASE_BATCH: Final = 100
#: Bulk fill for the memory test: large accepts keep the 1M fill to seconds.
FILL_BATCH: Final = 5000
#: Labels behind the events: dedup keys are label + sequence, as for SmartLabel frames.
LABELS: Final = 200
#: Flat means: RSS may not grow by more than this from 100k to 1M events of backlog.
RSS_GROWTH_LIMIT_MIB: Final = 32.0
BYTES_PER_EVENT_LIMIT: Final = 2048
RATIO_TARGET: Final = 0.5
NAIVE_EVENTS: Final = 2000
#: Rates are the best of this many alternating rounds: the machine may be shared.
ROUNDS: Final = 3

_CLASSES: Final = (
    [EventClass.TELEMETRY] * 6
    + [EventClass.PRESENCE] * 2
    + [EventClass.STATUS, EventClass.HANDOFF, EventClass.ALARM]
)


def make_event(n: int, tag: str) -> OutboxEvent:
    label = n % LABELS
    event_id = hashlib.blake2b(f"{tag}:{n}".encode(), digest_size=16).hexdigest()
    body = {
        "event_id": event_id,
        "kind": "telemetry.reading",
        "gateway_id": "truck-0042",
        "occurred_at": "2026-11-24T01:23:45.678Z",
        "time_source": "gps",
        "source": f"label:{label:016x}",
        "position": {"lat": 52.37403, "lon": 4.88969},
        "reading": {"temperature_c": 6.25, "humidity_pct": 71.5, "battery_mv": 2987},
        "seq": n // LABELS,
    }
    payload = json.dumps(body, separators=(",", ":")).encode()
    return OutboxEvent(
        event_id=event_id,
        event_class=_CLASSES[n % len(_CLASSES)],
        kind="telemetry.reading",
        payload=payload,
        dedup_key=f"label:{label:016x}:seq:{tag}:{n // LABELS}",
        source=f"label:{label:016x}",
    )


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _raw_connect(path: Path, *, unique_keys: bool = False) -> sqlite3.Connection:
    """A plain table; the naive design also de-duplicates exactly with a UNIQUE index (the
    baselines do not: they are the floor of what SQLite costs, not a design)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    unique = " UNIQUE" if unique_keys else ""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, "
        f"dedup_key TEXT NOT NULL{unique}, class INTEGER, kind TEXT, source TEXT, payload BLOB)"
    )
    return conn


def raw_accept(path: Path, events: list[OutboxEvent]) -> float:
    """Baseline: executemany, one transaction per 100 rows, FULL. Returns events/s."""
    conn = _raw_connect(path)
    rows = [(e.event_id, e.key, int(e.event_class), e.kind, e.source, e.payload) for e in events]
    start = time.perf_counter()
    for i in range(0, len(rows), BASELINE_BATCH_ROWS):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events (event_id, dedup_key, class, kind, source, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows[i : i + BASELINE_BATCH_ROWS],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def raw_lease_ack(path: Path) -> tuple[float, int]:
    """Baseline: SELECT 100 oldest + DELETE them, one transaction per batch. Returns rate, n."""
    conn = _raw_connect(path)
    done = 0
    start = time.perf_counter()
    while True:
        rows = conn.execute(
            "SELECT id, event_id, payload FROM events ORDER BY id LIMIT ?", (LEASE_BATCH,)
        ).fetchall()
        if not rows:
            break
        conn.execute("BEGIN")
        conn.executemany("DELETE FROM events WHERE id = ?", [(r[0],) for r in rows])
        conn.execute("COMMIT")
        done += len(rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return done / elapsed, done


def naive_bytes_per_event(path: Path, events: list[OutboxEvent]) -> float:
    """A per-event-commit design (insert, commit; delete, commit), for scale."""
    conn = _raw_connect(path, unique_keys=True)
    before = write_bytes()
    for e in events:
        conn.execute(
            "INSERT INTO events (event_id, dedup_key, class, kind, source, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (e.event_id, e.key, int(e.event_class), e.kind, e.source, e.payload),
        )
    for (row_id,) in conn.execute("SELECT id FROM events").fetchall():
        conn.execute("DELETE FROM events WHERE id = ?", (row_id,))
    conn.close()
    return (write_bytes() - before) / len(events)


async def outbox_accept(outbox: Outbox, events: list[OutboxEvent]) -> float:
    """The outbox with concurrent producers. Returns events/s."""
    chunks = [events[i : i + EVENTS_PER_ACCEPT] for i in range(0, len(events), EVENTS_PER_ACCEPT)]
    queue: Iterator[list[OutboxEvent]] = iter(chunks)
    accepted = 0

    async def producer() -> None:
        nonlocal accepted
        for chunk in queue:
            result = await outbox.accept(chunk)
            accepted += result.statuses.count(AcceptStatus.ACCEPTED)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(PRODUCERS):
            tg.create_task(producer())
    elapsed = time.perf_counter() - start
    if accepted != len(events):
        raise RuntimeError(f"accepted {accepted} of {len(events)}")
    return len(events) / elapsed


async def outbox_lease_ack(outbox: Outbox) -> tuple[float, int]:
    """The uplink's loop: lease 100, ack them. Returns rate, n."""
    done = 0
    start = time.perf_counter()
    while leased := await outbox.lease(LEASE_BATCH):
        await outbox.ack([e.row_id for e in leased])
        done += len(leased)
    await outbox.flush()
    elapsed = time.perf_counter() - start
    return done / elapsed, done


async def streaming(path: Path, events: list[OutboxEvent]) -> tuple[float, float]:
    """Normal operation: producers and the uplink at once, the backlog stays small.
    Returns (events/s through the store, bytes written per event including close)."""
    before = write_bytes()
    delivered = 0
    async with Outbox(path, OutboxConfig(), SystemClock()) as outbox:

        async def uplink() -> None:
            nonlocal delivered
            while delivered < len(events):
                await outbox.wait_available()
                leased = await outbox.lease(LEASE_BATCH)
                await outbox.ack([e.row_id for e in leased])
                delivered += len(leased)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(uplink())
            tg.create_task(outbox_accept(outbox, events))
        await outbox.flush()
        elapsed = time.perf_counter() - start
    return len(events) / elapsed, (write_bytes() - before) / len(events)


async def backlog_memory(path: Path, backlog: int) -> dict[str, float]:
    config = OutboxConfig(max_bytes=4 << 30, group_commit_max_events=FILL_BATCH)
    figures: dict[str, float] = {}
    n = 0
    start = time.perf_counter()
    async with Outbox(path, config, SystemClock()) as outbox:
        for target in (backlog // 10, backlog):
            while n < target:
                batch = [make_event(i, "fill") for i in range(n, min(n + FILL_BATCH, target))]
                await outbox.accept(batch)
                n += len(batch)
            rss, _ = rss_mib()
            figures[f"rss_at_{target // 1000}k_mib"] = round(rss, 1)
        figures["fill_events_per_s"] = round(backlog / (time.perf_counter() - start))
        t0 = time.perf_counter()
        leased = await outbox.lease(LEASE_BATCH)
        figures["lease_100_at_full_backlog_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        await outbox.release([e.row_id for e in leased])
        stats = await outbox.stats()
        figures["backlog_events"] = stats.depth
    figures["file_mib"] = round(os.path.getsize(path) / 2**20, 1)  # noqa: ASYNC240
    t0 = time.perf_counter()
    async with Outbox(path, config, SystemClock()) as outbox:
        figures["reopen_with_backlog_s"] = round(time.perf_counter() - t0, 2)
        await outbox.lease(LEASE_BATCH)
    figures["peak_rss_mib"] = round(rss_mib()[1], 1)
    return figures


def check(value: float, target: str, ok: bool) -> dict[str, object]:
    return {"value": value, "target": target, "ok": ok}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    args = parser.parse_args()
    events = [make_event(i, "bench") for i in range(args.events)]
    size = sum(len(e.payload) for e in events) / len(events)
    print(f"events: {args.events} of {size:.0f} bytes of JSON on average")

    with tempfile.TemporaryDirectory(prefix="outbox-bench-", dir=Path.cwd()) as tmp:
        work = Path(tmp)
        rates: dict[str, list[float]] = {"raw": [], "raw_lease": [], "accept": [], "lease": []}
        per_events: list[float] = []
        for r in range(ROUNDS):
            # Baseline and outbox alternate, so that a change in machine load hits both.
            rates["raw"].append(raw_accept(work / f"raw{r}.db", events))
            rates["raw_lease"].append(raw_lease_ack(work / f"raw{r}.db")[0])
            before = write_bytes()
            async with Outbox(work / f"outbox{r}.db", OutboxConfig(), SystemClock()) as outbox:
                rates["accept"].append(await outbox_accept(outbox, events))
                lease_rate, delivered = await outbox_lease_ack(outbox)
                rates["lease"].append(lease_rate)
                commits = (await outbox.stats()).commits
            per_events.append((write_bytes() - before) / args.events)
            if delivered != args.events:
                raise RuntimeError(f"delivered {delivered} of {args.events}")
            print(
                f"round {r + 1}: raw accept {rates['raw'][-1]:.0f}, outbox accept "
                f"{rates['accept'][-1]:.0f}, raw select+delete {rates['raw_lease'][-1]:.0f}, "
                f"outbox lease+ack {lease_rate:.0f} events/s, {per_events[-1]:.0f} B/event"
            )
        raw_rate, raw_lease = max(rates["raw"]), max(rates["raw_lease"])
        accept_rate, lease_rate = max(rates["accept"]), max(rates["lease"])
        per_event = max(per_events)
        print(f"best of {ROUNDS} rounds (rates), worst (bytes):")
        print(f"raw sqlite3 accept (executemany, 100 rows/txn, FULL): {raw_rate:10.0f} events/s")
        print(f"raw sqlite3 select+delete (100 rows/txn, FULL):       {raw_lease:10.0f} events/s")
        print(
            f"outbox accept (group commit, FULL):                    {accept_rate:10.0f} events/s"
        )
        print(f"outbox lease+ack (batched deletes, FULL):              {lease_rate:10.0f} events/s")
        print(f"outbox transactions for {args.events} events in and out: {commits}")
        print(f"outbox bytes written per event, whole life:            {per_event:10.0f} B")
        stream_rate, stream_bytes = await streaming(work / "stream.db", events)
        print(f"streaming (uplink keeping up) events/s:                {stream_rate:10.0f}")
        print(f"streaming bytes written per event, whole life:         {stream_bytes:10.0f} B")
        naive = naive_bytes_per_event(work / "naive.db", events[:NAIVE_EVENTS])
        print(f"naive per-event commits, bytes written per event:      {naive:10.0f} B")

        memory = await backlog_memory(work / "backlog.db", args.backlog)
        for key, value in memory.items():
            print(f"backlog {key}: {value}")

    small, large = args.backlog // 10 // 1000, args.backlog // 1000
    growth = memory[f"rss_at_{large}k_mib"] - memory[f"rss_at_{small}k_mib"]
    accept_ratio = accept_rate / raw_rate
    lease_ratio = lease_rate / raw_lease
    figures: dict[str, object] = {
        "event_payload_bytes": round(size),
        "accept_events_per_s": round(accept_rate),
        "baseline_accept_events_per_s": round(raw_rate),
        "lease_ack_events_per_s": round(lease_rate),
        "baseline_lease_ack_events_per_s": round(raw_lease),
        "bytes_written_per_event": round(per_event),
        "streaming_events_per_s": round(stream_rate),
        "streaming_bytes_written_per_event": round(stream_bytes),
        "naive_bytes_written_per_event": round(naive),
        "transactions": commits,
        **memory,
        "rss_growth_mib": round(growth, 1),
        "checks": {
            "accept_vs_baseline": check(
                round(accept_ratio, 2), f">= {RATIO_TARGET} x", accept_ratio >= RATIO_TARGET
            ),
            "lease_ack_vs_baseline": check(
                round(lease_ratio, 2), f">= {RATIO_TARGET} x", lease_ratio >= RATIO_TARGET
            ),
            "bytes_written_per_event": check(
                round(max(per_event, stream_bytes)),
                f"<= {BYTES_PER_EVENT_LIMIT} B (worse of outage-then-drain and streaming)",
                max(per_event, stream_bytes) <= BYTES_PER_EVENT_LIMIT,
            ),
            "rss_flat_with_backlog": check(
                round(growth, 1),
                f"<= {RSS_GROWTH_LIMIT_MIB} MiB growth from {small}k to {large}k events",
                growth <= RSS_GROWTH_LIMIT_MIB,
            ),
        },
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
