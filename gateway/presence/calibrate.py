"""Calibration: suggest a zone's enter and exit levels from a tag stood at the zone's edge.

The site engineer stands a tag where the zone should end (the far edge of the dock lane, the
back of the cargo space) for a minute and records the RSSI its gateway hears; optionally a second
minute with the tag at the nearest spot of the neighbouring zone, heard by the same gateway.
:func:`suggest_thresholds` turns those samples into levels for :class:`ZoneConfig`, using the same
window length as the tracker's filter, and says what is wrong with the measurement when something
is. It is pure: the command line that records the samples lives elsewhere.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.presence.config import DEFAULT_WINDOW_SAMPLES, ZoneConfig

__all__ = [
    "MIN_CALIBRATION_SAMPLES",
    "CalibrationError",
    "ThresholdSuggestion",
    "suggest_thresholds",
]

#: Fewer samples than this cannot say anything about 4-8 dB noise (a median of 10 samples is
#: still ±2 dB off); a minute at 1 Hz is what the procedure asks for.
MIN_CALIBRATION_SAMPLES: Final = 10
#: Below this many samples the suggestion is given but flagged: the spread is not settled yet.
RECOMMENDED_CALIBRATION_SAMPLES: Final = 60
#: Standard deviations of the smoothed RSSI between the exit level and the enter level: with
#: seven, no tag cycles wherever it sits, even midway between the levels (docs/presence.md).
HYSTERESIS_SIGMAS: Final = 7.0
#: Never less hysteresis than this: real fades are heavier-tailed than the Gaussian estimate.
MIN_HYSTERESIS_DB: Final = 6.0
#: Standard deviations of the smoothed RSSI a neighbour's tag must stay below the enter level.
NEIGHBOUR_SIGMAS: Final = 5.0
#: Standard deviations of the smoothed RSSI the exit level should stay above the neighbour's
#: nearest spot, so that a tag carried there is released promptly.
RELEASE_SIGMAS: Final = 1.5
#: Scale from the median absolute deviation to a standard deviation for Gaussian noise.
MAD_TO_SIGMA: Final = 1.4826
#: A usable BLE receiver floor: an exit level below it is never crossed by RSSI (exits then
#: come from timeouts only).
RECEIVER_FLOOR_DBM: Final = -95.0
#: RSSI values a BLE receiver can report (HCI range).
_RSSI_RANGE: Final = (-127, 20)


class CalibrationError(ValueError):
    """The samples cannot give a suggestion (too few, or not RSSI values)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ThresholdSuggestion:
    """Levels for a zone, with the measurement they come from."""

    enter_rssi_dbm: float
    exit_rssi_dbm: float
    edge_median_dbm: float
    """The median RSSI of the tag at the zone's edge."""
    edge_sigma_db: float
    """Its spread (robust standard deviation, from the median absolute deviation)."""
    smoothed_sigma_db: float
    """The spread of the tracker's smoothed value at the edge (edge_sigma / sqrt(window))."""
    samples: int
    neighbour_median_dbm: float | None
    """The median RSSI of the tag at the neighbouring zone's nearest spot, when measured."""
    warnings: tuple[str, ...]
    """What the engineer should know or fix before using the levels."""

    def apply(self, zone: ZoneConfig) -> ZoneConfig:
        """``zone`` with these levels."""
        return zone.model_copy(
            update={"enter_rssi_dbm": self.enter_rssi_dbm, "exit_rssi_dbm": self.exit_rssi_dbm}
        )


def _checked(samples: Sequence[int], what: str) -> list[int]:
    values = list(samples)
    if len(values) < MIN_CALIBRATION_SAMPLES:
        raise CalibrationError(
            f"{what}: {len(values)} samples; stand the tag there for at least"
            f" {MIN_CALIBRATION_SAMPLES} adverts (a minute is better)"
        )
    lo, hi = _RSSI_RANGE
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi]
    if bad:
        raise CalibrationError(f"{what}: not RSSI values in dBm ({lo}..{hi}): {bad[:3]}")
    return values


def suggest_thresholds(
    rssi_samples: Sequence[int],
    *,
    neighbour_samples: Sequence[int] | None = None,
    window_samples: int = DEFAULT_WINDOW_SAMPLES,
) -> ThresholdSuggestion:
    """Suggest enter / exit levels from RSSI samples of a tag stood at the zone's edge.

    The enter level is the edge's median: a tag at the edge is on the boundary, nearer ones are
    in, further ones out. The exit level sits ``HYSTERESIS_SIGMAS`` smoothed standard deviations
    (at least ``MIN_HYSTERESIS_DB``) below it. With ``neighbour_samples`` (the same gateway
    hearing a tag at the neighbouring zone's nearest spot) the enter level is raised, if needed,
    to ``NEIGHBOUR_SIGMAS`` standard deviations above the neighbour: that shrinks this zone, and
    the warning says so.
    """
    if window_samples < 1:
        raise CalibrationError(f"window_samples must be at least 1, not {window_samples}")
    edge = _checked(rssi_samples, "edge samples")
    warnings: list[str] = []
    if len(edge) < RECOMMENDED_CALIBRATION_SAMPLES:
        warnings.append(
            f"only {len(edge)} samples: record {RECOMMENDED_CALIBRATION_SAMPLES} or more"
            " (a minute at 1 Hz) for a settled spread"
        )
    median = float(statistics.median(edge))
    mad = statistics.median(abs(v - median) for v in edge)
    # Integer RSSI: a MAD of 0 still hides up to half a dB of spread.
    sigma = max(MAD_TO_SIGMA * mad, 0.5)
    smoothed_sigma = sigma / math.sqrt(window_samples)
    enter = float(round(median))
    neighbour_median: float | None = None
    if neighbour_samples is not None:
        neighbour = _checked(neighbour_samples, "neighbour samples")
        neighbour_median = float(statistics.median(neighbour))
        n_mad = statistics.median(abs(v - neighbour_median) for v in neighbour)
        n_sigma = max(MAD_TO_SIGMA * n_mad, 0.5) / math.sqrt(window_samples)
        floor = float(math.ceil(neighbour_median + NEIGHBOUR_SIGMAS * n_sigma))
        if enter < floor:
            warnings.append(
                f"the neighbour's tag is heard at {neighbour_median:.0f} dBm, too close to the"
                f" edge's {median:.0f} dBm: enter raised to {floor:.0f} dBm, so the zone ends"
                " nearer the gateway than the marked edge (or move or shield the gateway)"
            )
            enter = floor
    hysteresis = max(MIN_HYSTERESIS_DB, HYSTERESIS_SIGMAS * smoothed_sigma)
    exit_level = float(math.floor(enter - hysteresis))
    if exit_level < _RSSI_RANGE[0]:
        raise CalibrationError(
            f"no room for an exit level {hysteresis:.0f} dB under the edge's {median:.0f} dBm:"
            " the edge is too weak or its RSSI scatters too much; measure nearer the gateway"
        )
    if neighbour_median is not None and exit_level < neighbour_median + RELEASE_SIGMAS * (
        sigma / math.sqrt(window_samples)
    ):
        warnings.append(
            f"exit level {exit_level:.0f} dBm is not clearly above the neighbour's"
            f" {neighbour_median:.0f} dBm: a tag carried to the neighbour's nearest spot may stay"
            " present here for a while after the neighbour claims it (until it is carried further"
            " or noise takes it under the exit level)"
        )
    if exit_level < RECEIVER_FLOOR_DBM:
        warnings.append(
            f"exit level {exit_level:.0f} dBm is below the receiver floor ({RECEIVER_FLOOR_DBM:.0f}"
            " dBm): tags will leave by timeout only; consider a smaller zone"
        )
    if sigma > 8.0:
        warnings.append(
            f"the edge RSSI scatters by {sigma:.1f} dB (more than 8 dB): was the tag moved, or"
            " is it shadowed by a body or metal? measure again"
        )
    return ThresholdSuggestion(
        enter_rssi_dbm=enter,
        exit_rssi_dbm=exit_level,
        edge_median_dbm=median,
        edge_sigma_db=sigma,
        smoothed_sigma_db=smoothed_sigma,
        samples=len(edge),
        neighbour_median_dbm=neighbour_median,
        warnings=tuple(warnings),
    )
