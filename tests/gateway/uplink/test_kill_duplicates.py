"""Duplicates after a kill -9, measured on the real daemon and mosquitto.

The daemon drains a filled outbox; it is killed (SIGKILL, like a power cut) in mid-drain
several times and restarted. Everything is delivered (at least once); what a restart sends
again of what an earlier run already delivered is counted and held to the bound that
docs/mqtt.md states: the events in flight plus the acknowledged events whose deletes were not
yet committed (``ACK_LAG_MAX_EVENTS``)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Final

import pytest

from foundation.clock import SystemClock
from gateway.outbox import Outbox, OutboxConfig
from gateway.uplink import BatchingConfig, PubAckReport, Uplink
from gateway.uplink.publisher import ACK_COMMIT_AT_EVENTS, ACK_LAG_MAX_EVENTS, ALARM_RESERVED_SLOTS
from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.helpers import Deliveries, event, open_uplink, plain_config
from tests.gateway.uplink.paho_platform import (
    START_TIMEOUT_S,
    STATUS,
    Platform,
    platform,
    run_daemon,
    write_config,
)

KILLS: Final = 3
EVENTS: Final = 24_000
WINDOW: Final = 50
#: Batching as configured by default: 500 events a batch, 4 batches in flight.
BATCH_EVENTS: Final = 500
BATCHES_IN_FLIGHT: Final = 4


def duplicate_bound(batching: bool) -> int:
    """What docs/mqtt.md promises: events in flight (alarms may add their reserved slots)
    plus the acknowledged events whose deletes are not yet committed."""
    if batching:
        in_flight = (WINDOW - BATCHES_IN_FLIGHT) + BATCHES_IN_FLIGHT * BATCH_EVENTS
    else:
        in_flight = WINDOW
    return in_flight + ALARM_RESERVED_SLOTS + ACK_LAG_MAX_EVENTS + ALARM_RESERVED_SLOTS


async def _fill(state: Path, n: int) -> None:
    async with Outbox(state / "outbox.db", OutboxConfig(), SystemClock()) as outbox:
        for start in range(0, n, 5000):
            await outbox.accept([event(i) for i in range(start, min(n, start + 5000))])


async def _depth(state: Path) -> int:
    async with Outbox(state / "outbox.db", OutboxConfig(), SystemClock()) as outbox:
        return (await outbox.stats()).depth


def _will_since(p: Platform, mark: int) -> bool:
    return any(
        m.topic == STATUS and json.loads(m.payload)["reason"] == "connection lost"
        for m in p.seen[mark:]
    )


@pytest.mark.parametrize("batching", [False, True], ids=["single", "batched"])
async def test_ack_lag_is_capped_even_when_the_outbox_would_wait(
    mosquitto: Broker, tmp_path: Path, batching: bool
) -> None:
    """An outbox told to delete acks only every minute or every 100 000 ids: the uplink has
    them committed itself, never runs more than the cap (plus what was in flight) ahead of its
    deletes, and the drain still completes."""
    n = 3000
    lag: list[int] = []
    holder: list[Uplink] = []
    deliveries = Deliveries()

    def observe(delivery: PubAckReport) -> None:
        deliveries(delivery)
        lag.append(holder[0].stats().ack_lag_events)

    lazy = OutboxConfig(ack_flush_delay_ms=60_000.0, ack_batch_max=100_000)
    config = plain_config(
        mosquitto,
        in_flight_window=WINDOW,
        batching=BatchingConfig(enabled=batching, max_age_ms=0),
    )
    async with Outbox(tmp_path / "outbox.db", lazy, SystemClock()) as outbox:
        await outbox.accept([event(i) for i in range(n)])
        async with open_uplink(config, outbox, on_delivery=observe) as uplink:
            holder.append(uplink)
            await deliveries.wait_acked(n)
        assert (await outbox.stats()).depth == 0
    in_flight = BATCHES_IN_FLIGHT * BATCH_EVENTS + WINDOW if batching else WINDOW
    assert max(lag) <= ACK_LAG_MAX_EVENTS + in_flight
    assert max(lag) >= ACK_COMMIT_AT_EVENTS  # it did run ahead, up to where it commits


@pytest.mark.parametrize("batching", [False, True], ids=["single", "batched"])
def test_kill_9_in_mid_drain_duplicates_stay_within_the_bound(
    mosquitto: Broker, tmp_path: Path, batching: bool
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    asyncio.run(_fill(state, EVENTS))
    extra = f"in_flight_window = {WINDOW}\n[uplink.batching]\nenabled = {str(batching).lower()}\n"
    config = write_config(tmp_path, mosquitto, extra)
    runs: list[list[int]] = []
    with platform(mosquitto) as p:
        for _ in range(KILLS):
            mark = p.mark()
            # Kill a quarter of the way through what is left: in the drain at full speed.
            target = len(p.distinct) + (EVENTS - len(p.distinct)) // 4
            with run_daemon(tmp_path, config) as proc:
                p.wait(lambda: len(p.distinct) >= target, START_TIMEOUT_S)  # noqa: B023
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(START_TIMEOUT_S) == -signal.SIGKILL
            # The broker publishes the will once it sees the connection gone, after every
            # event it had received from this run: all of them are counted in this run.
            p.wait(lambda: _will_since(p, mark))  # noqa: B023
            runs.append(p.events_since(mark))
        mark = p.mark()
        with run_daemon(tmp_path, config) as proc:
            p.wait(lambda: len(p.distinct) >= EVENTS, START_TIMEOUT_S)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(START_TIMEOUT_S) == 0
        runs.append(p.events_since(mark))
    assert asyncio.run(_depth(state)) == 0
    everything = [seq for run in runs for seq in run]
    assert set(everything) == set(range(EVENTS)), "an event was lost"
    # Per kill: events the next run sent that an earlier run had already delivered.
    seen: set[int] = set()
    per_kill: list[int] = []
    for run in runs:
        per_kill.append(sum(1 for seq in run if seq in seen))
        seen.update(run)
    per_kill = per_kill[1:]
    delivered_per_run = [len(run) for run in runs]
    print(
        f"kill -9 duplicates ({'batched' if batching else 'single'}): per kill {per_kill}, "
        f"max {max(per_kill)}, bound {duplicate_bound(batching)}; events per run "
        f"{delivered_per_run}; copies {Counter(Counter(everything).values())}"
    )
    assert max(per_kill) <= duplicate_bound(batching)
