"""Is every part of the pipeline still making progress? What the watchdog asks before it pings.

A stage is a loop that waits for its input (a driver's queue, a timer, the writer's queue) and
then works on one item. Waiting is healthy however long it lasts: a dock door with no tags has
nothing to do. Working on one item for longer than a stall limit is not: an ``await`` that never
returns (a serial write to a hung device, a commit on a disk that stopped answering) leaves the
event loop running, so a ping sent from the loop alone would keep a gateway that delivers
nothing alive forever. :class:`Liveness` keeps, per stage, since when it has been busy with its
current item; :meth:`Liveness.stalled` lists the stages busy for longer than the limit. The
uplink's publisher reports its outbox work the same way (:meth:`Liveness.working` is its
``busy`` hook), without importing this module.

For the daemon's end-to-end test, ``wedge`` names stages that hang on their first item on
purpose (set from ``TAGRELAY_TEST_WEDGE_STAGE`` in the daemon's environment, never in a unit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, TypeVar

__all__ = ["WEDGE_ENV", "Liveness", "StageBeat", "Stall"]

#: The daemon's test hook: comma-separated stage names that hang on their first item.
WEDGE_ENV: Final = "TAGRELAY_TEST_WEDGE_STAGE"

T = TypeVar("T")


class StageBeat:
    """One stage's state: idle (waiting for input) or busy since a monotonic time."""

    __slots__ = ("_now", "busy_since", "items", "name")

    def __init__(self, name: str, now: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._now = now
        self.busy_since: float | None = None
        #: Items finished: progress, for status and tests.
        self.items = 0

    def busy(self) -> None:
        self.busy_since = self._now()

    def idle(self) -> None:
        if self.busy_since is not None:
            self.items += 1
        self.busy_since = None


@dataclass(frozen=True, slots=True)
class Stall:
    """A stage busy with one item for ``busy_s`` seconds."""

    stage: str
    busy_s: float

    def __str__(self) -> str:
        return f"{self.stage} busy for {self.busy_s:.0f} s"


class Liveness:
    """The beats of all stages. ``now`` is the clock they are stamped with: the real monotonic
    clock (the watchdog counts real seconds, also when a simulation runs scenario time faster)."""

    def __init__(
        self, now: Callable[[], float] = time.monotonic, *, wedge: Collection[str] = ()
    ) -> None:
        self._now = now
        self._beats: dict[str, StageBeat] = {}
        self._wedge = frozenset(wedge)

    def beat(self, name: str) -> StageBeat:
        """The beat of stage ``name`` (created idle on first use)."""
        beat = self._beats.get(name)
        if beat is None:
            beat = self._beats[name] = StageBeat(name, self._now)
        return beat

    def idle(self, name: str) -> None:
        """Stage ``name`` is not working on anything (it ended, failed or is restarting)."""
        self.beat(name).idle()

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self._beats)

    def stalled(self, limit_s: float) -> list[Stall]:
        """Stages busy with one item for more than ``limit_s`` seconds."""
        now = self._now()
        return [
            Stall(b.name, now - b.busy_since)
            for b in self._beats.values()
            if b.busy_since is not None and now - b.busy_since > limit_s
        ]

    async def each(self, name: str, source: AsyncIterable[T]) -> AsyncIterator[T]:
        """``source``'s items, with the stage idle while it waits and busy while the caller
        works on an item (until it asks for the next)."""
        beat = self.beat(name)
        iterator = aiter(source)
        try:
            while True:
                beat.idle()
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
                beat.busy()
                await self._maybe_wedge(name)
                yield item
        finally:
            beat.idle()

    @asynccontextmanager
    async def working(self, name: str) -> AsyncIterator[None]:
        """The stage is busy for the ``async with`` block (one round of a timer stage)."""
        beat = self.beat(name)
        beat.busy()
        try:
            await self._maybe_wedge(name)
            yield
        finally:
            beat.idle()

    async def _maybe_wedge(self, name: str) -> None:
        if name in self._wedge:
            await asyncio.get_running_loop().create_future()  # until cancelled
