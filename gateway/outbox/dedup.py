"""The outbox's memory of de-duplication keys: which keys were accepted in the last day.

A SmartLabel reader re-sends a frame until it sees the ACK, with a back-off of up to 60 s, and
all un-ACKed frames at once when its serial line comes back; docs/protocol.md promises that the
gateway recognises a (label, seq) it committed for at least 24 hours. :class:`DedupMemory` keeps
the 64-bit digests of the keys accepted during ``retention_s`` of store time, in generations of
generations (a set for the newest, a sorted array behind a bitmap for the others), so that whole
generations expire at once.

Memory is capped at ``max_keys`` (about 10 bytes a key, plus the newest generation's set at
about 70): past the cap the oldest generation is
forgotten early and ``shortened_to_s`` tells by how much. The store writes the digests of every
commit to disk (8 bytes a key, appended, no index) and refills this memory from them at start.
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

#: The memory is split into this many generations: expiry and the key cap act on a whole
#: generation, so at most 1/GENERATIONS of the cap is held beyond it.
GENERATIONS: Final = 16
#: Slots of the shared filter in front of the closed generations, per key of the cap: one
#: byte each, so 8 bytes a key, and at a full cap ~11 % of new keys need the binary searches.
FILTER_SLOTS_PER_KEY: Final = 8
#: A filter slot counts up to this, then stays (a saturated slot only costs a search).
_SATURATED: Final = 255
#: Each closed generation also has a bitmap of this many bits a key (~6 % false hits), so a
#: key that passes the shared filter is binary-searched only where it probably is.
BITMAP_BITS_PER_KEY: Final = 16


def digest(key: str) -> int:
    """A stable 64-bit digest (the same in every process, so it can be stored): ~2**-64 odds
    per remembered key that a new key is mistaken for it."""
    return int.from_bytes(
        hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
        "big",
        signed=True,
    )


def pack(digests: Iterable[int]) -> bytes:
    """Digests as stored on disk: 8 bytes each, little-endian whatever the CPU."""
    out = array("q", digests)
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def unpack(blob: bytes) -> array[int]:
    out = array("q")
    out.frombytes(blob)
    if sys.byteorder == "big":
        out.byteswap()
    return out


@dataclass(slots=True)
class _Generation:
    oldest_s: float
    newest_s: float
    #: The open (newest) generation takes new keys here ...
    keys: set[int] = field(default_factory=set)
    #: ... and once closed keeps them sorted, 8 bytes a key instead of ~70 in a set, behind
    #: a bitmap of their low bits.
    sorted_keys: array[int] = field(default_factory=lambda: array("q"))
    bitmap: bytearray = field(default_factory=bytearray)
    mask: int = 0

    def __len__(self) -> int:
        return len(self.keys) + len(self.sorted_keys)


class DedupMemory:
    """Digests of keys accepted in the last ``retention_s`` of store time (at least the newest
    ``max_keys`` of them, at most 1/GENERATIONS more). Not thread-safe: used by the store's
    single writer thread.

    Lookups of new keys (the common case) cost one set lookup and one filter byte: a closed
    generation's keys are counted into a shared byte-per-slot filter indexed by the digest's
    low bits; only where that slot is non-zero are the generations binary-searched.
    """

    def __init__(self, retention_s: float, max_keys: int) -> None:
        self._retention_s = retention_s
        self._max_keys = max_keys
        self._generation_keys = max(1, math.ceil(max_keys / GENERATIONS))
        self._generation_span_s = retention_s / GENERATIONS
        self._open = _Generation(-math.inf, -math.inf)
        self._closed: deque[_Generation] = deque()
        self._slots = 1 << max(10, (max_keys * FILTER_SLOTS_PER_KEY - 1).bit_length())
        self._mask = self._slots - 1
        # Allocated when the first generation closes: a quiet store does not pay for it.
        self._filter = bytearray()
        self._count = 0
        #: Age of the oldest key dropped by the cap while younger than ``retention_s``;
        #: ``None`` while the full retention holds.
        self.shortened_to_s: float | None = None

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key_digest: int) -> bool:
        if key_digest in self._open.keys:
            return True
        if not self._closed or not self._filter[key_digest & self._mask]:
            return False
        # Newest first: a re-sent frame is most likely recent.
        for generation in reversed(self._closed):
            bit = key_digest & generation.mask
            if generation.bitmap[bit >> 3] >> (bit & 7) & 1:
                keys = generation.sorted_keys
                i = bisect_left(keys, key_digest)
                if i < len(keys) and keys[i] == key_digest:
                    return True
        return False

    def add(self, digests: Iterable[int], store_s: float) -> None:
        """Remember keys accepted at ``store_s`` (non-decreasing from call to call)."""
        pending = list(digests)
        start = 0
        while start < len(pending):
            current = self._open
            if (
                len(current.keys) >= self._generation_keys
                or store_s - current.oldest_s >= self._generation_span_s
            ):
                current = self._rotate(store_s)
            end = start + self._generation_keys - len(current.keys)
            before = len(current.keys)
            current.keys.update(pending[start:end])
            self._count += len(current.keys) - before
            current.newest_s = store_s
            start = end
        self._enforce_cap(store_s)

    def _rotate(self, store_s: float) -> _Generation:
        """Close the open generation (into the compact form) and open a new one."""
        old = self._open
        if old.keys:
            nbits = 1 << max(3, (len(old.keys) * BITMAP_BITS_PER_KEY - 1).bit_length())
            old.mask = nbits - 1
            old.bitmap = bytearray(nbits >> 3)
            for key_digest in old.keys:
                bit = key_digest & old.mask
                old.bitmap[bit >> 3] |= 1 << (bit & 7)
            old.sorted_keys = array("q", sorted(old.keys))
            old.keys = set()
            self._count_into_filter(old, +1)
            self._closed.append(old)
        self._open = _Generation(store_s, store_s)
        return self._open

    def _count_into_filter(self, generation: _Generation, step: int) -> None:
        if not self._filter:
            self._filter = bytearray(self._slots)
        flt, mask = self._filter, self._mask
        for key_digest in generation.sorted_keys:
            slot = key_digest & mask
            if flt[slot] != _SATURATED:
                flt[slot] += step

    def _drop_oldest(self) -> _Generation:
        if self._closed:
            dropped = self._closed.popleft()
            self._count_into_filter(dropped, -1)
        else:
            dropped, self._open = self._open, _Generation(-math.inf, -math.inf)
        self._count -= len(dropped)
        return dropped

    def expire(self, now_s: float) -> None:
        """Forget generations whose newest key is older than the retention."""
        while self._count and self._oldest().newest_s + self._retention_s <= now_s:
            self._drop_oldest()
        if self.shortened_to_s is not None and (
            not self._count or self._oldest().oldest_s + self._retention_s <= now_s
        ):
            self.shortened_to_s = None

    def _oldest(self) -> _Generation:
        return self._closed[0] if self._closed else self._open

    def _enforce_cap(self, now_s: float) -> None:
        # Drop the oldest generation only while the newest ``max_keys`` stay remembered.
        while self._closed and self._count - len(self._closed[0]) >= self._max_keys:
            dropped = self._drop_oldest()
            if dropped.newest_s + self._retention_s > now_s:
                self.shortened_to_s = now_s - dropped.newest_s
