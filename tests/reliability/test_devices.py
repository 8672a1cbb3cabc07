"""The devices misbehave under the running daemon: the SmartLabel reader is unplugged and plugged
back (on another tty behind the same symlink) with garbage on the line, the GPS loses its fix
and its cable, bluetoothd restarts, and at last the BLE adapter is removed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.bluez import FakeBlueZ, PrivateBus
from simulator.serial import PtyPort, SmartLabelReaderSim
from simulator.serial.gps import GpsReceiverSim
from tests.fixtures.mosquitto import Broker, free_port
from tests.gateway.metrics.test_metrics_run import Scrape, scrape_until
from tests.reliability.conftest import Daemon, LabelStream, Recorder, write_config

GATEWAY = "gw-devices"
LABELS = [0x5A4B700000000001 + i for i in range(5)]
RATE_FPS = 50
BEACON_UUID = uuid.UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e")
BEACON = f"ibeacon:{BEACON_UUID}:7:9"
BEACON_ADDRESS = "D0:0D:00:00:00:07"


def ibeacon_data() -> dict[int, bytes]:
    body = b"\x02\x15" + BEACON_UUID.bytes + (7).to_bytes(2, "big") + (9).to_bytes(2, "big")
    return {0x004C: body + bytes([0xC5])}


async def beacon(bluez: FakeBlueZ, stop: asyncio.Event) -> None:
    """A tag on the dock, advertising five times a second (the fake drops it while down)."""
    rssi = -50
    while not stop.is_set():
        if bluez.running:
            rssi = -50 if rssi != -50 else -51  # a new RSSI each time: an advert each time
            try:
                await bluez.upsert_device(
                    BEACON_ADDRESS, rssi=rssi, manufacturer_data=ibeacon_data()
                )
            except (KeyError, RuntimeError, ValueError):
                return  # the adapter is gone
        await asyncio.sleep(0.2)


async def acks_resume(reader: SmartLabelReaderSim, timeout_s: float = 30.0) -> None:
    n = len(reader.acked)
    async with asyncio.timeout(timeout_s):
        await reader.wait_for(lambda: len(reader.acked) >= n + 20)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_unplug_replug_gps_loss_bluetoothd_restart_adapter_removed(
    mosquitto: Broker,
    recorder: Recorder,
    bluez: FakeBlueZ,
    private_bus: PrivateBus,
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: 5 labels at 50 frames/s through the reader pty, one iBeacon advertising every
    0.2 s at -50 dBm in zone door-1, a GPS receiver at 1 Hz (positions rate-limited to 0.5 s
    instead of 10 s, moved 1 km after each GPS fault); in turn: reader unplugged 2 s and
    plugged back, replugged onto a new tty at once, 200 bytes of garbage; GPS fix lost 3 s,
    GPS cable out 2 s; bluetoothd restarted (1 s down); the adapter removed. About 30-45 s.

    Label frames are ACKed again after every serial fault and every ACKed frame is delivered;
    the metrics count the link losses and the bluetoothd restart; the beacon enters once and
    does not leave during the bluetoothd restart; GPS positions resume after the fix and the
    cable come back; the daemon runs throughout (also without its adapter) and stops cleanly."""
    metrics_port = free_port()
    config = write_config(
        tmp_path / "gw.toml",
        GATEWAY,
        mosquitto,
        f'[ble]\ndbus_system_bus_address = "{private_bus.address}"\n'
        '[[ble.scanners]]\nadapter = "hci0"\nzone = "door-1"\n'
        f'[[smartlabel_readers]]\npath = "{tmp_path / "reader"}"\n'
        f'[gps]\nsource = "serial"\n[gps.serial]\npath = "{tmp_path / "gps"}"\n'
        f"[metrics]\nenabled = true\nport = {metrics_port}\n"
        # Positions at most every 0.5 s when they move (25 m deadband), not every 10 s.
        "[pipeline.telemetry]\nmin_interval_s = 0.5\n",
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    daemon = daemons(config)

    def positions() -> int:
        return len(recorder.of_kind("telemetry.position"))

    def presence(kind: str) -> list[object]:
        return [e for e in recorder.of_kind(kind) if e["tag"] == BEACON]

    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=1.0) as reader,
        PtyPort(tmp_path / "gps") as gps_port,
        GpsReceiverSim(gps_port, rate_hz=1.0) as gps,
    ):
        gps.set_position(53.55, 9.99, speed_mps=5.0)
        mark = recorder.mark()
        daemon.start()
        await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
        await bluez.wait_until(lambda: bluez.scanning("hci0"), timeout_s=30)
        stream = LabelStream(reader, GATEWAY, LABELS, RATE_FPS, buffer=5_000)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(stream.run(stop)),
            asyncio.create_task(beacon(bluez, stop)),
        ]
        t0 = asyncio.get_running_loop().time()
        phases: list[tuple[str, float]] = []

        def phase(name: str) -> None:
            phases.append((name, round(asyncio.get_running_loop().time() - t0, 1)))

        try:
            await asyncio.to_thread(recorder.wait, lambda: bool(presence("presence.enter")))
            phase("entered")
            await acks_resume(reader)

            # Serial: unplugged for 2 s, then back; then renumbered at once; then noise.
            port.unplug()
            await asyncio.sleep(2.0)
            port.plug()
            await acks_resume(reader)
            port.replug()
            await acks_resume(reader)
            reader.inject_garbage(200)
            await acks_resume(reader)
            phase("serial")

            # GPS: fix lost, then the cable.
            gps.lose_fix()
            await asyncio.sleep(3.0)
            gps.set_position(53.56, 9.98, speed_mps=5.0)
            seen = positions()
            await asyncio.to_thread(recorder.wait, lambda: positions() > seen)
            gps_port.unplug()
            await asyncio.sleep(2.0)
            gps_port.plug()
            gps.set_position(53.57, 9.97, speed_mps=5.0)
            seen = positions()
            await asyncio.to_thread(recorder.wait, lambda: positions() > seen)
            phase("gps")

            # bluetoothd restarts: scanning again, the beacon still present.
            await bluez.restart(down_s=1.0)
            await bluez.wait_until(lambda: bluez.scanning("hci0"), timeout_s=30)
            restarted: Scrape = await scrape_until(
                url,
                lambda s: (
                    s.total("tagrelay_driver_restarts_total") >= 1
                    and s.get("tagrelay_driver_restarts_total", reason="bluetoothd_restarted") >= 1
                ),
                daemon.proc,
            )
            adverts = restarted.get("tagrelay_adverts_received_total", source="ble:hci0")
            await scrape_until(
                url,
                lambda s: s.get("tagrelay_adverts_received_total", source="ble:hci0") > adverts + 5,
                daemon.proc,
            )
            exits_after_restart = len(presence("presence.exit"))
            phase("bluetoothd")

            # The adapter goes: the daemon carries on with its serial devices.
            await bluez.remove_adapter("hci0")
            await acks_resume(reader)
            assert daemon.alive(), daemon.text()
            phase("adapter")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        async with asyncio.timeout(60):
            await reader.wait_for(lambda: reader.unacked == 0)
        every = stream.event_ids(set(reader.acked))
        await asyncio.to_thread(recorder.wait, lambda: every <= recorder.event_ids())
        final: Scrape = await scrape_until(url, lambda s: True, daemon.proc)
        assert daemon.terminate() == 0

    link_lost = final.get(
        "tagrelay_driver_restarts_total", driver=f"smartlabel:{tmp_path / 'reader'}"
    )
    errors = final.samples["tagrelay_decode_errors_total"]
    serial_errors = sum(v for lb, v in errors if lb["source"].startswith("smartlabel:"))
    print(
        f"{stream.sent} frames, all {len(reader.acked)} ACKed delivered; reader link losses "
        f"{link_lost}; serial decode errors {serial_errors}; {positions()} positions; "
        f"beacon exits {exits_after_restart}; phases done at {phases}"
    )
    assert link_lost >= 2
    assert exits_after_restart == 0
    assert len(presence("presence.enter")) == 1
    assert reader.dropped == set()
    assert every <= recorder.event_ids()
    assert "Traceback" not in daemon.text()
