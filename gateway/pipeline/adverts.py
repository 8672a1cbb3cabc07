"""BLE adverts to presence changes and sensor readings: decode, identify, track, rate-limit.

:class:`AdvertProcessor` is the BLE half of the pipeline without any I/O. For each
:class:`~drivers.ble.RawAdvert` it decodes the manufacturer and service data
(``protocols.ble``), turns each recognised record into a tag id (``gateway.registry``), feeds a
:class:`~gateway.presence.Sighting` to the presence tracker and offers the tag's sensor values
to the telemetry limiter. What comes out (presence changes, readings that are due) the stage
around it turns into events.

Tags repeat the same payload for hours while only the RSSI changes, so the decoded form of each
address's latest payload is kept: a repeat costs a comparison, not a decode, and a payload that
changes every time (a Ruuvi's counter) simply replaces it. Adverts of formats we do not track
(phones, headphones, unknown company ids) are counted and create no per-tag state; the cache
of addresses has a cap as well.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from drivers.ble import RawAdvert
from gateway.custody import CustodyEngine, CustodyResult
from gateway.pipeline.config import CONDITIONS_SAMPLE_S
from gateway.pipeline.telemetry import TelemetryLimiter
from gateway.presence import PresenceChange, PresenceTracker, Sighting
from gateway.registry import tag_id
from protocols.ble import (
    AdvertError,
    EddystoneTlm,
    Ruuvi3,
    Ruuvi5,
    RuuviE1,
    SmartLabelAdv,
    decode_advertisement,
)

__all__ = ["DECODE_CACHE_SIZE", "AdvertProcessor", "Reading"]

#: Addresses whose latest decoded payload is remembered: every tag a busy door hears plus the
#: phones around it. Past the cap the cache starts over (cheaper than LRU on every hit).
DECODE_CACHE_SIZE: Final = 50_000


@dataclass(frozen=True, slots=True)
class Reading:
    """Sensor values of one tag that the telemetry limiter let through."""

    tag: str
    via: str
    zone: str | None
    format: str
    values: Mapping[str, float]
    monotonic: float


@dataclass(frozen=True, slots=True)
class _Decoded:
    """What one (address, payload) means: the tags in it and the values they carry."""

    tags: tuple[tuple[str, str, Mapping[str, float] | None], ...]  # (tag, format, values)


_EMPTY: Final = _Decoded(())


def _values(advert: object) -> Mapping[str, float] | None:
    """The sensor values a decoded advert carries, with units in the names."""
    values: dict[str, float] = {}
    if isinstance(advert, Ruuvi3 | Ruuvi5 | RuuviE1):
        if advert.temperature_c is not None:
            values["temperature_c"] = advert.temperature_c
        if advert.humidity_pct is not None:
            values["humidity_pct"] = advert.humidity_pct
        if advert.pressure_pa is not None:
            values["pressure_pa"] = float(advert.pressure_pa)
        if advert.battery_v is not None:
            values["battery_mv"] = round(advert.battery_v * 1000.0)
        if advert.acc_x_g is not None:
            values["acc_x_g"] = advert.acc_x_g
        if advert.acc_y_g is not None:
            values["acc_y_g"] = advert.acc_y_g
        if advert.acc_z_g is not None:
            values["acc_z_g"] = advert.acc_z_g
    elif isinstance(advert, SmartLabelAdv | EddystoneTlm):
        if advert.temperature_c is not None:
            values["temperature_c"] = advert.temperature_c
        if advert.battery_mv is not None:
            values["battery_mv"] = float(advert.battery_mv)
    return values or None


class AdvertProcessor:
    """Decode, identify, track presence and rate-limit telemetry for raw adverts."""

    def __init__(
        self,
        zones: Mapping[str, str],
        presence: PresenceTracker,
        telemetry: TelemetryLimiter,
        *,
        sample_interval_s: float = CONDITIONS_SAMPLE_S,
        cache_size: int = DECODE_CACHE_SIZE,
        custody: CustodyEngine | None = None,
        asset_of: Callable[[str], str | None] = lambda tag: None,
    ) -> None:
        #: adapter -> zone
        self._zones = dict(zones)
        self._presence = presence
        self._telemetry = telemetry
        #: address -> (payload, what it means)
        self._cache: dict[str, tuple[tuple[object, ...], _Decoded]] = {}
        self._cache_size = cache_size
        self._sample_s = sample_interval_s
        self._custody = custody
        self._asset_of = asset_of
        #: tag -> monotonic time its values last went to the condition monitor
        self._sampled: dict[str, float] = {}
        self.adverts = 0
        self.untracked = 0
        self.decode_errors: collections.Counter[str] = collections.Counter()

    def process(
        self,
        raw: RawAdvert,
        changes: list[PresenceChange],
        readings: list[Reading],
        samples: list[Reading] | None = None,
        custody: list[CustodyResult] | None = None,
    ) -> None:
        """Handle one advert; append presence changes, readings due for telemetry, (when
        ``samples`` is given) readings due for the condition monitor and (when ``custody`` is
        given) what the custody engine concluded to the lists."""
        self.adverts += 1
        payload = (*raw.manufacturer_data.items(), *raw.service_data.items())
        cached = self._cache.get(raw.address)
        if cached is not None and cached[0] == payload:
            decoded = cached[1]
        else:
            decoded = self._decode(raw)
            if cached is None and len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[raw.address] = (payload, decoded)
        if not decoded.tags:
            self.untracked += 1
            return
        zone = self._zones.get(raw.adapter)
        for tag, fmt, values in decoded.tags:
            if zone is not None:
                change = self._presence.observe(
                    Sighting(tag, raw.adapter, zone, raw.rssi, raw.monotonic)
                )
                if change is not None:
                    changes.append(change)
                if custody is not None and self._custody is not None:
                    found = self._custody.observe(
                        tag, self._asset_of(tag), zone, raw.rssi, raw.monotonic
                    )
                    if found:
                        custody.extend(found)
            if values is None:
                continue
            if self._telemetry.offer(tag, values, raw.monotonic):
                readings.append(Reading(tag, raw.adapter, zone, fmt, values, raw.monotonic))
            if samples is not None:
                last = self._sampled.get(tag)
                if last is None or raw.monotonic - last >= self._sample_s:
                    if last is None and len(self._sampled) >= self._cache_size:
                        self._sampled.clear()
                    self._sampled[tag] = raw.monotonic
                    samples.append(Reading(tag, raw.adapter, zone, fmt, values, raw.monotonic))

    def _decode(self, raw: RawAdvert) -> _Decoded:
        try:
            adverts = decode_advertisement(raw.manufacturer_data, raw.service_data)
        except AdvertError as exc:
            self.decode_errors[exc.reason.value] += 1
            return _EMPTY
        tags = []
        for advert in adverts:
            tag = tag_id(advert, raw.address)
            if tag is not None:
                tags.append((tag, advert.format, _values(advert)))
        return _Decoded(tuple(tags)) if tags else _EMPTY
