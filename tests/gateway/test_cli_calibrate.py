"""``tagrelay calibrate`` as a real process: the real bleak scanner against the fake BlueZ hears a
tag stood at a zone's edge and suggests the zone's levels."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path
from uuid import UUID

from simulator.bluez import FakeBlueZ, PrivateBus
from simulator.world.adverts import advert_for
from simulator.world.model import IBeaconTag

TAG = IBeaconTag(uuid=UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e"), major=300, minor=7)
TAG_ID = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:300:7"


def config(tmp_path: Path, bus: PrivateBus) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(
        'gateway_id = "gw-cal"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        '[uplink]\nhost = "127.0.0.1"\nport = 1\ntransport = "tcp"\n'
        f'[ble]\ndbus_system_bus_address = "{bus.address}"\n'
        '[[ble.scanners]]\nadapter = "hci0"\nzone = "door-3"\n'
    )
    return path


async def advertise(bluez: FakeBlueZ, stop: asyncio.Event) -> None:
    rng = random.Random(5)
    payload = advert_for(TAG, "C0:FF:EE:00:00:07", {}, 0)
    while not stop.is_set():
        await bluez.upsert_device(
            "C0:FF:EE:00:00:07",
            rssi=round(-74 + rng.gauss(0, 3)),
            manufacturer_data=payload.manufacturer_data,
        )
        await bluez.upsert_device("AA:AA:AA:00:00:01", rssi=-50, manufacturer_data={6: b"\x01"})
        await asyncio.sleep(0.05)


async def test_suggests_levels_from_a_tag_at_the_edge(
    bluez: FakeBlueZ, private_bus: PrivateBus, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    feeder = asyncio.create_task(advertise(bluez, stop))
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "calibrate",
            "--config",
            str(config(tmp_path, private_bus)),
            "--tag",
            TAG_ID,
            "--seconds",
            "4",
            "--save",
            str(tmp_path / "edge.json"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        stop.set()
        await feeder
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert '[presence.zones."door-3"]' in text
    enter = float(text.split("enter_rssi_dbm = ")[1].split()[0])
    exit_ = float(text.split("exit_rssi_dbm = ")[1].split()[0])
    assert -77 <= enter <= -71  # the edge's median
    assert exit_ <= enter - 6  # hysteresis
    saved = json.loads((tmp_path / "edge.json").read_text())
    assert saved["tag"] == TAG_ID
    assert len(saved["rssi_dbm"]) >= 10


async def test_an_unknown_adapter_or_a_bad_tag_is_a_clear_error(
    private_bus: PrivateBus, tmp_path: Path
) -> None:
    for args in (["--tag", TAG_ID, "--adapter", "hci7"], ["--tag", "nonsense"]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "calibrate",
            "--config",
            str(config(tmp_path, private_bus)),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        assert proc.returncode == 78, err.decode()
        assert b"tagrelay calibrate" in err
