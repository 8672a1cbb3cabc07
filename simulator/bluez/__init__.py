"""The simulator's Bluetooth hardware: a private D-Bus bus and a fake ``org.bluez`` on it.

Point the gateway at :attr:`PrivateBus.address` through ``DBUS_SYSTEM_BUS_ADDRESS`` and the real
bleak BlueZ backend talks to :class:`FakeBlueZ` as it would to bluetoothd.
"""

from simulator.bluez.bus import PrivateBus, PrivateBusError, add_match
from simulator.bluez.fake import (
    FLOW_SYNC_EVERY_MESSAGES,
    FakeBlueZ,
    MonitorInfo,
    device_path,
    normalise_uuid,
)

__all__ = [
    "FLOW_SYNC_EVERY_MESSAGES",
    "FakeBlueZ",
    "MonitorInfo",
    "PrivateBus",
    "PrivateBusError",
    "add_match",
    "device_path",
    "normalise_uuid",
]
