"""Telemetry events: sensor values (``telemetry.reading``) and positions (``telemetry.position``),
sent after the per-source rate limit and deadband, batched on the wire."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.events.base import EVENT_MODEL_CONFIG, Event, UtcDatetime, make_event_id
from gateway.events.common import Origin
from protocols.gps import FixQuality

__all__ = ["Quantities", "TelemetryPosition", "TelemetryReading"]


def _absent(value: object) -> bool:
    return value is None


class Quantities(BaseModel):
    """The values of one reading, each named with its unit (see :class:`Quantity`).

    A quantity the device does not measure is absent from the JSON (not ``null``), so that a
    temperature label's reading is a few bytes, not twenty nulls.
    """

    model_config = ConfigDict(**EVENT_MODEL_CONFIG, json_schema_extra={"minProperties": 1})

    temperature_c: float | None = Field(default=None, exclude_if=_absent)
    humidity_pct: float | None = Field(default=None, exclude_if=_absent)
    """Relative humidity, %."""
    pressure_pa: float | None = Field(default=None, exclude_if=_absent)
    acc_x_g: float | None = Field(default=None, exclude_if=_absent)
    """Instantaneous acceleration, g (Ruuvi)."""
    acc_y_g: float | None = Field(default=None, exclude_if=_absent)
    acc_z_g: float | None = Field(default=None, exclude_if=_absent)
    battery_mv: int | None = Field(default=None, exclude_if=_absent)
    """Battery voltage, millivolts (Ruuvi's volts, Eddystone TLM's and SmartLabel's mV)."""
    movement_count: int | None = Field(default=None, exclude_if=_absent)
    """The device's movement counter (wraps as the device's does)."""
    co2_ppm: float | None = Field(default=None, exclude_if=_absent)
    voc_index: int | None = Field(default=None, exclude_if=_absent)
    nox_index: int | None = Field(default=None, exclude_if=_absent)
    pm1_0_ugm3: float | None = Field(default=None, exclude_if=_absent)
    """Particulate matter up to 1.0 µm, µg/m³."""
    pm2_5_ugm3: float | None = Field(default=None, exclude_if=_absent)
    pm4_0_ugm3: float | None = Field(default=None, exclude_if=_absent)
    pm10_0_ugm3: float | None = Field(default=None, exclude_if=_absent)
    luminosity_lux: float | None = Field(default=None, exclude_if=_absent)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        # A loop over the values, not per-field validators: this runs once per reading.
        for value in self.__dict__.values():
            if value is not None:
                return self
        raise ValueError("a reading has at least one quantity")


class TelemetryReading(Event):
    """Emitted for a sensor reading (a tag's advert with sensor data, a SmartLabel environment
    frame, each reading of a SmartLabel history batch) that passes its source's rate limit and
    deadband. ``time`` is when it was measured (a label's time mapped to gateway time)."""

    kind: Literal["telemetry.reading"] = "telemetry.reading"
    values: Quantities
    """The measured values; at least one is present."""

    @classmethod
    def make_id(cls, gateway_id: str, origin: Origin) -> str:
        """Hashes the frame (label, sequence, index in a history batch) or the observation."""
        return make_event_id("telemetry.reading", gateway_id, *origin.identity())


class TelemetryPosition(Event):
    """Emitted for a position fix (the gateway's GPS, or a label's own GNSS fix) that passes the
    rate limit and deadband. ``source.device`` says whose position it is; ``time`` is the fix
    time. The envelope's ``position`` stays the gateway's."""

    kind: Literal["telemetry.position"] = "telemetry.position"
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    alt_m: float | None = None
    speed_mps: float | None = Field(default=None, ge=0)
    """Speed over ground, m/s."""
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    """Course over ground, degrees from true north (some receivers say 360 for 0)."""
    satellites: int | None = Field(default=None, ge=0)
    """Satellites used in the fix."""
    hdop: float | None = Field(default=None, ge=0)
    fix: FixQuality | None = None
    """Kind of fix, as the GPS decoder reports it (``3d``, ``dgps``, ...)."""
    fix_time: UtcDatetime | None = None
    """The receiver's time of the fix, when it differs from ``time`` (a label's late report)."""

    @classmethod
    def make_id(cls, gateway_id: str, origin: Origin) -> str:
        """Hashes the frame (label, sequence) or the gateway's observation of the fix."""
        return make_event_id("telemetry.position", gateway_id, *origin.identity())
