"""What the condition monitor reads from each source: SmartLabel frames and BLE sensor adverts.

Pure adapters between the decoded messages of :mod:`protocols` and the monitor's readings, so
that the pipeline, the QA tool and the tests turn a frame into readings the same way. A label's
own times (the frame's ``label_time``, each history reading's ``time``) are mapped to UTC by
the caller's ``to_utc`` (the offset the reader's time sync established); an advert has no time
of its own and is stamped with the time it was heard. Values a device reported as "not
available" are skipped, never read as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeAlias

from gateway.conditions.monitor import ConditionMonitor
from gateway.conditions.profiles import Quantity
from gateway.conditions.results import ConditionResult
from protocols.ble import Ruuvi3, Ruuvi5, RuuviE1, SmartLabelAdv
from protocols.smartlabel import Environment, HistoryBatch, Shock

__all__ = [
    "LabelClock",
    "Reading",
    "SensorAdvert",
    "advert_acceleration_g",
    "advert_readings",
    "feed",
    "smartlabel_readings",
    "smartlabel_shock",
]

#: A label's own time (seconds, as on the wire) to gateway UTC time.
LabelClock: TypeAlias = Callable[[int], datetime]
#: The BLE adverts that carry sensor values.
SensorAdvert: TypeAlias = Ruuvi3 | Ruuvi5 | RuuviE1 | SmartLabelAdv

_MG_PER_G: Final = 1000.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one quantity at one time."""

    quantity: Quantity
    value: float
    at: datetime


def _both(temperature_c: float | None, humidity_pct: float | None, at: datetime) -> list[Reading]:
    out = []
    if temperature_c is not None:
        out.append(Reading(Quantity.TEMPERATURE_C, temperature_c, at))
    if humidity_pct is not None:
        out.append(Reading(Quantity.HUMIDITY_PCT, humidity_pct, at))
    return out


def smartlabel_readings(message: Environment | HistoryBatch, to_utc: LabelClock) -> list[Reading]:
    """The readings of an environment frame or of a history batch, each at its own time."""
    if isinstance(message, Environment):
        return _both(message.temperature_c, message.humidity_pct, to_utc(message.label_time))
    out: list[Reading] = []
    for reading in message.readings:
        out += _both(reading.temperature_c, reading.humidity_pct, to_utc(reading.time))
    return out


def smartlabel_shock(message: Shock) -> tuple[tuple[float, float, float], float]:
    """(signed peak per axis in g, pulse length in ms) of a shock frame."""
    return (
        (
            message.peak_x_mg / _MG_PER_G,
            message.peak_y_mg / _MG_PER_G,
            message.peak_z_mg / _MG_PER_G,
        ),
        float(message.duration_ms),
    )


def advert_readings(advert: SensorAdvert, at: datetime) -> list[Reading]:
    """Temperature and humidity of a Ruuvi or SmartLabel advert heard at ``at``."""
    if isinstance(advert, SmartLabelAdv):
        return _both(advert.temperature_c, None, at)
    return _both(advert.temperature_c, advert.humidity_pct, at)


def advert_acceleration_g(advert: SensorAdvert) -> tuple[float, float, float] | None:
    """A Ruuvi's instantaneous acceleration per axis (g, gravity included), if it has one.

    Feed it to :meth:`ConditionMonitor.observe_shock` with an unknown duration: an advert
    samples a moment, so it alarms only on profiles without a minimum pulse length.
    """
    if isinstance(advert, SmartLabelAdv):
        return None
    x, y, z = advert.acc_x_g, advert.acc_y_g, advert.acc_z_g
    if x is None or y is None or z is None:
        return None
    return (x, y, z)


def feed(
    monitor: ConditionMonitor, subject: str, readings: Iterable[Reading]
) -> list[ConditionResult]:
    """Hand readings to ``monitor``: per quantity, one reading alone, several as a batch (a
    history batch is merged with the series once, not once per reading)."""
    by_quantity: dict[Quantity, list[tuple[datetime, float]]] = {}
    for r in readings:
        by_quantity.setdefault(r.quantity, []).append((r.at, r.value))
    out: list[ConditionResult] = []
    for quantity, values in by_quantity.items():
        if len(values) == 1:
            at, value = values[0]
            out += monitor.observe(subject, quantity, value, at)
        else:
            out += monitor.observe_many(subject, quantity, values)
    return out
