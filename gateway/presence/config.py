"""Configuration of presence: per-zone thresholds, the RSSI filter, exit timeouts, the table cap.

Parsed once with the daemon configuration and handed to :class:`gateway.presence.PresenceTracker`.
The defaults are calibrated for a dock door whose gateway hangs in the door frame, with the
neighbouring doors 12 m away and trailers parked 8 m out (the simulator's cross-dock layout,
path-loss exponent 2.2, tags at -59 dBm at 1 m, 4 dB shadowing); docs/presence.md shows the
numbers and the procedure to calibrate a real door.
"""

from __future__ import annotations

from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_ENTER_RSSI_DBM",
    "DEFAULT_EXIT_RSSI_DBM",
    "DEFAULT_MAX_TAGS",
    "PresenceConfig",
    "ZoneConfig",
]

#: A tag at -59 dBm / 1 m and exponent 2.2 averages -72 dBm at 3.9 m. The nearest spot of a
#: neighbour's dock lane (12 m along the wall, 4 m lanes) is 8.2 m away: -79 dBm on average, 7 dB
#: (five standard deviations of the smoothed value) below this, so a neighbour never enters.
DEFAULT_ENTER_RSSI_DBM: Final = -72.0
#: 10 dB of hysteresis, seven standard deviations of the smoothed value: no tag cycles, wherever
#: it sits (a tag parked midway between the levels made no enter/exit pair in two million adverts
#: of 4 dB noise). A tag back in a trailer parked at the door (-87 dBm or weaker through its
#: body) is below it and leaves although still heard.
DEFAULT_EXIT_RSSI_DBM: Final = -82.0
#: Five smoothed values in a row above the enter level: a neighbour's lucky run of noise, or a
#: tag parked just outside the zone, does not make it.
DEFAULT_ENTER_SIGHTINGS: Final = 5
#: Three in a row below the exit level: a fade is not a departure.
DEFAULT_EXIT_SIGHTINGS: Final = 3
#: Eight samples halve the 4 dB shadowing noise to 1.4 dB (eight seconds at the usual 1 Hz).
DEFAULT_WINDOW_SAMPLES: Final = 8
#: 2.5 standard deviations of the 4 dB shadowing: noise passes, fades and reflections are clipped.
DEFAULT_FENCE_DB: Final = 10.0
#: Four samples in a row beyond the fence on the same side are a move, not noise: the window
#: restarts at their level. (With three, noise restarted a tag's window a few times a month and
#: could drop a tag at the enter level below the exit level.)
DEFAULT_FENCE_RESTART_SIGHTINGS: Final = 4
#: Exit after three missed advertising intervals, but never sooner than 4 s: the goal is an
#: exit within 3 intervals + 5 s of the tag leaving, and the tick that decides runs once a second.
DEFAULT_TIMEOUT_INTERVAL_MULTIPLE: Final = 3.0
DEFAULT_TIMEOUT_FLOOR_S: Final = 4.0
#: A tag that advertises every 30 s or slower still leaves within a minute.
DEFAULT_TIMEOUT_CEILING_S: Final = 60.0
#: After a scanner (re)starts, BlueZ needs a few seconds to start discovery and hear everyone
#: again; tags get this long before their silence counts.
DEFAULT_RESTART_GRACE_S: Final = 10.0
#: A cross-dock door sees a few trailer loads (hundreds to ~2,000 items) plus what it overhears
#: from its neighbours; 20,000 (tag, zone) entries of under 1 KB each stay below 20 MB.
DEFAULT_MAX_TAGS: Final = 20_000
#: An absent tag not heard for two minutes is forgotten (its interval is re-learned in seconds).
DEFAULT_FORGET_AFTER_S: Final = 120.0


class ZoneConfig(BaseModel):
    """The rules of one zone (a dock door, a vehicle's cargo space)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enter_rssi_dbm: float = Field(default=DEFAULT_ENTER_RSSI_DBM, ge=-127.0, le=20.0)
    """dBm. The smoothed RSSI must reach this for ``enter_sightings`` adverts in a row before
    the tag is present: it sets the zone's radius (see docs/presence.md for the calibration)."""
    exit_rssi_dbm: float = Field(default=DEFAULT_EXIT_RSSI_DBM, ge=-127.0, le=20.0)
    """dBm, below ``enter_rssi_dbm`` (hysteresis). A present tag whose smoothed RSSI stays under
    this for ``exit_sightings`` adverts has left although it is still heard."""
    enter_sightings: int = Field(default=DEFAULT_ENTER_SIGHTINGS, ge=1, le=1000)
    """Adverts in a row with the smoothed RSSI at or above the enter level: evidence for enter."""
    exit_sightings: int = Field(default=DEFAULT_EXIT_SIGHTINGS, ge=1, le=1000)
    """Adverts in a row with the smoothed RSSI below the exit level: evidence for exit."""
    window_samples: int = Field(default=DEFAULT_WINDOW_SAMPLES, ge=3, le=64)
    """Samples in the fenced mean (the last N adverts). More: smoother, slower to follow moves."""
    fence_db: float = Field(default=DEFAULT_FENCE_DB, gt=0.0, le=60.0)
    """dB. A sample further than this from the current mean is clipped to the fence, so one
    deep fade or reflection moves the mean by at most fence / N."""
    fence_restart_sightings: int = Field(default=DEFAULT_FENCE_RESTART_SIGHTINGS, ge=1, le=64)
    """Samples in a row beyond the fence on the same side restart the window at their mean:
    the tag really moved (picked up, put in a trailer), follow it at once."""
    timeout_interval_multiple: float = Field(default=DEFAULT_TIMEOUT_INTERVAL_MULTIPLE, gt=0.0)
    """A present tag not heard for this many learned advertising intervals has left (clamped to
    the floor and the ceiling below)."""
    timeout_floor_s: float = Field(default=DEFAULT_TIMEOUT_FLOOR_S, gt=0.0)
    """Seconds. Never time out sooner: a fast tag must not leave on a short radio gap."""
    timeout_ceiling_s: float = Field(default=DEFAULT_TIMEOUT_CEILING_S, gt=0.0)
    """Seconds. Never time out later: also the timeout of a tag whose interval is not learned."""
    restart_grace_s: float = Field(default=DEFAULT_RESTART_GRACE_S, ge=0.0)
    """Seconds after a scanner (re)starts during which tags it has not heard again are
    ``unknown``, not gone: a bluetoothd restart is not a wave of departures."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.exit_rssi_dbm >= self.enter_rssi_dbm:
            raise ValueError("exit_rssi_dbm must be below enter_rssi_dbm (hysteresis)")
        if self.timeout_floor_s > self.timeout_ceiling_s:
            raise ValueError("timeout_floor_s must not exceed timeout_ceiling_s")
        return self


class PresenceConfig(BaseModel):
    """Presence for every zone of this gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_tags: int = Field(default=DEFAULT_MAX_TAGS, ge=1)
    """Cap on (tag, zone) entries. A new tag past the cap evicts the least recently heard entry
    (counted in ``PresenceStats.evicted``), so a crowd of tags bounds memory and CPU."""
    forget_after_s: float = Field(default=DEFAULT_FORGET_AFTER_S, gt=0.0)
    """Seconds. An absent tag not heard for this long is dropped (``PresenceStats.forgotten``)."""
    defaults: ZoneConfig = ZoneConfig()
    """Rules of every zone without its own entry in ``zones``."""
    zones: dict[str, ZoneConfig] = Field(default_factory=dict)
    """Per-zone rules by zone name; the fields a zone leaves out come from ``defaults``."""

    @model_validator(mode="before")
    @classmethod
    def _inherit_defaults(cls, data: Any) -> Any:
        """A zone given as a table only overrides what it names; the rest comes from defaults."""
        if not isinstance(data, dict) or not isinstance(data.get("zones"), dict):
            return data
        base = data.get("defaults", {})
        if isinstance(base, ZoneConfig):
            base = base.model_dump(exclude_unset=True)
        if not isinstance(base, dict):
            return data
        zones = {
            name: {**base, **zone} if isinstance(zone, dict) else zone
            for name, zone in data["zones"].items()
        }
        return {**data, "zones": zones}

    def zone(self, name: str) -> ZoneConfig:
        """The rules of zone ``name``."""
        return self.zones.get(name, self.defaults)
