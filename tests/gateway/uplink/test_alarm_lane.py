"""Alarms never queue behind the backlog: reserved slots beyond the window, and a cap on the
batches in flight, checked against a real mosquitto frozen with SIGSTOP (no PUBACK comes back,
so whatever the uplink sends while it is frozen shows what its window lets through)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.outbox import EventClass
from gateway.uplink import BatchingConfig, ConnectionState, Uplink
from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.helpers import event, open_outbox, open_uplink, plain_config

DEADLINE_S = 10.0


async def until(predicate: Callable[[], bool]) -> None:
    """Poll the uplink's counters (an outside effect) until true, failing after a deadline."""
    async with asyncio.timeout(DEADLINE_S):
        while not predicate():  # noqa: ASYNC110 - the uplink has no event per publish
            await asyncio.sleep(0.005)


@contextmanager
def frozen(broker: Broker) -> Iterator[None]:
    assert broker.proc is not None
    pid = broker.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def published(uplink: Uplink) -> int:
    return uplink.stats().messages_published


async def test_an_alarm_goes_out_when_the_window_is_full(mosquitto: Broker, tmp_path: Path) -> None:
    config = plain_config(mosquitto, in_flight_window=1)
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.CONNECTED)
        with frozen(mosquitto):
            await outbox.accept([event(i) for i in range(5)])
            await until(lambda: published(uplink) == 1)
            await outbox.accept([event(99, EventClass.ALARM, "condition.shock")])
            # The window (1) is held by telemetry waiting for its PUBACK: only a reserved
            # alarm slot lets this second publish out.
            await until(lambda: published(uplink) == 2)
        await until(lambda: uplink.stats().events_acked == 6)


async def test_batches_in_flight_are_capped(mosquitto: Broker, tmp_path: Path) -> None:
    batching = BatchingConfig(enabled=True, max_events=10, max_age_ms=60_000, max_in_flight=2)
    config = plain_config(mosquitto, in_flight_window=50, batching=batching)
    async with open_outbox(tmp_path) as outbox, open_uplink(config, outbox) as uplink:
        await uplink.wait_state(ConnectionState.CONNECTED)
        with frozen(mosquitto):
            await outbox.accept([event(i) for i in range(100)])
            await until(lambda: uplink.stats().batches_published == 2)
            await outbox.accept([event(999, EventClass.ALARM, "condition.shock")])
            await until(lambda: published(uplink) == 3)
            # Ten batches were ready and the window had room for all: the cap kept eight back,
            # so the alarm went out behind two batches, not ten.
            assert uplink.stats().batches_published == 2
        await until(lambda: uplink.stats().events_acked == 101)
        assert uplink.stats().batches_published == 10
