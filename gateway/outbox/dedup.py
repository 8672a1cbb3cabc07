"""The outbox's memory of de-duplication keys: which keys were accepted in the last day.

A SmartLabel reader re-sends a frame until it sees the ACK, with a back-off of up to 60 s, and
all un-ACKed frames at once when its serial line comes back; docs/protocol.md promises that the
gateway recognises a (label, seq) it committed for at least 24 hours. :class:`DedupMemory` keeps
the 64-bit digests of the keys accepted during ``retention_s`` of store time, in generations of
Python sets, so that whole generations expire at once and lookups stay O(generations).

Memory is capped at ``max_keys`` (about 70 bytes a key): past the cap the oldest generation is
forgotten early and ``shortened_to_s`` tells by how much. The store writes the digests of every
commit to disk (8 bytes a key, appended, no index) and refills this memory from them at start.
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

#: The memory is split into this many generations: expiry and the key cap act on a whole
#: generation, so at most 1/GENERATIONS of the cap is held beyond it.
GENERATIONS: Final = 8


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
    keys: set[int] = field(default_factory=set)


class DedupMemory:
    """Digests of keys accepted in the last ``retention_s`` of store time (at most about
    ``max_keys`` of them). Not thread-safe: used by the store's single writer thread."""

    def __init__(self, retention_s: float, max_keys: int) -> None:
        self._retention_s = retention_s
        self._max_keys = max_keys
        self._generation_keys = max(1, math.ceil(max_keys / GENERATIONS))
        self._generation_span_s = retention_s / GENERATIONS
        self._generations: deque[_Generation] = deque()
        self._count = 0
        #: Age of the oldest key dropped by the cap while younger than ``retention_s``;
        #: ``None`` while the full retention holds.
        self.shortened_to_s: float | None = None

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key_digest: int) -> bool:
        return any(key_digest in g.keys for g in self._generations)

    def add(self, digests: Iterable[int], store_s: float) -> None:
        """Remember keys accepted at ``store_s`` (non-decreasing from call to call)."""
        for key_digest in digests:
            current = self._generations[-1] if self._generations else None
            if (
                current is None
                or len(current.keys) >= self._generation_keys
                or store_s - current.oldest_s >= self._generation_span_s
            ):
                current = _Generation(store_s, store_s)
                self._generations.append(current)
            if key_digest not in current.keys:
                current.keys.add(key_digest)
                self._count += 1
            current.newest_s = max(current.newest_s, store_s)
        self._enforce_cap(store_s)

    def expire(self, now_s: float) -> None:
        """Forget generations whose newest key is older than the retention."""
        while self._generations and self._generations[0].newest_s + self._retention_s <= now_s:
            self._count -= len(self._generations.popleft().keys)
        if self.shortened_to_s is not None and (
            not self._generations or self._generations[0].oldest_s + self._retention_s <= now_s
        ):
            self.shortened_to_s = None

    def _enforce_cap(self, now_s: float) -> None:
        # Drop the oldest generation only while the newest ``max_keys`` stay remembered.
        while (
            len(self._generations) > 1
            and self._count - len(self._generations[0].keys) >= self._max_keys
        ):
            dropped = self._generations.popleft()
            self._count -= len(dropped.keys)
            if dropped.newest_s + self._retention_s > now_s:
                self.shortened_to_s = now_s - dropped.newest_s
