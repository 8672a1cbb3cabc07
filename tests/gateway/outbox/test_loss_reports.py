"""Every loss is reported, exactly: the counts of the ``outbox.loss`` reports that reach the
platform add up to what was evicted or expired, under the byte cap, TTL and a full disk, across
restarts and reconnects; a report that was handed out is never changed afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import LOSS_KIND, AcceptStatus, EventClass, Outbox, OutboxError
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event, small_filesystem

HOUR_S = 3600.0


class Platform:
    """What the broker's consumer sees: events de-duplicated by event id (the first copy
    wins, as on a platform that de-duplicates); a second copy must be byte-identical."""

    def __init__(self) -> None:
        self.events: dict[str, bytes] = {}
        #: Events (not loss reports) the outbox was told the broker has: they left the store
        #: delivered. Everything else accepted was lost, and must be in a report.
        self.acked: set[str] = set()

    def receive(self, event_id: str, payload: bytes) -> None:
        first = self.events.setdefault(event_id, payload)
        assert first == payload, f"{event_id} was sent twice with different contents"

    @property
    def reports(self) -> list[dict[str, object]]:
        return [
            body
            for body in (json.loads(p) for p in self.events.values() if LOSS_KIND.encode() in p)
            if body.get("kind") == LOSS_KIND
        ]

    def reported(self, reason: str | None = None) -> int:
        total = 0
        for report in self.reports:
            losses = report["losses"]
            assert isinstance(losses, list)
            assert report["count"] == sum(x["count"] for x in losses)
            total += sum(x["count"] for x in losses if reason in (None, x["reason"]))
        return total

    def delivered(self) -> int:
        """Events other than loss reports that were acknowledged."""
        return len(self.acked)


async def _send(outbox: Outbox, platform: Platform, n: int, *, ack: bool) -> None:
    """Lease up to ``n`` and publish them; ack them, or lose the connection (release)."""
    rows = await outbox.lease(n)
    for row in rows:
        platform.receive(row.event_id, row.payload)
    if ack:
        await outbox.ack([r.row_id for r in rows])
        platform.acked.update(r.event_id for r in rows if r.kind != LOSS_KIND)
    else:
        await outbox.release_all()


async def _drain(outbox: Outbox, platform: Platform) -> None:
    while rows := await outbox.lease(1000):
        for row in rows:
            platform.receive(row.event_id, row.payload)
        await outbox.ack([r.row_id for r in rows])
        platform.acked.update(r.event_id for r in rows if r.kind != LOSS_KIND)
    await outbox.flush()


async def test_status_events_at_the_byte_cap_are_all_reported(tmp_path: Path) -> None:
    """The reproduction: max_bytes 20,000 and 300 status events (loss reports are status
    rows too), with the connection lost now and then after a report went out."""
    config = ROOMY.model_copy(update={"max_bytes": 20_000})
    platform = Platform()
    accepted = 0
    async with Outbox(tmp_path / "o.db", config, FakeClock()) as outbox:
        for i in range(300):
            result = await outbox.accept([event(f"s{i}", EventClass.STATUS)])
            accepted += result.statuses.count(AcceptStatus.ACCEPTED)
            if i % 37 == 36:
                await _send(outbox, platform, 5, ack=False)
            if i % 91 == 90:
                await _send(outbox, platform, 3, ack=True)
        await _drain(outbox, platform)
        stats = await outbox.stats()
    assert accepted == 300
    lost = 300 - platform.delivered()
    assert lost > 200
    assert platform.reported("evicted") == lost == stats.lost
    assert stats.depth == 0


async def test_a_report_is_not_changed_once_leased(tmp_path: Path) -> None:
    config = ROOMY.model_copy(update={"max_bytes": 4000})
    async with Outbox(tmp_path / "o.db", config, FakeClock()) as outbox:
        for i in range(20):
            await outbox.accept([event(f"t{i}")])
        (first,) = [e for e in await outbox.lease(100) if e.kind == LOSS_KIND]
        await outbox.release_all()
        for i in range(20, 40):
            await outbox.accept([event(f"t{i}")])
        leased = await outbox.lease(100)
    again = [e for e in leased if e.kind == LOSS_KIND]
    same = [e for e in again if e.event_id == first.event_id]
    assert [e.payload for e in same] == [first.payload]  # re-sent as it was
    newer = [json.loads(e.payload) for e in again if e.event_id != first.event_id]
    assert len(newer) == 1
    assert newer[0]["count"] > 0
    kept = sum(1 for e in leased if e.kind != LOSS_KIND)
    assert json.loads(first.payload)["count"] + newer[0]["count"] == 40 - kept


async def test_expired_events_are_all_reported_and_reports_do_not_expire(
    tmp_path: Path,
) -> None:
    ttl: dict[EventClass, float | None] = {c: None for c in EventClass}
    ttl[EventClass.TELEMETRY] = HOUR_S
    ttl[EventClass.STATUS] = HOUR_S / 2  # shorter than the reports wait to be sent
    config = ROOMY.model_copy(update={"ttl_s": ttl})
    clock = FakeClock()
    platform = Platform()
    async with Outbox(tmp_path / "o.db", config, clock) as outbox:
        for hour in range(10):
            await outbox.accept([event(f"t{hour}-{i}") for i in range(30)])
            await outbox.accept([event(f"s{hour}-{i}", EventClass.STATUS) for i in range(5)])
            if hour % 3 == 2:
                await _send(outbox, platform, 10, ack=False)
            clock.advance(HOUR_S * 0.75)
            await outbox.sweep()
        clock.advance(10 * HOUR_S)  # everything left expires, the reports stay
        await outbox.sweep()
        leased = await outbox.lease(1000)
        assert leased
        assert all(e.kind == LOSS_KIND and e.expires_in_s is None for e in leased)
        await outbox.release_all()
        await _drain(outbox, platform)
        stats = await outbox.stats()
    lost = 10 * 35 - platform.delivered()
    assert lost == 10 * 35  # nothing was acked before it expired, some went out unacked
    assert platform.reported("expired") == lost == stats.lost


async def test_loss_accounting_survives_restarts(tmp_path: Path) -> None:
    config = ROOMY.model_copy(update={"max_bytes": 10_000})
    platform = Platform()
    db = tmp_path / "o.db"
    accepted = 0
    for run in range(3):
        async with Outbox(db, config, FakeClock()) as outbox:
            for i in range(60):
                # Status events too: they compete with the loss reports (also status).
                kind = EventClass.STATUS if i % 3 == 0 else EventClass.TELEMETRY
                result = await outbox.accept([event(f"r{run}-{i}", kind)])
                accepted += result.statuses.count(AcceptStatus.ACCEPTED)
            await _send(outbox, platform, 4, ack=False)
    async with Outbox(db, config, FakeClock()) as outbox:
        await _drain(outbox, platform)
        stats = await outbox.stats()
    lost = accepted - platform.delivered()
    assert lost > 50
    assert platform.reported("evicted") == lost == stats.lost


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "fs") as mount:
        yield mount


async def test_evictions_on_a_full_disk_are_all_reported(disk: Path) -> None:
    platform = Platform()
    accepted = failed = 0
    async with Outbox(disk / "o.db", ROOMY, FakeClock()) as outbox:
        for i in range(2500):
            batch = [event(f"t{i}-{j}") for j in range(4)]
            batch.append(event(f"s{i}", EventClass.STATUS))
            try:
                result = await outbox.accept(batch)
            except OutboxError:
                failed += len(batch)
                continue
            accepted += result.statuses.count(AcceptStatus.ACCEPTED)
            if i % 200 == 199:
                await _send(outbox, platform, 50, ack=i % 400 == 399)
        stats = await outbox.stats()
        assert stats.disk_full_cap_bytes is not None
        await _drain(outbox, platform)
        final = await outbox.stats()
    lost = accepted - platform.delivered()
    assert lost > 5000
    assert platform.reported("evicted") == lost == final.lost
