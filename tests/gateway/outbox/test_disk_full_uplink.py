"""The uplink keeps running on a full disk: acks that cannot be written and a broker that goes
away must not end it (real mosquitto, the outbox on a real, full 3 MB file system)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.clock import SystemClock
from gateway.outbox import Outbox, OutboxConfig
from gateway.uplink import ConnectionState
from tests.fixtures.mosquitto import BrokerFactory
from tests.gateway.outbox.helpers import fill, small_filesystem
from tests.gateway.uplink.helpers import Deliveries, event, open_uplink, plain_config

EVENTS = 300


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "fs") as mount:
        yield mount


async def test_a_broker_outage_on_a_full_disk_does_not_stop_the_uplink(
    mosquitto_factory: BrokerFactory, disk: Path
) -> None:
    broker = mosquitto_factory("plain")
    # No reserve: the disk is full to its last byte, so not even the acks can be written.
    config = OutboxConfig(ack_flush_delay_ms=20.0, disk_reserve_bytes=0)
    deliveries = Deliveries()
    async with Outbox(disk / "outbox.db", config, SystemClock()) as outbox:
        await outbox.accept([event(n) for n in range(EVENTS)])
        await outbox._call(
            lambda: outbox._store._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        )
        ballast = fill(disk)
        async with (
            open_uplink(plain_config(broker), outbox, on_delivery=deliveries) as uplink,
            asyncio.timeout(60),
        ):
            await deliveries.wait_acked(EVENTS)
            stored = await outbox.stats()
            assert stored.depth == EVENTS  # acknowledged by the broker, deletes not written
            broker.kill()
            await uplink.wait_state(ConnectionState.DISCONNECTED)
            broker.start()
            await uplink.wait_state(ConnectionState.CONNECTED)
            # The acked rows stayed leased through the reconnect: nothing is sent twice.
            ballast.unlink()  # room again: the deletes are retried and go through
            await outbox.flush()
            while (await outbox.stats()).depth:
                await outbox.flush()
            stats = uplink.stats()
    assert stats.connects == 2
    assert stats.events_published == EVENTS
    assert deliveries.acked == EVENTS
