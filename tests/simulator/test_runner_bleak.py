"""The gateway's real BLE driver (bleak's BlueZ backend) sees the scenario the runner plays.

This is the path a developer uses without hardware: the runner's fake BlueZ on a private bus,
``DBUS_SYSTEM_BUS_ADDRESS`` pointing at it, and the unmodified driver scanning an adapter.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.ble import BleConfig, BleScanner, RawAdvert, ScanMode
from foundation.clock import SystemClock
from protocols.ble import SmartLabelAdv, decode_advertisement
from simulator.runner import ScenarioRunner
from simulator.world import load_scenario

WAIT_S = 15.0


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tr-ble-") as d:
        yield Path(d)


@pytest.mark.parametrize("mode", [ScanMode.ACTIVE, ScanMode.PASSIVE])
async def test_door_3_driver_hears_the_docked_trailer(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, mode: ScanMode
) -> None:
    scenario = load_scenario("cross-dock").model_copy(update={"faults": ()})
    async with ScenarioRunner(scenario, workdir, speed=60.0, drive=False) as runner:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", runner.endpoints.dbus_address)
        adapter = runner.endpoints.gateway("gw-door-03").adapter
        config = BleConfig(adapter=adapter, mode=mode)
        async with BleScanner(config, clock=SystemClock()) as scanner:
            await scanner.wait_scanning()
            if mode is ScanMode.PASSIVE:
                # bleak's start returns once RegisterMonitor is answered; BlueZ only reports
                # what matches once it has taken up the monitor object exported after that.
                bluez = runner.bluez
                assert bluez is not None
                await bluez.wait_until(lambda: bool(bluez.monitors(adapter)))
            snap = await runner.step(200.0)  # docked, nothing unloaded yet
            heard = snap.heard_by("gw-door-03")
            # Passive mode too: the driver's or-patterns cover every format the tags send.
            latest: dict[str, RawAdvert] = {}
            async with asyncio.timeout(WAIT_S):
                async for advert in scanner.events():
                    latest[advert.address] = advert
                    if set(heard) <= set(latest):
                        break
        assert len(heard) == len(runner.world.tags)  # all 42 tags on the trailer
        for address, sighting in heard.items():
            advert = latest[address]
            assert advert.rssi == sighting.rssi_dbm
            assert len(decode_advertisement(advert.manufacturer_data, advert.service_data)) == 1
        pallet = next(
            r for r in runner.world.tags if r.item == "PAL-0001" and r.tag.format == "smartlabel"
        )
        (adv,) = decode_advertisement(
            latest[pallet.address].manufacturer_data, latest[pallet.address].service_data
        )
        assert isinstance(adv, SmartLabelAdv)
        assert adv.temperature_c == runner.world.sensor_value("PAL-0001", "temperature_c", 200.0)
