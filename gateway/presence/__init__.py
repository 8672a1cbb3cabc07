"""Presence: which tracked tags are in which zone of this gateway, from their RSSI.

Pure domain logic (no I/O, time handed in): the pipeline's presence stage feeds it sightings and
ticks and turns its :class:`PresenceChange` values into ``presence.enter`` / ``presence.exit``
events. See docs/presence.md for the filter, the rules, the defaults and the calibration.
"""

from gateway.presence.calibrate import (
    MIN_CALIBRATION_SAMPLES,
    CalibrationError,
    ThresholdSuggestion,
    suggest_thresholds,
)
from gateway.presence.config import (
    DEFAULT_ENTER_RSSI_DBM,
    DEFAULT_EXIT_RSSI_DBM,
    DEFAULT_MAX_TAGS,
    PresenceConfig,
    ZoneConfig,
)
from gateway.presence.tracker import (
    PresenceChange,
    PresenceState,
    PresenceStats,
    PresenceTracker,
    Sighting,
)

__all__ = [
    "DEFAULT_ENTER_RSSI_DBM",
    "DEFAULT_EXIT_RSSI_DBM",
    "DEFAULT_MAX_TAGS",
    "MIN_CALIBRATION_SAMPLES",
    "CalibrationError",
    "PresenceChange",
    "PresenceConfig",
    "PresenceState",
    "PresenceStats",
    "PresenceTracker",
    "Sighting",
    "ThresholdSuggestion",
    "ZoneConfig",
    "suggest_thresholds",
]
