"""Values the BLE driver hands inward and the configuration it is given.

:class:`RawAdvert` is what crosses from the driver to the pipeline: one detection callback from
bleak, frozen, with both clocks stamped at the driver edge. :class:`BleConfig` is the driver's
piece of the gateway configuration.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import DEFAULT_QUEUE_SIZE

__all__ = [
    "MAX_POWER_CYCLES_WHILE_SILENT",
    "RESTARTS_BEFORE_POWER_CYCLE",
    "WATCHDOG_TIMEOUT_S",
    "BleConfig",
    "RawAdvert",
    "ScanMode",
]

#: Tags advertise every 0.1 to 2 s, so a dock door with tags that stays silent this long means
#: the scan died (bluetoothd restarted, controller wedged); a door with no tags at all just
#: costs one harmless scan restart per period. Home Assistant's scanner uses the same order.
WATCHDOG_TIMEOUT_S: Final = 90.0
#: Scan restarts without any advert in between before the adapter is power cycled: a restart
#: fixes a lost discovery session; a wedged controller needs the power cycle.
RESTARTS_BEFORE_POWER_CYCLE: Final = 2
#: Power cycles without any advert in between before the driver stops power cycling: over
#: D-Bus a site with no tags in range looks like a wedged controller, so one power cycle
#: tries the cure and then the adapter is left alone (scan restarts only) until an advert
#: arrives. A wedged controller that a single power cycle does not fix needs a person anyway.
MAX_POWER_CYCLES_WHILE_SILENT: Final = 1


class ScanMode(enum.StrEnum):
    """How the adapter listens."""

    #: Discovery with scan requests: every advert and scan response, more radio and power use.
    ACTIVE = "active"
    #: BlueZ advertisement monitor with or-patterns on the formats we decode: no scan
    #: requests, the controller filters (needs BlueZ >= 5.56 with experimental features).
    PASSIVE = "passive"


class BleConfig(BaseModel):
    """Configuration of one BLE scanner (one adapter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    adapter: str = Field(default="hci0", pattern=r"^hci[0-9]+$")
    mode: ScanMode = ScanMode.ACTIVE
    watchdog_timeout_s: float = Field(default=WATCHDOG_TIMEOUT_S, gt=0)
    restarts_before_power_cycle: int = Field(default=RESTARTS_BEFORE_POWER_CYCLE, ge=0)
    #: 0: never power cycle the adapter.
    max_power_cycles_while_silent: int = Field(default=MAX_POWER_CYCLES_WHILE_SILENT, ge=0)
    queue_size: int = Field(default=DEFAULT_QUEUE_SIZE, ge=1)
    #: Further manufacturer ids to pass in passive mode (each becomes an or-pattern).
    extra_company_ids: tuple[Annotated[int, Field(ge=0, le=0xFFFF)], ...] = ()


@dataclass(frozen=True, slots=True)
class RawAdvert:
    """One advertisement as bleak reported it, not yet decoded.

    ``manufacturer_data`` maps the company id to the bytes after it; ``service_data`` maps the
    full 128-bit lower-case service UUID to its bytes (both read-only views). ``monotonic`` is
    the driver clock's monotonic time of the callback (for latency and supervision),
    ``received_at`` the wall-clock time in UTC.
    """

    address: str
    rssi: int
    manufacturer_data: Mapping[int, bytes]
    service_data: Mapping[str, bytes]
    service_uuids: tuple[str, ...]
    name: str | None
    tx_power: int | None
    adapter: str
    monotonic: float
    received_at: datetime
