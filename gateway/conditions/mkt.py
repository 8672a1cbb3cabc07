"""Mean kinetic temperature (USP <1079.2>), time-weighted.

MKT is the single constant temperature that would cause the same total degradation as the
observed temperatures, under Arrhenius kinetics with activation energy ΔH:

    MKT = (ΔH/R) / -ln( Σ wᵢ·exp(-ΔH/(R·Tᵢ)) / Σ wᵢ )        (temperatures in kelvin)

USP <1079.2> uses ΔH = 83.144 kJ/mol; with R = 8.3144 J/(mol·K) that is ΔH/R = 10,000 K
exactly, the value used here. With evenly spaced readings the weights are equal; tagrelay's
readings are not evenly spaced, so the monitor weights by time: it integrates exp(-ΔH/RT) over
each interval between two consecutive readings with the trapezoidal rule (the temperature is
taken as linear between readings) and divides by the time covered. Intervals longer than the
profile's gap limit are left out (neither numerator nor denominator): a gap is unknown, not
assumed to be at either neighbour's temperature.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

__all__ = [
    "DELTA_H_OVER_R_K",
    "KELVIN_OFFSET",
    "arrhenius_weight",
    "mean_kinetic_temperature_c",
    "mkt_from_sums_c",
]

#: ΔH/R of USP <1079.2>: 83.144 kJ/mol over 8.3144 J/(mol·K).
DELTA_H_OVER_R_K: Final = 10_000.0
#: 0 °C in kelvin.
KELVIN_OFFSET: Final = 273.15


def arrhenius_weight(temperature_c: float) -> float:
    """exp(-ΔH/(R·T)) for a temperature in °C."""
    return math.exp(-DELTA_H_OVER_R_K / (temperature_c + KELVIN_OFFSET))


def mkt_from_sums_c(weighted_sum: float, duration_s: float) -> float | None:
    """MKT in °C from ∫exp(-ΔH/RT)dt and the time it covers; ``None`` when nothing is covered."""
    if duration_s <= 0 or weighted_sum <= 0:
        return None
    return DELTA_H_OVER_R_K / -math.log(weighted_sum / duration_s) - KELVIN_OFFSET


def mean_kinetic_temperature_c(samples: Iterable[tuple[float, float]]) -> float | None:
    """MKT in °C of ``(duration, temperature °C)`` pairs, each temperature held for its duration.

    This is the textbook time-weighted form (each reading stands for its interval); the monitor
    uses the same sums with trapezoidal weights between readings.
    """
    total = 0.0
    weighted = 0.0
    for duration, temperature_c in samples:
        if duration < 0:
            raise ValueError("durations must not be negative")
        total += duration
        weighted += duration * arrhenius_weight(temperature_c)
    return mkt_from_sums_c(weighted, total)
