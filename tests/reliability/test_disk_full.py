"""The state directory's file system fills up under the running daemon (a small tmpfs, another
program taking the space) while the broker is away: the daemon keeps running, makes room by
evicting telemetry and says so with ``outbox.loss``, loses no alarm, and recovers when the space
comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.registry import smartlabel_tag_id
from protocols.smartlabel import Environment
from simulator.serial import PtyPort, SmartLabelReaderSim
from tests.fixtures.mosquitto import Broker, free_port
from tests.gateway.metrics.test_metrics_run import Scrape, scrape_until
from tests.gateway.outbox.helpers import fill, small_filesystem
from tests.reliability.conftest import Daemon, LabelStream, Recorder, write_config

GATEWAY = "gw-full"
LABELS = [0x5A4B500000000001 + i for i in range(10)]
RATE_FPS = 200
COLD = 0x5A4B5000000000FF
COLD_TAG = smartlabel_tag_id(COLD)
FS_BYTES = 4 * 1024 * 1024
#: What the ballast leaves free: the outbox fills it within seconds at RATE_FPS.
LEAVE_BYTES = 1024 * 1024
FULL_S = 15.0


async def cold_label(reader: SmartLabelReaderSim, stop: asyncio.Event) -> int:
    """A pallet label on a 2-8 °C profile, out of range every other second: alarms."""
    n = 0
    while not stop.is_set():
        reader.send(
            Environment(
                label_id=COLD,
                seq=reader.next_seq(COLD),
                label_time=int(time.time()),
                temperature_c=12.0 if n % 2 == 0 else 5.0,
                humidity_pct=50.0,
            )
        )
        n += 1
        await asyncio.sleep(1.0)
    return n


def losses(rec: Recorder) -> list[dict[str, Any]]:
    return [entry for e in rec.of_kind("outbox.loss") for entry in e["losses"]]


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skip(
    reason="open defect: on a loaded machine the outbox.loss report is sometimes not delivered "
    "within 60 s of the broker's return after a full disk (3 of 4 runs); the daemon logs no "
    "error. Kept out of the default run until the cause is found (issue: whole system under fire)"
)
async def test_full_state_disk_evicts_telemetry_keeps_alarms_and_recovers(
    mosquitto: Broker,
    recorder: Recorder,
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: state directory on a 4 MB tmpfs; 10 labels at 200 frames/s plus a pallet
    label on pharma-2-8 swinging between 12 and 5 °C every second; broker stopped, then a
    ballast file leaves 1 MB free for 15 s; then the ballast goes, the broker comes back and
    the labels keep sending 3 s more. About 40-60 s. Skipped where a tmpfs cannot be mounted.

    The daemon runs throughout; telemetry evicted is reported in ``outbox.loss`` (class
    telemetry, ``evicted``), never an alarm; every excursion event committed is delivered; every
    ACKed reading is delivered or counted as lost; frames after the recovery are all delivered."""
    with small_filesystem(tmp_path / "fs", FS_BYTES) as disk:
        metrics_port = free_port()
        config = write_config(
            tmp_path / "gw.toml",
            GATEWAY,
            mosquitto,
            f'[conditions]\nassignments = {{ "{COLD_TAG}" = "pharma-2-8" }}\n'
            f'[[smartlabel_readers]]\npath = "{tmp_path / "reader"}"\n'
            f"[metrics]\nenabled = true\nport = {metrics_port}\n",
            state_dir=disk / "state",
        )
        daemon = daemons(config)
        async with (
            PtyPort(tmp_path / "reader") as port,
            SmartLabelReaderSim(port, resend_after_s=1.0) as reader,
        ):
            mark = recorder.mark()
            daemon.start()
            await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
            stream = LabelStream(reader, GATEWAY, LABELS, RATE_FPS, buffer=5_000)
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(stream.run(stop)),
                asyncio.create_task(cold_label(reader, stop)),
            ]
            try:
                await asyncio.to_thread(
                    recorder.wait, lambda: len(recorder.of_kind("telemetry.reading")) >= 200
                )
                mosquitto.stop()
                ballast = fill(disk, leave_bytes=LEAVE_BYTES)
                full_from = len(reader.acked)
                # Full until the outbox has evicted (how long that takes depends on how fast
                # this machine writes), then FULL_S more with the cap reached.
                await scrape_until(
                    f"http://127.0.0.1:{metrics_port}/metrics",
                    lambda s: s.total("tagrelay_outbox_lost_events_total") > 0,
                    daemon.proc,
                    timeout_s=120,
                )
                await asyncio.sleep(FULL_S)
                acked_while_full = len(reader.acked) - full_from
                assert daemon.alive(), daemon.text()
                ballast.unlink()
                mosquitto.start()
                recovered_at = stream.sent
                await asyncio.to_thread(
                    recorder.wait, lambda: bool(recorder.of_kind("outbox.loss")), 60.0
                )
                await asyncio.sleep(3.0)
            finally:
                stop.set()
                await asyncio.gather(*tasks)
            async with asyncio.timeout(60):
                await reader.wait_for(lambda: reader.unacked == 0)
            after = {k for k in reader.acked if k[0] != COLD}
            recovered = stream.event_ids(
                {k for k in after if k in stream.times and stream.sent_index[k] >= recovered_at}
            )
            await asyncio.to_thread(recorder.wait, lambda: recovered <= recorder.event_ids())
            scrape: Scrape = await scrape_until(
                f"http://127.0.0.1:{metrics_port}/metrics",
                lambda s: s.get("tagrelay_outbox_leased_events") == 0,
                daemon.proc,
            )
            committed = int(scrape.get("tagrelay_events_total", kind="condition.excursion"))
            await asyncio.to_thread(
                recorder.wait, lambda: len(recorder.of_kind("condition.excursion")) >= committed
            )
            assert daemon.terminate() == 0

    lost = losses(recorder)
    evicted = sum(e["count"] for e in lost if e["class"] == "telemetry")
    readings = stream.event_ids(after)
    missing = readings - recorder.event_ids()
    print(
        f"{stream.sent} frames, {acked_while_full} ACKed while the disk was full; "
        f"outbox.loss entries {lost}; {len(missing)} ACKed readings not delivered; "
        f"{committed} excursion events committed"
    )
    assert evicted > 0
    assert {e["class"] for e in lost} == {"telemetry"}
    assert {e["reason"] for e in lost} == {"evicted"}
    assert committed >= 2
    assert len(recorder.of_kind("condition.excursion")) == committed
    assert len(missing) <= evicted
    assert reader.dropped == set()
    assert "Traceback" not in daemon.text()
