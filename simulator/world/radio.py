"""Radio and noise: log-distance path loss and reproducible Gaussian draws.

Every random number in the world is drawn from a generator seeded by a hash of the scenario seed
and what the number is for (which tag, which gateway, which advertising interval). That makes the
world a pure function of simulated time: the same instant asked twice, in any order or in another
process, gives the same RSSI and the same sensor reading.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Final

__all__ = ["MIN_DISTANCE_M", "mean_rssi_dbm", "seeded_gauss", "seeded_uniform"]

#: The path-loss formula is only valid in the far field; closer than this it is clamped (a tag
#: lying on the gateway does not get infinite signal).
MIN_DISTANCE_M: Final = 0.5


def _rng(seed: int, keys: tuple[object, ...]) -> random.Random:
    text = "\x1f".join(str(k) for k in (seed, *keys)).encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def seeded_gauss(seed: int, *keys: object, sigma: float = 1.0) -> float:
    """A N(0, sigma) draw that depends only on ``seed`` and ``keys``."""
    if sigma == 0.0:
        return 0.0
    return _rng(seed, keys).gauss(0.0, sigma)


def seeded_uniform(seed: int, *keys: object, low: float = 0.0, high: float = 1.0) -> float:
    """A uniform draw in [low, high) that depends only on ``seed`` and ``keys``."""
    return _rng(seed, keys).uniform(low, high)


def mean_rssi_dbm(
    tx_power_1m_dbm: float, distance_m: float, exponent: float, extra_loss_db: float = 0.0
) -> float:
    """Log-distance path loss without shadowing: the RSSI a receiver sees on average."""
    d = max(distance_m, MIN_DISTANCE_M)
    return tx_power_1m_dbm - 10.0 * exponent * math.log10(d) - extra_loss_db
