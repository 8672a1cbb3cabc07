"""Device settings: how long a device may stay silent, its battery chemistry and thresholds,
and when its readings count as stuck (see :mod:`gateway.conditions.health`).

Data only, part of a profile (``device``) and settable per device in the config.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BATTERY_THRESHOLDS_MV",
    "BatteryThreshold",
    "Chemistry",
    "DeviceSettings",
]


class Chemistry(enum.StrEnum):
    """Battery chemistries with published discharge curves (thresholds below)."""

    #: Lithium manganese dioxide coin cell: CR2032, CR2450, CR2477 (SmartLabels, Ruuvi tags).
    LI_MNO2_COIN = "li-mno2-coin"
    #: Lithium thionyl chloride bobbin cell: ER14505 / LS14500 class (long-life loggers).
    LI_SOCL2 = "li-socl2"
    #: Zinc manganese dioxide (alkaline) AA / AAA, per cell.
    ALKALINE = "alkaline"
    #: Rechargeable lithium ion (LiCoO2 / NMC), per cell.
    LI_ION = "li-ion"


@dataclass(frozen=True, slots=True)
class BatteryThreshold:
    """Per cell: ``low_mv`` and below is low; back at ``ok_mv`` or above is recovered (the gap
    is the hysteresis: a cell's voltage rises when it warms up or rests after a radio burst)."""

    low_mv: int
    ok_mv: int


#: Low-battery thresholds per cell, read under the device's own load (what it reports).
BATTERY_THRESHOLDS_MV: Final[dict[Chemistry, BatteryThreshold]] = {
    # Energizer CR2032 datasheet: nominal 3.0 V, a flat discharge near 2.9 V for most of the
    # capacity, rated capacity to an end-point of 2.0 V. Under a BLE radio's pulse load the
    # voltage of a cell near the end of its plateau sags below 2.5 V, and below about 2.0 V
    # the radio browns out: 2.5 V leaves the last part of the capacity to replace the label.
    Chemistry.LI_MNO2_COIN: BatteryThreshold(low_mv=2500, ok_mv=2650),
    # Saft LS 14500 datasheet: nominal 3.6 V, a very flat plateau (about 3.6 V at logger
    # currents) until close to the end, cut-off 2.0 V. The voltage says nothing until the
    # plateau ends, so the threshold sits just below it: 3.3 V.
    Chemistry.LI_SOCL2: BatteryThreshold(low_mv=3300, ok_mv=3450),
    # Energizer E91 (AA) datasheet: nominal 1.5 V, a sloping discharge, capacity rated to a
    # 0.8 V cut-off. At 1.1 V a cell is on the steep end of its curve.
    Chemistry.ALKALINE: BatteryThreshold(low_mv=1100, ok_mv=1200),
    # Lithium-ion cells (Battery University BU-501, cell makers' datasheets): 4.2 V full,
    # 3.6-3.7 V nominal, discharge cut-off 2.5-3.0 V; below 3.5 V at a light load only the
    # last few per cent of the charge remain.
    Chemistry.LI_ION: BatteryThreshold(low_mv=3500, ok_mv=3650),
}

#: Defaults of :class:`DeviceSettings` (docs/conditions.md explains each).
DEFAULT_SILENT_FACTOR: Final = 4.0
DEFAULT_SILENT_FLOOR_S: Final = 300.0
DEFAULT_SILENT_UNLEARNED_S: Final = 900.0
DEFAULT_BATTERY_READINGS: Final = 3
DEFAULT_STUCK_AFTER_S: Final = 3600.0
DEFAULT_STUCK_READINGS: Final = 20


class DeviceSettings(BaseModel):
    """How long a device may stay silent, its battery, and when its readings count as stuck.

    Part of a profile (``device``), and settable per device in the config.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Silent when nothing was heard for ``silent_factor`` × the learned reporting interval ...
    silent_factor: float = Field(default=DEFAULT_SILENT_FACTOR, ge=1.0, le=1000.0)
    #: ... but never sooner than this, seconds (a device on a 1 s advert interval is not silent
    #: after a 4 s radio shadow).
    silent_floor_s: float = Field(default=DEFAULT_SILENT_FLOOR_S, gt=0.0, le=30 * 86400.0)
    #: Until two reports gave an interval: silent after this long, seconds.
    silent_unlearned_s: float = Field(default=DEFAULT_SILENT_UNLEARNED_S, gt=0.0)
    #: ``None``: no low-battery check by voltage (a device's own low-battery flag still counts).
    battery_chemistry: Chemistry | None = None
    #: Cells in series (two AA alkaline cells: 2); thresholds scale with it.
    battery_cells: int = Field(default=1, ge=1, le=8)
    #: Overrides of the chemistry's thresholds, millivolts for the whole battery.
    battery_low_mv: int | None = Field(default=None, gt=0, le=50_000)
    battery_ok_mv: int | None = Field(default=None, gt=0, le=50_000)
    #: A low or recovered battery needs this many readings in a row (one radio burst that
    #: sags the voltage, or a cold morning, is not a low battery).
    battery_readings: int = Field(default=DEFAULT_BATTERY_READINGS, ge=1, le=100)
    #: Stuck: the same value, to within ``stuck_tolerance`` (the quantity's unit), for at least
    #: ``stuck_after_s`` seconds of reading time AND at least ``stuck_readings`` readings.
    #: ``None`` disables the check. A real sensor at 0.01 °C resolution never repeats itself
    #: 20 times over an hour; a frozen ADC or a firmware repeating its last value does.
    stuck_after_s: float | None = Field(default=DEFAULT_STUCK_AFTER_S, gt=0.0)
    stuck_readings: int = Field(default=DEFAULT_STUCK_READINGS, ge=2, le=100_000)
    stuck_tolerance: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _battery(self) -> Self:
        low, ok = self.battery_low_mv, self.battery_ok_mv
        if self.battery_chemistry is None and (low is None) != (ok is None):
            raise ValueError("without a chemistry set both battery_low_mv and battery_ok_mv")
        threshold = self.battery_threshold()
        if threshold is not None and threshold.ok_mv <= threshold.low_mv:
            raise ValueError("battery_ok_mv must be above battery_low_mv")
        return self

    def battery_threshold(self) -> BatteryThreshold | None:
        """The whole battery's thresholds (chemistry × cells, overrides applied), if any."""
        base = (
            None
            if self.battery_chemistry is None
            else BATTERY_THRESHOLDS_MV[self.battery_chemistry]
        )
        low = self.battery_low_mv
        ok = self.battery_ok_mv
        if base is not None:
            low = low if low is not None else base.low_mv * self.battery_cells
            ok = ok if ok is not None else base.ok_mv * self.battery_cells
        if low is None or ok is None:
            return None
        return BatteryThreshold(low_mv=low, ok_mv=ok)

    def silent_after_s(self, interval_s: float | None) -> float:
        """How long silence is allowed given the learned interval (``None``: not learned)."""
        if interval_s is None:
            return max(self.silent_floor_s, self.silent_unlearned_s)
        return max(self.silent_floor_s, self.silent_factor * interval_s)
