"""BLE on the data path: bleak's BlueZ scanner on one adapter, supervised, as raw adverts.

:class:`BleScanner` is the driver (``async with BleScanner(config, clock=...) as scanner``, then
``async for advert in scanner.events()``); :class:`RawAdvert` is what it yields and
``protocols.ble`` decodes; :class:`BleConfig` is its configuration.
"""

from drivers.ble.adapter import power_cycle, set_powered
from drivers.ble.buswatch import BUS_RETRY_S, BusWatch
from drivers.ble.errors import BleError, BleErrorReason
from drivers.ble.models import (
    MAX_POWER_CYCLES_WHILE_SILENT,
    RESTARTS_BEFORE_POWER_CYCLE,
    WATCHDOG_TIMEOUT_S,
    BleConfig,
    RawAdvert,
    ScanMode,
)
from drivers.ble.scanner import (
    BLUETOOTHD_SETTLE_S,
    DEFAULT_OR_PATTERNS,
    IN_PROGRESS_RETRIES,
    BleScanner,
    or_patterns,
)
from drivers.ble.sendbuffer import (
    SendBufferFixError,
    install_send_buffer_fix,
    send_buffer_fix_installed,
)
from drivers.ble.supervision import RecoveryAction, ScanSupervisor

__all__ = [
    "BLUETOOTHD_SETTLE_S",
    "BUS_RETRY_S",
    "DEFAULT_OR_PATTERNS",
    "IN_PROGRESS_RETRIES",
    "MAX_POWER_CYCLES_WHILE_SILENT",
    "RESTARTS_BEFORE_POWER_CYCLE",
    "WATCHDOG_TIMEOUT_S",
    "BleConfig",
    "BleError",
    "BleErrorReason",
    "BleScanner",
    "BusWatch",
    "RawAdvert",
    "RecoveryAction",
    "ScanMode",
    "ScanSupervisor",
    "SendBufferFixError",
    "install_send_buffer_fix",
    "or_patterns",
    "power_cycle",
    "send_buffer_fix_installed",
    "set_powered",
]
