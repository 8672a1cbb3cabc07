"""Adapter power control over D-Bus: the last step of BLE recovery.

When restarting the scan does not bring adverts back, the controller is usually wedged; turning
the adapter off and on through ``org.bluez.Adapter1.Powered`` resets it without root tools.
Each call opens its own short connection to the system bus and waits for every reply before the
next call, so it never has more than one message queued (and a full socket send buffer would
not drop the connection: see drivers.ble.sendbuffer).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from drivers.ble.errors import BleError, BleErrorReason

__all__ = ["POWER_OFF_S", "power_cycle", "set_powered"]

#: Long enough for the kernel to finish the power-down and drop the controller state, short
#: enough not to lose more adverts than the scan restart before it already did.
POWER_OFF_S: Final = 1.0
#: A healthy bluetoothd answers Powered within milliseconds; a hung one must not hang us.
CALL_TIMEOUT_S: Final = 10.0

_BLUEZ: Final = "org.bluez"
_ADAPTER_INTERFACE: Final = "org.bluez.Adapter1"


async def set_powered(bus: MessageBus, adapter: str, powered: bool) -> None:
    """Set ``Powered`` of ``/org/bluez/<adapter>``; raises :class:`BleError` on failure."""
    message = Message(
        destination=_BLUEZ,
        path=f"/org/bluez/{adapter}",
        interface="org.freedesktop.DBus.Properties",
        member="Set",
        signature="ssv",
        body=[_ADAPTER_INTERFACE, "Powered", Variant("b", powered)],
    )
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            reply = await bus.call(message)
    except TimeoutError as exc:
        raise BleError(BleErrorReason.TIMEOUT, f"{adapter} Powered={powered}") from exc
    if reply is None or reply.message_type is MessageType.ERROR:
        name = reply.error_name if reply is not None else "no reply"
        raise BleError(BleErrorReason.DBUS_ERROR, f"{adapter} Powered={powered}: {name}")


async def power_cycle(adapter: str, *, off_s: float = POWER_OFF_S) -> None:
    """Power ``adapter`` off, wait ``off_s``, and power it on again (system bus from the
    environment, as bleak uses it)."""
    bus = MessageBus(bus_type=BusType.SYSTEM)
    try:
        await bus.connect()
    except (OSError, EOFError) as exc:
        bus.disconnect()
        raise BleError(BleErrorReason.BUS_UNAVAILABLE, str(exc)) from exc
    try:
        await set_powered(bus, adapter, False)
        await asyncio.sleep(off_s)
        await set_powered(bus, adapter, True)
    finally:
        bus.disconnect()
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
