"""Reconnect pacing: exponential backoff with full jitter, capped.

Full jitter (a uniform draw between zero and the exponential bound) spreads a fleet of gateways
that lost the same broker, so they do not all come back in the same second.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """``next_delay_s()`` after each failed attempt, ``reset()`` after a success."""

    def __init__(
        self,
        min_s: float,
        max_s: float,
        rng: random.Random | None = None,
        *,
        floor_fraction: float = 0.0,
    ) -> None:
        """``floor_fraction`` > 0 keeps each delay at least that fraction of its bound (for
        pacing that must not collapse to an immediate retry, such as a session takeover)."""
        if not 0 < min_s <= max_s:
            raise ValueError("need 0 < min_s <= max_s")
        if not 0.0 <= floor_fraction <= 1.0:
            raise ValueError("need 0 <= floor_fraction <= 1")
        self._floor = floor_fraction
        self._min_s = min_s
        self._max_s = max_s
        self._rng = rng if rng is not None else random.Random()
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt

    def bound_s(self) -> float:
        """The upper bound of the next delay: min_s * 2**attempt, capped at max_s."""
        # Cap the exponent so a broker gone for days cannot overflow the float.
        return min(self._max_s, self._min_s * 2.0 ** min(self._attempt, 60))

    def next_delay_s(self) -> float:
        bound = self.bound_s()
        delay = self._rng.uniform(self._floor * bound, bound)
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0
