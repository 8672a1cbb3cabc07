"""Random sequences of accept / lease / ack / reject / release / restart against a real store:
every accepted event is accounted for exactly once (delivered, dead-lettered, lost and reported,
or still queued), and delivery order within a class and source is arrival order."""

from __future__ import annotations

import sqlite3
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.outbox import LOSS_KIND, AcceptStatus, EventClass, Outbox, OutboxEvent
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event

_op = st.one_of(
    st.tuples(st.just("accept"), st.lists(st.sampled_from(EventClass), min_size=1, max_size=6)),
    st.tuples(st.just("lease"), st.integers(min_value=1, max_value=8)),
    st.tuples(st.just("ack"), st.integers(min_value=0, max_value=8)),
    st.tuples(st.just("reject"), st.integers(min_value=0, max_value=2)),
    st.tuples(st.just("release"), st.just(0)),
    st.tuples(st.just("restart"), st.just(0)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(_op, min_size=1, max_size=40))
async def test_every_accepted_event_is_accounted_for_once(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, object]]
) -> None:
    db = tmp_path_factory.mktemp("model") / "o.db"
    # Room for ~12 events: evictions happen.
    config = ROOMY.model_copy(update={"max_bytes": 12 * 380})
    clock = FakeClock()
    accepted: list[str] = []
    classes: dict[str, EventClass] = {}
    delivered: list[tuple[EventClass, str, int]] = []
    in_hand: list[int] = []
    acked: set[str] = set()
    rejected: set[str] = set()
    leased_ids: dict[int, str] = {}
    n = 0
    outbox = Outbox(db, config, clock)
    await outbox.__aenter__()
    try:
        for name, arg in ops:
            if name == "accept":
                assert isinstance(arg, list)
                batch: list[OutboxEvent] = []
                for c in arg:
                    batch.append(event(f"e{n}", c, source=f"s{n % 2}"))
                    n += 1
                result = await outbox.accept(batch)
                classes.update((e.event_id, e.event_class) for e in batch)
                accepted += [
                    e.event_id
                    for e, s in zip(batch, result.statuses, strict=True)
                    if s is AcceptStatus.ACCEPTED
                ]
            elif name == "lease":
                assert isinstance(arg, int)
                for e in await outbox.lease(arg):
                    in_hand.append(e.row_id)
                    leased_ids[e.row_id] = e.event_id
                    if e.kind != LOSS_KIND:
                        delivered.append((e.event_class, e.event_id, int(e.event_id[1:])))
            elif name == "ack":
                assert isinstance(arg, int)
                done, in_hand = in_hand[:arg], in_hand[arg:]
                acked |= {leased_ids[r] for r in done}
                await outbox.ack(done)
            elif name == "reject":
                assert isinstance(arg, int)
                bad, in_hand = in_hand[:arg], in_hand[arg:]
                rejected |= {leased_ids[r] for r in bad}
                await outbox.reject(bad, "test")
            elif name == "release":
                await outbox.release(in_hand)
                # Released events will be leased again: only the last delivery counts.
                gone = {leased_ids[r] for r in in_hand}
                delivered = [d for d in delivered if d[1] not in gone]
                in_hand = []
            else:
                await outbox.__aexit__(None, None, None)
                outbox = Outbox(db, config, clock)
                await outbox.__aenter__()
                gone = {leased_ids[r] for r in in_hand}
                delivered = [d for d in delivered if d[1] not in gone]
                in_hand = []
        await outbox.flush()
    finally:
        await outbox.__aexit__(None, None, None)

    conn = sqlite3.connect(db)
    try:
        queued = [
            r[0] for r in conn.execute("SELECT event_id FROM events WHERE kind != ?", (LOSS_KIND,))
        ]
        dead = [r[0] for r in conn.execute("SELECT event_id FROM dead_letters")]
        losses = dict(conn.execute("SELECT event_class, sum(count) FROM losses GROUP BY 1"))
    finally:
        conn.close()
    everything = set(accepted)
    assert len(accepted) == len(everything)
    assert len(queued + dead) == len(set(queued + dead))  # each row exactly once
    assert set(dead) == rejected & everything
    assert not acked & set(queued)
    # Whatever is neither queued, dead nor delivered was lost, and counted as such per class
    # (status also counts evicted loss records themselves, which were never accepted).
    lost = everything - set(queued) - set(dead) - acked
    lost_by_class = Counter(classes[i] for i in lost)
    for c in EventClass:
        if c is EventClass.STATUS:
            assert lost_by_class[c] <= losses.get(int(c), 0)
        else:
            assert lost_by_class[c] == losses.get(int(c), 0)
    # Order within (class, source) is arrival order in what was delivered.
    for c in EventClass:
        for src in (0, 1):
            seqs = [seq for cls, _id, seq in delivered if cls is c and seq % 2 == src]
            assert seqs == sorted(seqs)
