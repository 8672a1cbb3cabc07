"""Pieces several event kinds share: the measured quantities (names carry their unit) and the
origin of a fact, which is what an event id hashes for label- and advert-derived events."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.events.base import ClockRef

__all__ = ["LabelFrame", "Observation", "Origin", "Quantity"]


class Quantity(enum.StrEnum):
    """A measured quantity; the value is the field name in ``telemetry.reading`` and the name a
    condition profile uses, with its unit in the name."""

    TEMPERATURE_C = "temperature_c"
    HUMIDITY_PCT = "humidity_pct"
    PRESSURE_PA = "pressure_pa"
    ACC_X_G = "acc_x_g"
    ACC_Y_G = "acc_y_g"
    ACC_Z_G = "acc_z_g"
    #: Resultant peak acceleration of a shock, g.
    SHOCK_G = "shock_g"
    BATTERY_MV = "battery_mv"
    MOVEMENT_COUNT = "movement_count"
    CO2_PPM = "co2_ppm"
    VOC_INDEX = "voc_index"
    NOX_INDEX = "nox_index"
    PM1_0_UGM3 = "pm1_0_ugm3"
    PM2_5_UGM3 = "pm2_5_ugm3"
    PM4_0_UGM3 = "pm4_0_ugm3"
    PM10_0_UGM3 = "pm10_0_ugm3"
    LUMINOSITY_LUX = "luminosity_lux"


@dataclass(frozen=True, slots=True)
class LabelFrame:
    """A fact a SmartLabel sent in one frame (or one reading of a history batch).

    A label re-sends a frame whose ACK it did not get, so its identity is what the resend
    repeats: the label, the frame's sequence number, the reading's index in a batch and the
    frame header's ``label_time``. The header time is part of it because a label that reboots
    (a battery change) counts its sequence from 1 again: without the time, its new frames would
    be taken for resends of old ones and dropped as duplicates.
    """

    label: str
    seq: int
    #: Position of the reading within a history batch; None for a single-reading frame.
    index: int | None = None
    #: The frame header's ``label_time`` (identical in a resend); None where it is not known.
    sent: int | None = None

    def identity(self) -> tuple[object, ...]:
        base = ("frame", self.label, self.seq, self.index)
        return base if self.sent is None else (*base, self.sent)


@dataclass(frozen=True, slots=True)
class Observation:
    """A fact the gateway itself observed (an advert, a GPS epoch, a silence it noticed).

    Nothing re-sends it, and its wall-clock time may be corrected later, so its identity is the
    device and the gateway's monotonic reading (with the boot it belongs to) of the observation.
    """

    device: str
    observed: ClockRef

    def identity(self) -> tuple[object, ...]:
        return ("observed", self.device, self.observed.boot_id, self.observed.monotonic_s)


#: Where a telemetry, status or shock fact came from (what its event id hashes).
Origin = LabelFrame | Observation
