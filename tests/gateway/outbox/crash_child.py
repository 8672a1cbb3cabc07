"""Child process of the crash-safety test: accepts events at full speed from several tasks and
prints each event id on stdout only after ``accept`` has returned it as ACCEPTED.

Usage: python crash_child.py DB_PATH RUN_TAG
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from foundation.clock import SystemClock
from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxConfig, OutboxEvent

PRODUCERS = 8
BATCH_EVENTS = 7
CONFIG = OutboxConfig(group_commit_window_ms=1.0)


def payload_for(event_id: str) -> bytes:
    """~600 bytes that name their event: a commit's events of one class exceed a page, so
    their payloads go into payload blocks, and the test can check each one read back."""
    return f'{{"id":"{event_id}","pad":"{"x" * 560}"}}'.encode()


async def _produce(outbox: Outbox, tag: str, producer: int) -> None:
    n = 0
    while True:
        batch = [
            OutboxEvent(
                event_id=f"{tag}-{producer}-{n + i}",
                event_class=EventClass((n + i) % len(EventClass)),
                kind="test.crash",
                payload=payload_for(f"{tag}-{producer}-{n + i}"),
                source=f"producer-{producer}",
            )
            for i in range(BATCH_EVENTS)
        ]
        n += BATCH_EVENTS
        result = await outbox.accept(batch)
        lines = [
            e.event_id
            for e, s in zip(batch, result.statuses, strict=True)
            if s is AcceptStatus.ACCEPTED
        ]
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()


async def _main(db: Path, tag: str) -> None:
    async with Outbox(db, CONFIG, SystemClock()) as outbox, asyncio.TaskGroup() as tg:
        # The uplink side runs too, so deletes and leases are in flight when the kill lands;
        # it only releases, so every accepted id stays in the store.
        tg.create_task(_churn(outbox))
        for p in range(PRODUCERS):
            tg.create_task(_produce(outbox, tag, p))


async def _churn(outbox: Outbox) -> None:
    while True:
        await outbox.wait_available()
        leased = await outbox.lease(50)
        await outbox.release([e.row_id for e in leased])
        await asyncio.sleep(0.001)


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1]), sys.argv[2]))
