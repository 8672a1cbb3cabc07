"""The gateway's D-Bus connections survive a full socket send buffer (dbus-fast's EAGAIN trap).

A control connection with dbus-fast's own writer shows the burst is big enough to hit the trap;
the same burst through a connection made after the fix is installed (the scanner installs it
when it starts, importing ``drivers.ble`` does not) must arrive whole. A dbus-fast whose private
writer has moved is refused with a message that says what to do. Then the real case: bluetoothd
calling ``DeviceFound`` on bleak's advertisement monitor thousands of times at once, unpaced, as
it does when a trailer full of tags backs up to a door; bleak answers every call and its
connection must stay up.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus, message_bus

from drivers.ble import (
    BleConfig,
    BleScanner,
    ScanMode,
    SendBufferFixError,
    install_send_buffer_fix,
)
from foundation.clock import SystemClock
from simulator.bluez import FakeBlueZ, PrivateBus, add_match

#: Far more bytes than a unix socket's send buffer (~208 KiB) in one synchronous burst.
BURST_MESSAGES = 3000
BURST_PAYLOAD = "x" * 4000
#: DeviceFound calls in one go: each reply is small, but thousands fill the buffer.
DEVICE_FOUND_CALLS = 5000


async def _burst(bus: PrivateBus, *, with_fix: bool) -> tuple[int, list[BaseException], bool]:
    """Send the burst as signals; returns (received, send errors, sender still connected)."""
    if with_fix:
        install_send_buffer_fix()
    receiver = await MessageBus(bus_address=bus.address).connect()
    sender = await MessageBus(bus_address=bus.address).connect()
    try:
        if not with_fix:
            # dbus-fast's writer as shipped: the socket, unwrapped if an earlier test of this
            # process installed the fix.
            writer = sender._writer
            assert writer is not None
            wrapped: Any = writer.sock
            writer.sock = getattr(wrapped, "_sock", wrapped)
        received = 0
        all_in = asyncio.Event()

        def on_message(msg: Message) -> None:
            nonlocal received
            if msg.message_type is MessageType.SIGNAL and msg.member == "Burst":
                received += 1
                if received == BURST_MESSAGES:
                    all_in.set()

        receiver.add_message_handler(on_message)
        await add_match(receiver, "type='signal',member='Burst'")
        sent: list[asyncio.Future[Any]] = []
        errors: list[BaseException] = []
        for _ in range(BURST_MESSAGES):
            signal = Message.new_signal("/burst", "tagrelay.Test", "Burst", "s", [BURST_PAYLOAD])
            try:
                sent.append(sender.send(signal))
            except OSError as exc:  # a connection that died refuses at once
                errors.append(exc)
        results = await asyncio.gather(*sent, return_exceptions=True)
        errors += [r for r in results if isinstance(r, BaseException)]
        if not sender.connected:
            # Why it closed: dbus-fast finishes a dropped connection with the error.
            try:
                await sender.wait_for_disconnect()  # type: ignore[no-untyped-call]
            except OSError as exc:
                errors.append(exc)
            return received, errors, False
        async with asyncio.timeout(30.0):
            await all_in.wait()
        return received, errors, True
    finally:
        for connection in (sender, receiver):
            connection.disconnect()
            # The control connection died of the trap: that is its point.
            with contextlib.suppress(OSError):
                await connection.wait_for_disconnect()  # type: ignore[no-untyped-call]


def test_the_scanner_installs_the_fix_when_it_starts_not_the_import(tmp_path: Path) -> None:
    """In a fresh interpreter: importing the driver patches nothing; starting a scanner (here
    with no bus to reach, which it survives) does, before its first connection."""
    code = (
        "import asyncio, os\n"
        f"os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = 'unix:path={tmp_path / 'no-bus'}'\n"
        "from foundation.clock import SystemClock\n"
        "from drivers.ble import BleConfig, BleScanner, send_buffer_fix_installed\n"
        "async def main():\n"
        "    before = send_buffer_fix_installed()\n"
        "    async with BleScanner(BleConfig(), clock=SystemClock()):\n"
        "        print(before, send_buffer_fix_installed())\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "True"]


class _MovedWriter:
    """A dbus-fast release whose writer takes different arguments."""

    def __init__(self, bus: Any, fd: int) -> None:
        self.sock = None


async def test_a_dbus_fast_without_the_private_writer_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    version = metadata.version("dbus-fast")
    monkeypatch.delattr(message_bus, "_MessageWriter")
    with pytest.raises(SendBufferFixError) as gone:
        install_send_buffer_fix()
    assert f"dbus-fast {version}: dbus_fast.aio.message_bus._MessageWriter is gone" in str(
        gone.value
    )
    assert "tests/drivers/test_ble_sendbuffer.py" in str(gone.value)
    monkeypatch.setattr(message_bus, "_MessageWriter", _MovedWriter, raising=False)
    with pytest.raises(SendBufferFixError, match=r"takes \['self', 'bus', 'fd'\]"):
        install_send_buffer_fix()
    # The scanner refuses to start rather than scan without the workaround.
    with pytest.raises(SendBufferFixError):
        async with BleScanner(BleConfig(), clock=SystemClock()):
            pass


async def test_control_without_the_fix_drops_the_connection(private_bus: PrivateBus) -> None:
    # If this ever passes the burst, dbus-fast waits on EAGAIN itself and
    # drivers/ble/sendbuffer.py can be removed.
    _, errors, connected = await _burst(private_bus, with_fix=False)
    assert any(isinstance(e, BlockingIOError) for e in errors)
    assert not connected


async def test_a_burst_beyond_the_send_buffer_arrives_whole(private_bus: PrivateBus) -> None:
    received, errors, connected = await _burst(private_bus, with_fix=True)
    assert errors == []
    assert connected
    assert received == BURST_MESSAGES


async def test_passive_scan_survives_a_device_found_storm(
    private_bus: PrivateBus, bluez: FakeBlueZ
) -> None:
    config = BleConfig(mode=ScanMode.PASSIVE)
    async with BleScanner(config, clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        await bluez.wait_until(lambda: bool(bluez.monitors()))
        (monitor,) = bluez.monitors()
        # Playing bluetoothd, which queues without limit and never paces these calls.
        storm = await MessageBus(bus_address=private_bus.address).connect()
        try:
            calls = [
                storm.call(
                    Message(
                        destination=monitor.owner,
                        path=monitor.path,
                        interface="org.bluez.AdvertisementMonitor1",
                        member="DeviceFound",
                        signature="o",
                        body=[f"/org/bluez/hci0/dev_D0_00_00_00_{i >> 8:02X}_{i & 0xFF:02X}"],
                    )
                )
                for i in range(DEVICE_FOUND_CALLS)
            ]
            replies = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            storm.disconnect()
            await storm.wait_for_disconnect()  # type: ignore[no-untyped-call]
        answered = [
            r
            for r in replies
            if isinstance(r, Message) and r.message_type is MessageType.METHOD_RETURN
        ]
        assert len(answered) == DEVICE_FOUND_CALLS
        # bleak's connection is still the one the scan started on, and adverts still arrive.
        await bluez.upsert_device(
            "C0:00:00:00:00:06", rssi=-55, manufacturer_data={0x0499: b"\x05"}
        )
        async with asyncio.timeout(10.0):
            advert = await anext(aiter(scanner.events()))
        assert advert.address == "C0:00:00:00:00:06"
        assert scanner.counters["bus_lost"] == 0
        assert scanner.counters["scans_started"] == 1
