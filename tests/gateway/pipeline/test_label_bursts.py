"""A reader's burst of frames, as ``tagrelay run`` takes it: the label stage commits the frames
already queued in one accept, then answers each on its own. Good and bad frames mixed in one
burst: every good one is ACKed once and reaches the broker, every bad one is NACKed with its
own reason, none is answered for another."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.smartlabel import Ack, Environment, NackReason
from simulator.serial import PtyPort, SmartLabelReaderSim
from tests.fixtures.mosquitto import Broker
from tests.gateway.pipeline.test_run import (
    LABELS,
    gateway_process,
    reading_ids,
    wait_for,
    write_reader_config,
)
from tests.gateway.uplink.helpers import subscribe

#: Frames in the burst: several commits' worth for a queue taken in one go.
BURST = 400
#: Long enough that no frame is resent on a loaded machine: each answer is counted once.
RESEND_AFTER_S = 30.0
#: Every this many frames one comes from label id 0, which no label has (NACK unknown_label).
BAD_EVERY = 9


@pytest.mark.timeout(180)
async def test_a_burst_is_answered_frame_by_frame(mosquitto: Broker, tmp_path: Path) -> None:
    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=RESEND_AFTER_S) as reader,
        subscribe(mosquitto, "tagrelay/v1/gw-labels/events/telemetry/#") as sub,
    ):
        config = write_reader_config(tmp_path, mosquitto, tmp_path / "reader")
        log = tmp_path / "daemon.log"
        times: dict[tuple[int, int], int] = {}
        bad: set[tuple[int, int]] = set()
        with gateway_process(config, log) as proc:
            # The gateway answers a first frame: it is up and reading.
            reader.send(
                Environment(LABELS[0], reader.next_seq(LABELS[0]), 1_767_225_599, 4.0, 80.0)
            )
            await wait_for(lambda: len(reader.acked) == 1, reader)
            first = set(reader.acked)
            for i in range(BURST):
                label = 0 if i % BAD_EVERY == 0 else LABELS[i % len(LABELS)]
                seq = reader.next_seq(label)
                if label == 0:
                    bad.add((label, seq))
                else:
                    times[(label, seq)] = 1_767_225_600 + i
                reader.send(Environment(label, seq, 1_767_225_600 + i, 4.5, 80.0))
            good = set(times)
            await wait_for(lambda: good <= reader.acked and len(reader.nacked) >= len(bad), reader)
            every = reading_ids(good, times)
            await sub.wait_until(lambda m: every <= {e["event_id"] for e in sub.events()})
            assert proc.poll() is None
    assert reader.acked == good | first
    assert {(label, seq) for label, seq, _ in reader.nacked} == bad
    assert {reason for _, _, reason in reader.nacked} == {NackReason.UNKNOWN_LABEL}
    assert reader.dropped == bad
    # One ACK per frame: the reader saw no answer twice.
    acks = [m for m in reader.received if isinstance(m, Ack)]
    assert len(acks) == len(good) + 1
    received = {e["event_id"] for e in sub.events()}
    assert every <= received
    assert "Traceback" not in log.read_text()
