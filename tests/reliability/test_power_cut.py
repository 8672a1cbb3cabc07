"""Power cuts: the daemon SIGKILLed at random moments while SmartLabels stream through the
reader's pty, restarted each time on the same state; nothing the reader saw ACKed is lost."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.serial import PtyPort, SmartLabelReaderSim
from tests.fixtures.mosquitto import Broker
from tests.reliability.conftest import (
    START_TIMEOUT_S,
    Daemon,
    LabelStream,
    Recorder,
    write_config,
)

GATEWAY = "gw-power"
#: Labels behind the one reader, and the frame rate they send at together.
LABELS = [0x5A4B100000000001 + i for i in range(40)]
RATE_FPS = 1_000
#: Power cuts, and how long the daemon runs (after its first ACK) before each, drawn uniformly.
KILLS = 20
UP_S = (0.2, 1.5)
#: The reader resends a frame it got no ACK for after this long (the firmware's retry timer).
RESEND_AFTER_S = 8.0
#: Frames the reader holds un-ACKed at most; a label frame arriving at a full reader is lost at
#: the reader (never transmitted, so never ACKed: outside the claim), as in its firmware.
READER_BUFFER = 5_000


async def wait_acks(reader: SmartLabelReaderSim, n: int, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        await reader.wait_for(lambda: len(reader.acked) >= n)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_twenty_power_cuts_under_a_thousand_frames_per_second(
    mosquitto: Broker,
    recorder: Recorder,
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: 40 labels sending 1,000 frames/s together into one reader (written to the pty in
    bursts every 10 ms), reader resend timer 8 s and a 5,000-frame buffer; 20 SIGKILLs, each
    0.2-1.5 s (uniform, seeded and printed) after the restarted daemon's first new ACK; then a
    final run until every frame the reader relayed is ACKed. About 90 s on two loaded cores.

    Every frame the reader saw ACKed, before any cut, reaches the platform at least once and as
    exactly one event id; every restart starts cleanly (ACKs again, no traceback) and the final
    shutdown exits 0."""
    seed = random.randrange(1 << 30)
    print(f"power-cut seed {seed}")
    rng = random.Random(seed)
    config = write_config(
        tmp_path / "gw.toml",
        GATEWAY,
        mosquitto,
        f'[[smartlabel_readers]]\npath = "{tmp_path / "reader"}"\n',
    )
    daemon = daemons(config)
    acked_at_cut: list[int] = []
    up_acks, up_total_s = 0, 0.0
    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=RESEND_AFTER_S) as reader,
    ):
        stream = LabelStream(reader, GATEWAY, LABELS, RATE_FPS, READER_BUFFER)
        stop = asyncio.Event()
        sender = asyncio.create_task(stream.run(stop))
        try:
            for _ in range(KILLS):
                before = len(reader.acked)
                daemon.start()
                # Up again: it ACKs frames it had not ACKed before.
                await wait_acks(reader, before + 1, START_TIMEOUT_S)
                up_s = rng.uniform(*UP_S)
                acks_before = len(reader.acked)
                await asyncio.sleep(up_s)
                up_acks += len(reader.acked) - acks_before
                up_total_s += up_s
                code = daemon.kill()
                assert code == -9, f"the daemon died on its own ({code}):\n{daemon.text()}"
                acked_at_cut.append(len(reader.acked))
            stop.set()
            await sender
            daemon.start()
            await wait_acks(reader, stream.sent, 120)
            every = stream.event_ids(set(reader.acked))
            await asyncio.to_thread(recorder.wait, lambda: every <= recorder.event_ids(), 120)
            assert daemon.terminate() == 0
        finally:
            stop.set()
            await sender

    rate = stream.offered / stream.elapsed_s
    print(
        f"labels sent {stream.offered} frames in {stream.elapsed_s:.1f} s ({rate:.0f}/s), "
        f"the reader relayed {stream.sent} ({stream.overflowed} lost at a full reader); "
        f"ACKs while up {up_acks / up_total_s:.0f}/s; ACKed at each cut {acked_at_cut}; "
        f"reader resends {reader.resends}"
    )
    assert rate >= 0.95 * RATE_FPS
    assert len(daemon.pids) == KILLS + 1
    # The daemon made progress between cuts (each restart ACKed new frames).
    assert len(set(acked_at_cut)) == KILLS
    assert len(reader.acked) == stream.sent
    assert reader.dropped == set()
    received = recorder.event_ids()
    assert every <= received
    # A resent frame is the same fact: one event id per frame, none under another id.
    readings = {e["event_id"] for e in recorder.of_kind("telemetry.reading")}
    assert readings == every
    # Twenty kills left no store damaged (that would be reported as a loss) and no state
    # unreadable.
    assert recorder.of_kind("outbox.loss") == []
    log = daemon.text()
    assert "Traceback" not in log
    assert "could not be restored" not in log
    assert log.count("=== start") == KILLS + 1
