"""Is the system bus up, and is bluetoothd on it? A small D-Bus connection of the driver's own.

bleak notices neither a restarted bluetoothd (its callbacks just stop) nor, until it is next
used, a restarted system bus. This watch answers both at once: it follows the owner of
``org.bluez`` (NameOwnerChanged) and reconnects when the bus goes away, counting generations
so the scanner can tell whether the bluetoothd or the bus it started its scan on is still the
one running. It only receives signals and makes one call at a time; a full socket send buffer
would not drop it anyway (see drivers.ble.sendbuffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from dbus_fast import AuthError, BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from foundation.clock import Clock

__all__ = ["BUS_RETRY_S", "BusWatch"]

_log = logging.getLogger(__name__)

#: How often to try the system bus again while it is down: it comes back within a second or
#: two after a restart, and a connection attempt costs next to nothing.
BUS_RETRY_S: Final = 0.5
#: A healthy dbus-daemon answers in microseconds.
CALL_TIMEOUT_S: Final = 10.0

_BLUEZ: Final = "org.bluez"
_DBUS: Final = "org.freedesktop.DBus"


class BusWatch:
    """Follows the system bus and bluetoothd; calls ``on_change`` after every change."""

    def __init__(self, clock: Clock, on_change: Callable[[], None]) -> None:
        self._clock = clock
        self._on_change = on_change
        #: Connected to the system bus right now.
        self.bus_up = False
        #: bluetoothd owns ``org.bluez`` right now (False while the bus is down).
        self.bluez_up = False
        #: Incremented on every (re)connection: a change means every connection was dropped.
        self.bus_generation = 0
        #: Incremented every time ``org.bluez`` gets a new owner: a change means bluetoothd
        #: restarted (or the bus did).
        self.bluez_generation = 0
        #: Monotonic time bluetoothd last took the bus name while we watched (None if it was
        #: already there when we connected): it publishes its adapters a moment later.
        self.bluez_appeared_at: float | None = None
        #: Connection attempts that failed (the bus unreachable or dropping us at once).
        self.failed_connects = 0
        self._unreachable_logged = False

    async def run(self) -> None:
        """Watch until cancelled."""
        while True:
            bus = MessageBus(bus_type=BusType.SYSTEM)
            connected = False
            try:
                await bus.connect()
                connected = True
                bus.add_message_handler(self._on_message)
                await self._call(bus, "AddMatch", "s", [_owner_rule()])
                owner = await self._call(bus, "GetNameOwner", "s", [_BLUEZ])
                self.bus_generation += 1
                self.bus_up = True
                self._unreachable_logged = False
                self._set_bluez(owner is not None)
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            except (OSError, EOFError, AuthError, TimeoutError) as exc:
                if not self.bus_up:
                    self.failed_connects += 1
                if self.bus_up:
                    _log.warning("system bus connection lost: %r", exc)
                elif not self._unreachable_logged:
                    # Once per outage: the retries below would otherwise flood the log.
                    self._unreachable_logged = True
                    _log.warning(
                        "cannot reach the system bus (%r); retrying every %.1f s", exc, BUS_RETRY_S
                    )
            finally:
                bus.disconnect()
                if connected:
                    # A connection that never came up never finishes disconnecting: waiting
                    # for it would stop the watch after its first failed attempt.
                    with contextlib.suppress(Exception):
                        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
                if self.bus_up:
                    self.bus_up = False
                    self.bluez_up = False
                    self._on_change()
            await asyncio.sleep(BUS_RETRY_S)

    @staticmethod
    async def _call(bus: MessageBus, member: str, signature: str, body: list[str]) -> str | None:
        message = Message(
            destination=_DBUS,
            path="/org/freedesktop/DBus",
            interface=_DBUS,
            member=member,
            signature=signature,
            body=body,
        )
        async with asyncio.timeout(CALL_TIMEOUT_S):
            reply = await bus.call(message)
        if reply is None or reply.message_type is MessageType.ERROR:
            return None
        return str(reply.body[0]) if reply.body else ""

    def _on_message(self, msg: Message) -> None:
        if (
            msg.message_type is MessageType.SIGNAL
            and msg.member == "NameOwnerChanged"
            and msg.sender == _DBUS
            and msg.body
            and msg.body[0] == _BLUEZ
        ):
            _name, old_owner, new_owner = msg.body
            if new_owner and old_owner:
                # Replaced in one step: still a new bluetoothd.
                self.bluez_up = False
            if new_owner:
                self.bluez_appeared_at = self._clock.monotonic()
            self._set_bluez(bool(new_owner))

    def _set_bluez(self, up: bool) -> None:
        if up and not self.bluez_up:
            self.bluez_generation += 1
        if up != self.bluez_up:
            _log.info("bluetoothd %s the system bus", "is on" if up else "left")
        self.bluez_up = up
        self._on_change()


def _owner_rule() -> str:
    return (
        f"type='signal',sender='{_DBUS}',interface='{_DBUS}',"
        f"member='NameOwnerChanged',arg0='{_BLUEZ}'"
    )
