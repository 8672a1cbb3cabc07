"""Errors of the BLE driver: the reason is data, the bleak / D-Bus error is the cause."""

from __future__ import annotations

import enum

from drivers.errors import DriverError

__all__ = ["BleError", "BleErrorReason"]


class BleErrorReason(enum.Enum):
    """Why a scan or adapter operation failed."""

    #: bluetoothd answered StartDiscovery with org.bluez.Error.InProgress every retry.
    IN_PROGRESS = "in-progress"
    #: The adapter is missing, unpowered or lacks the central role.
    ADAPTER_UNAVAILABLE = "adapter-unavailable"
    #: The system bus could not be reached or dropped the connection.
    BUS_UNAVAILABLE = "bus-unavailable"
    #: bluetoothd (or the fake) answered with another D-Bus error.
    DBUS_ERROR = "dbus-error"
    #: The operation did not finish in time (a hung bluetoothd).
    TIMEOUT = "timeout"


class BleError(DriverError):
    """A BLE scan or adapter operation failed; ``reason`` says how."""

    def __init__(self, reason: BleErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
