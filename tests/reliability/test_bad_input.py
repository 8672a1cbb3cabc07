"""Bad input from every side at once, against one running daemon: fuzzed bytes and damaged
frames on the reader's line, malformed adverts from the (fake) BlueZ, and hostile commands on
MQTT, while good label frames keep coming. Each bad input gets its error answer or counter, the
daemon keeps running, no good frame is lost, and its memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.bluez import FakeBlueZ, PrivateBus
from simulator.serial import PtyPort, SmartLabelReaderSim
from tests.fixtures.mosquitto import Broker, free_port
from tests.gateway.metrics.test_metrics_run import Scrape, scrape_until
from tests.reliability.conftest import Daemon, LabelStream, Recorder, write_config

GATEWAY = "gw-hostile"
LABELS = [0x5A4B400000000001 + i for i in range(10)]
RATE_FPS = 100
STORM_S = 15.0
#: Growth of the daemon's resident memory allowed from the start of the storm to its peak.
RSS_GROWTH_BOUND_KIB = 40 * 1024
APPLE, RUUVI = 0x004C, 0x0499


def hostile_commands() -> list[tuple[str, bytes, str]]:
    """(command topic suffix, payload, the error reason the answer must carry)."""
    deep = b'{"id": "deep", "x": ' + b"[" * 6000 + b"]" * 6000 + b"}"
    return [
        ("ping", b"{not json", "malformed_json"),
        ("ping", b'{"id": "nan", "x": NaN}', "malformed_json"),
        ("ping", b'{"id": "\xff\xfe"}', "malformed_json"),
        ("ping", deep, "malformed_json"),
        ("ping", b'{"id": "big", "pad": "' + b"x" * 20_000 + b'"}', "oversize"),
        ("ping", b"[1, 2, 3]", "not_an_object"),
        ("ping", b'{"id": "huge", "n": ' + b"9" * 5000 + b"}", "unsupported_json"),
        ("no/such/thing", b'{"id": "u-1"}', "unknown_command"),
        ("tags/bind", b'{"id": "wt-1", "tag": 5, "asset": []}', "invalid"),
        ("tags/bind", b'{"id": "wt-2"}', "invalid"),
        ("handoff/open", b'{"id": "wt-3", "session_id": {"a": 1}}', "invalid"),
        ("profiles/assign", b'{"id": "wt-4", "profile": "none-such", "subjects": 7}', "invalid"),
    ]


def answer_after(rec: Recorder, mark: int) -> dict[str, Any]:
    prefix = f"tagrelay/v1/{GATEWAY}/result/"
    rec.wait(lambda: any(s.topic.startswith(prefix) for s in rec.since(mark)), 30.0)
    seen = next(s for s in rec.since(mark) if s.topic.startswith(prefix))
    value: dict[str, Any] = json.loads(seen.payload)
    return value


def command_storm(rec: Recorder) -> dict[str, Any]:
    """Every hostile case one after the other, a replayed id, then a flood; returns figures."""
    base = f"tagrelay/v1/{GATEWAY}/cmd"
    for name, payload, reason in hostile_commands():
        mark = rec.mark()
        rec.publish(f"{base}/{name}", payload)
        body = answer_after(rec, mark)
        assert body["ok"] is False, (name, body)
        assert body["error"]["reason"] == reason, (name, payload[:40], body)
    # The same id twice: the second is answered from the first (not run again), even with
    # other content under it.
    bind = {"id": "replay-1", "tag": "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:1"}
    first = rec.command(
        GATEWAY, "tags.bind", {**bind, "asset": "https://id.gs1.org/00/340123450000000017"}
    )
    again = rec.command(
        GATEWAY, "tags.bind", {**bind, "asset": "https://id.gs1.org/00/340123450000000024"}
    )
    assert first["ok"] is True, first
    assert again == first
    # A flood: 500 pings without waiting for the broker between them.
    mark = rec.mark()
    infos = [
        rec.client.publish(f"{base}/ping", json.dumps({"id": f"flood-{i}"}).encode(), qos=1)
        for i in range(500)
    ]
    for info in infos:
        info.wait_for_publish(30)
    alive = rec.command(GATEWAY, "ping", {"id": "after-flood"})
    assert alive["ok"] is True, alive
    flood = [
        json.loads(s.payload)
        for s in rec.since(mark)
        if s.topic == f"tagrelay/v1/{GATEWAY}/result/ping"
    ]
    answered = [a for a in flood if str(a.get("id", "")).startswith("flood-")]
    assert all(a["ok"] for a in answered), [a for a in answered if not a["ok"]][:3]
    return {"flood_answered": len(answered)}


async def advert_storm(bluez: FakeBlueZ, stop: asyncio.Event, rng: random.Random) -> int:
    """Malformed manufacturer data from ever new addresses (a decoder remembers a broken
    device), truncated and overlong iBeacon and Ruuvi payloads and random company data."""
    n = 0
    while not stop.is_set():
        address = f"C0:FF:EE:{n >> 16 & 0xFF:02X}:{n >> 8 & 0xFF:02X}:{n & 0xFF:02X}"
        kind = n % 4
        if kind == 0:
            data = {APPLE: b"\x02\x15" + rng.randbytes(rng.randrange(0, 20))}
        elif kind == 1:
            data = {APPLE: b"\x02\x15" + rng.randbytes(rng.randrange(22, 60))}
        elif kind == 2:
            data = {RUUVI: bytes([5]) + rng.randbytes(rng.randrange(0, 40))}
        else:
            data = {rng.randrange(0, 0xFFFF): rng.randbytes(rng.randrange(0, 27))}
        await bluez.upsert_device(address, rssi=-60, manufacturer_data=data)
        n += 1
        await asyncio.sleep(0.01)
    return n


async def line_noise(
    port: PtyPort, reader: SmartLabelReaderSim, stop: asyncio.Event, rng: random.Random
) -> int:
    """Random bytes straight onto the line (zeros included: fake frame ends), garbage, dropped
    bytes, bad CRCs and frames split in pieces, in turn, a few times a second."""
    n = 0
    while not stop.is_set():
        match n % 5:
            case 0:
                port.write(os.urandom(rng.randrange(1, 300)))
            case 1:
                reader.inject_garbage(rng.randrange(1, 100))
            case 2:
                reader.drop_next_bytes(rng.randrange(1, 30))
            case 3:
                reader.corrupt_next_crc()
            case _:
                reader.split_writes(rng.choice([None, 1, 3, 7]), gap_s=0.001)
        n += 1
        await asyncio.sleep(0.05)
    reader.split_writes(None)
    return n


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_bad_input_from_every_side_at_once(
    mosquitto: Broker,
    recorder: Recorder,
    bluez: FakeBlueZ,
    private_bus: PrivateBus,
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: 10 labels at 100 good frames/s through the reader pty for a 15 s storm of
    line noise (every 50 ms one of: up to 300 random bytes, garbage, dropped bytes, a bad CRC,
    split writes), malformed adverts from new addresses every 10 ms on the fake BlueZ, and the
    hostile commands (malformed JSON, NaN, bad UTF-8, 6,000-deep nesting, 20 kB, not an object,
    a 5,000-digit number, unknown command, wrong types, a replayed id, 500 pings at once);
    RSS sampled every 0.5 s, peak allowed 40 MiB over the storm's start. About 30-45 s.

    Every hostile command gets its error answer, the replayed id its first answer; the metrics
    count the serial and BLE decode errors; every good frame the reader saw ACKed is delivered;
    the daemon runs throughout and stops cleanly."""
    seed = random.randrange(1 << 30)
    print(f"bad-input seed {seed}")
    rng = random.Random(seed)
    metrics_port = free_port()
    config = write_config(
        tmp_path / "gw.toml",
        GATEWAY,
        mosquitto,
        f'[ble]\ndbus_system_bus_address = "{private_bus.address}"\n'
        '[[ble.scanners]]\nadapter = "hci0"\nzone = "door-1"\n'
        f'[[smartlabel_readers]]\npath = "{tmp_path / "reader"}"\n'
        f"[metrics]\nenabled = true\nport = {metrics_port}\n",
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    daemon = daemons(config)
    rss: list[int] = []
    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=1.0) as reader,
    ):
        mark = recorder.mark()
        daemon.start()
        await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
        await bluez.wait_until(lambda: bluez.scanning("hci0"), timeout_s=30)
        stream = LabelStream(reader, GATEWAY, LABELS, RATE_FPS, buffer=5_000)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(stream.run(stop)),
            asyncio.create_task(advert_storm(bluez, stop, rng)),
            asyncio.create_task(line_noise(port, reader, stop, rng)),
        ]

        async def sample() -> None:
            while not stop.is_set():
                rss.append(daemon.rss_kib())
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        try:
            figures = await asyncio.to_thread(command_storm, recorder)
            await asyncio.sleep(max(0.0, STORM_S - (time.monotonic() - started)))
        finally:
            stop.set()
            results = await asyncio.gather(*tasks, sampler)
        adverts, noise = results[1], results[2]
        assert daemon.alive(), daemon.text()
        async with asyncio.timeout(60):
            await reader.wait_for(lambda: reader.unacked == 0)
        every = stream.event_ids(set(reader.acked))
        await asyncio.to_thread(recorder.wait, lambda: every <= recorder.event_ids())
        scrape: Scrape = await scrape_until(
            url, lambda s: s.total("tagrelay_decode_errors_total") > 0, daemon.proc
        )
        assert daemon.terminate() == 0

    errors = scrape.samples["tagrelay_decode_errors_total"]
    serial = sum(v for labels, v in errors if labels["source"].startswith("smartlabel:"))
    ble = sum(v for labels, v in errors if labels["source"] == "ble")
    peak_growth = max(rss) - rss[0]
    print(
        f"{stream.sent} good frames, {noise} line faults, {adverts} malformed adverts, "
        f"{figures['flood_answered']}/500 flood pings answered; decode errors serial {serial}, "
        f"ble {ble}; RSS {rss[0]} KiB at the start, peak +{peak_growth} KiB"
    )
    assert serial > 0
    assert ble > 0
    assert scrape.get("tagrelay_events_dropped_total") == 0
    assert reader.dropped == set()
    assert len(reader.acked) == stream.sent
    assert every <= recorder.event_ids()
    assert peak_growth <= RSS_GROWTH_BOUND_KIB
    assert "Traceback" not in daemon.text()
