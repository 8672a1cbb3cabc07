"""The publisher's progress for the watchdog: its outbox work is busy, its waiting is not.

A real broker, outbox and uplink; the liveness is stamped with a clock the test moves, so "an
hour of waiting" is one assignment and a stall is measured exactly.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.health import Liveness
from gateway.uplink import ConnectionState, UplinkConfig
from gateway.uplink.publisher import ACKS_STAGE, PUBLISH_STAGE
from tests.fixtures.mosquitto import Broker, free_port
from tests.gateway.uplink.helpers import (
    Deliveries,
    event,
    open_outbox,
    open_uplink,
    plain_config,
)

EVENTS = 20
LIMIT_S = 30.0
HOUR_S = 3600.0


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Tracked:
    """The liveness's ``working`` hook, counting each stage's finished pieces of work; the
    test wakes up at every start and end of one."""

    def __init__(self, liveness: Liveness) -> None:
        self.liveness = liveness
        self.done: collections.Counter[str] = collections.Counter()
        self.changed = asyncio.Event()

    @asynccontextmanager
    async def __call__(self, stage: str) -> AsyncIterator[None]:
        self.changed.set()  # whoever waits looks once this task is inside (or stuck in) it
        async with self.liveness.working(stage):
            yield
        self.done[stage] += 1
        self.changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def test_a_drained_publisher_waiting_for_events_is_not_a_stall(
    mosquitto: Broker, tmp_path: Path
) -> None:
    now = Now()
    liveness = Liveness(now)
    tracked = Tracked(liveness)
    deliveries = Deliveries()
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i) for i in range(EVENTS)])
        async with open_uplink(
            plain_config(mosquitto), outbox, busy=tracked, on_delivery=deliveries
        ):
            await deliveries.wait_acked(EVENTS)

            def settled() -> bool:
                beats = [liveness.beat(PUBLISH_STAGE), liveness.beat(ACKS_STAGE)]
                return all(b.items > 0 and b.busy_since is None for b in beats)

            await tracked.wait_until(settled)
            assert tracked.done[PUBLISH_STAGE] > 0
            assert tracked.done[ACKS_STAGE] > 0
            now.t += HOUR_S  # nothing more to send for an hour
            assert liveness.stalled(LIMIT_S) == []
            # And it still works after the wait: the next event goes out.
            await outbox.accept([event(EVENTS)])
            await deliveries.wait_acked(EVENTS + 1)


async def test_a_publisher_hung_on_a_lease_is_a_stall(mosquitto: Broker, tmp_path: Path) -> None:
    now = Now()
    liveness = Liveness(now, wedge=(PUBLISH_STAGE,))
    tracked = Tracked(liveness)
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i) for i in range(EVENTS)])
        async with open_uplink(plain_config(mosquitto), outbox, busy=tracked) as uplink:
            await uplink.wait_state(ConnectionState.CONNECTED)
            beat = liveness.beat(PUBLISH_STAGE)
            await tracked.wait_until(lambda: beat.busy_since is not None)
            now.t += LIMIT_S - 1
            assert liveness.stalled(LIMIT_S) == []
            now.t += 2
            (stall,) = liveness.stalled(LIMIT_S)
            assert (stall.stage, stall.busy_s) == (PUBLISH_STAGE, LIMIT_S + 1)
            assert uplink.stats().events_published == 0
    # Stopping cancelled the hung lease: the stage is idle again, nothing was counted done.
    assert beat.busy_since is None
    assert tracked.done[PUBLISH_STAGE] == 0


async def test_a_publisher_waiting_for_its_broker_is_not_a_stall(tmp_path: Path) -> None:
    now = Now()
    liveness = Liveness(now)
    tracked = Tracked(liveness)
    away = UplinkConfig.model_validate(  # nothing listens there
        {"host": "127.0.0.1", "port": free_port(), "transport": "tcp", "reconnect_min_s": 0.05}
    )
    async with open_outbox(tmp_path) as outbox:
        await outbox.accept([event(i) for i in range(EVENTS)])
        async with open_uplink(away, outbox, busy=tracked) as uplink:
            # The first connect failed; from here on it retries after a backoff, unconnected.
            await uplink.wait_state(ConnectionState.DISCONNECTED)
            now.t += HOUR_S
            assert liveness.stalled(LIMIT_S) == []
            assert uplink.stats().connects == 0
    assert tracked.done[PUBLISH_STAGE] == 0  # no connection: the publisher never ran
