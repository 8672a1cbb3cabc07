"""DedupMemory against a plain model: every key accepted within the retention (among the
newest ``max_keys``) is known, nothing never added is, and memory is bounded by the cap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.outbox.dedup import GENERATIONS, DedupMemory, digest, pack, unpack

RETENTION_S = 1000.0
MAX_KEYS = 64

_steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=300.0),  # time advance before this commit
        st.integers(min_value=0, max_value=20),  # keys in this commit
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(steps=_steps)
def test_memory_matches_the_model(steps: list[tuple[float, int]]) -> None:
    memory = DedupMemory(RETENTION_S, MAX_KEYS)
    accepted: list[tuple[float, int]] = []  # (store_s, digest), in order
    now = 0.0
    n = 0
    for advance, count in steps:
        now += advance
        memory.expire(now)
        batch = [digest(f"label:{n + i}") for i in range(count)]
        n += count
        memory.add(batch, now)
        accepted.extend((now, d) for d in batch)
        # The newest MAX_KEYS keys younger than the retention are always known ...
        young = [d for t, d in accepted if t + RETENTION_S > now]
        assert all(d in memory for d in young[-MAX_KEYS:])
        # ... memory never holds more than one generation beyond the cap ...
        assert len(memory) <= MAX_KEYS + -(-MAX_KEYS // GENERATIONS)
        # ... and the cap is reported when it, not the retention, made memory forget.
        if len(young) > len(memory):
            assert memory.shortened_to_s is not None
    assert digest("never sent") not in memory


def test_a_key_is_forgotten_only_after_the_retention() -> None:
    memory = DedupMemory(RETENTION_S, MAX_KEYS)
    key = digest("label:0011:seq:7")
    memory.add([key], 10.0)
    for t in range(11, 1010, 50):  # the generation closes and others follow, all young
        memory.add([digest(f"other:{t}")], float(t))
        memory.expire(float(t))
    memory.expire(10.0 + RETENTION_S - 1.0)
    assert key in memory
    # Forgotten with its generation: at most one generation span (retention / GENERATIONS)
    # after its own retention, while younger keys stay.
    memory.expire(10.0 + RETENTION_S + RETENTION_S / GENERATIONS)
    assert key not in memory
    assert digest("other:961") in memory


def test_digests_round_trip_through_their_stored_form() -> None:
    digests = [digest(f"k{i}") for i in range(100)] + [-(2**63), 2**63 - 1]
    blob = pack(digests)
    assert len(blob) == 8 * len(digests)
    assert list(unpack(blob)) == digests
    # Stable across processes (stored on disk): a fixed key has a fixed digest.
    assert digest("label:01:seq:42") == digest("label:01:seq:42")
    assert pack([1]) == b"\x01" + b"\x00" * 7
