"""Configuration of the vehicle's GPS: a receiver on serial, or gpsd as the source."""

from __future__ import annotations

from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.serial.config import SerialConfig

__all__ = ["GPSD_DEFAULT_PORT", "GpsConfig", "GpsdConfig"]

#: gpsd's registered port.
GPSD_DEFAULT_PORT: Final = 2947


class GpsdConfig(BaseModel):
    """Where gpsd listens, and optionally which of its devices to use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=GPSD_DEFAULT_PORT, gt=0, lt=65536)
    #: Only reports from this device path (gpsd may serve several receivers); None: any.
    device: str | None = None


class GpsConfig(BaseModel):
    """``source="serial"`` reads the receiver directly; ``source="gpsd"`` shares it via gpsd.

    Use gpsd when other programs (chrony, navigation) need the same receiver: only one process
    can own a tty. Read the receiver directly when nothing else needs it: one daemon fewer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["serial", "gpsd"] = "serial"
    serial: SerialConfig | None = None
    gpsd: GpsdConfig = GpsdConfig()

    @model_validator(mode="after")
    def _serial_needs_a_path(self) -> Self:
        if self.source == "serial" and self.serial is None:
            raise ValueError('source "serial" needs a [serial] section with the device path')
        return self
