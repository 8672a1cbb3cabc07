"""The BLE driver with the real bleak BlueZ backend against the fake BlueZ on a private bus.

Covers active and passive scanning with every advert format we decode, RSSI-only updates, a
burst of hundreds of devices, bluetoothd restarting, InProgress on start, a wedged controller
(escalation to an adapter power cycle) and a missing adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.ble import (
    BLUETOOTHD_SETTLE_S,
    IN_PROGRESS_RETRIES,
    BleConfig,
    BleScanner,
    RawAdvert,
    ScanMode,
)
from foundation.clock import SystemClock
from protocols.ble import (
    SMARTLABEL_COMPANY_ID,
    SmartLabelAdvFlags,
    build_smartlabel_adv,
    decode_advertisement,
)
from protocols.ble.samples import (
    ALTBEACON_MFR,
    EDDYSTONE_TLM,
    EDDYSTONE_URL,
    IBEACON_MFR,
    RUUVI3_MFR,
    RUUVI5_MFR,
)
from simulator.bluez import FakeBlueZ, PrivateBus, normalise_uuid

EDDYSTONE = "feaa"


@dataclass(frozen=True)
class Tag:
    address: str
    format: str
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)


# Golden bytes: published vectors (beacontools, android-beacon-library, docs.ruuvi.com) and
# our SmartLabel advert built by the protocols package.
TAGS = (
    Tag(
        "C0:00:00:00:00:01",
        "ibeacon",
        {0x004C: IBEACON_MFR},
    ),
    Tag(
        "C0:00:00:00:00:02",
        "altbeacon",
        {0x0118: ALTBEACON_MFR},
    ),
    Tag(
        "C0:00:00:00:00:03",
        "eddystone-uid",
        service_data={EDDYSTONE: bytes.fromhex("00e3123456789012346789010000000000010000")},
    ),
    Tag(
        "C0:00:00:00:00:04",
        "eddystone-url",
        service_data={EDDYSTONE: EDDYSTONE_URL},
    ),
    Tag(
        "C0:00:00:00:00:05",
        "eddystone-tlm",
        service_data={EDDYSTONE: EDDYSTONE_TLM},
    ),
    Tag("C0:00:00:00:00:06", "ruuvi-3", {0x0499: RUUVI3_MFR}),
    Tag(
        "C0:00:00:00:00:07",
        "ruuvi-5",
        {0x0499: RUUVI5_MFR},
    ),
    Tag(
        "C0:00:00:00:00:08",
        "ruuvi-e1",
        {
            0x0499: bytes.fromhex(
                "E1170C5668C79E0065007004BD11CA00C90A0213E0AC000000DECDEE100000000000CBB8334C884F"
            )
        },
    ),
    Tag(
        "C0:00:00:00:00:09",
        "smartlabel-adv",
        {
            SMARTLABEL_COMPANY_ID: build_smartlabel_adv(
                label_id=0x0102030405060708,
                battery_mv=2950,
                temperature_c=4.25,
                flags=SmartLabelAdvFlags.SHOCK_LATCHED,
                sequence=42,
            )
        },
    ),
)
#: Microsoft's company id: nothing we decode, so a passive scan must not report it.
OTHER_TAG = Tag("C0:00:00:00:00:FF", "other", {0x0006: bytes.fromhex("01092022")})


async def advertise(bluez: FakeBlueZ, tag: Tag, rssi: int = -60) -> None:
    await bluez.upsert_device(
        tag.address,
        rssi=rssi,
        manufacturer_data=tag.manufacturer_data,
        service_data=tag.service_data,
    )


async def collect(
    scanner: BleScanner,
    until: Callable[[dict[str, RawAdvert]], bool],
    timeout_s: float = 15.0,
    accept: Callable[[RawAdvert], bool] = lambda advert: True,
) -> dict[str, RawAdvert]:
    """The latest accepted advert per address, once ``until`` holds for them."""
    latest: dict[str, RawAdvert] = {}
    async with asyncio.timeout(timeout_s):
        async for advert in scanner.events():
            if accept(advert):
                latest[advert.address] = advert
                if until(latest):
                    return latest
    raise AssertionError("the scanner stopped")


async def heard_again_after(scanner: BleScanner, since: float) -> float:
    """Seconds from ``since`` until the first advert stamped after it has been taken."""
    await collect(scanner, lambda seen: bool(seen), accept=lambda advert: advert.monotonic > since)
    return time.monotonic() - since


@pytest.fixture
async def advertiser(bluez: FakeBlueZ) -> AsyncIterator[Callable[[Tag, float], None]]:
    """Start a tag advertising every ``interval_s`` (RSSI wandering) until the test ends."""
    tasks: list[asyncio.Task[None]] = []

    async def loop(tag: Tag, interval_s: float) -> None:
        n = 0
        while True:
            await advertise(bluez, tag, rssi=-60 - n % 10)
            n += 1
            await asyncio.sleep(interval_s)

    def start(tag: Tag, interval_s: float) -> None:
        tasks.append(asyncio.create_task(loop(tag, interval_s)))

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def check_formats(adverts: Mapping[str, RawAdvert], tags: tuple[Tag, ...]) -> None:
    for tag in tags:
        advert = adverts[tag.address]
        assert dict(advert.manufacturer_data) == dict(tag.manufacturer_data)
        assert dict(advert.service_data) == {
            normalise_uuid(k): v for k, v in tag.service_data.items()
        }
        decoded = decode_advertisement(advert.manufacturer_data, advert.service_data)
        assert [d.format for d in decoded] == [tag.format], tag


async def test_active_scan_delivers_every_format(bluez: FakeBlueZ) -> None:
    async with BleScanner(BleConfig(), clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        assert bluez.discovering()
        for tag in TAGS:
            await advertise(bluez, tag, rssi=-61)
        adverts = await collect(scanner, lambda seen: len(seen) == len(TAGS))
    check_formats(adverts, TAGS)
    advert = adverts[TAGS[0].address]
    assert advert.rssi == -61
    assert advert.adapter == "hci0"
    assert advert.received_at.tzinfo is not None
    # The scan was stopped cleanly when the driver closed.
    assert not bluez.discovering()
    assert bluez.counters["stop_discovery"] == 1


async def test_decoded_values_survive_the_bus(bluez: FakeBlueZ) -> None:
    async with BleScanner(BleConfig(), clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        for tag in TAGS:
            await advertise(bluez, tag)
        adverts = await collect(scanner, lambda seen: len(seen) == len(TAGS))
    by_format = {
        tag.format: decode_advertisement(
            adverts[tag.address].manufacturer_data, adverts[tag.address].service_data
        )[0]
        for tag in TAGS
    }
    ruuvi5 = by_format["ruuvi-5"]
    assert getattr(ruuvi5, "temperature_c") == pytest.approx(24.3)  # noqa: B009
    assert getattr(ruuvi5, "mac") == "CB:B8:33:4C:88:4F"  # noqa: B009
    ibeacon = by_format["ibeacon"]
    assert (getattr(ibeacon, "major"), getattr(ibeacon, "minor")) == (1, 2)  # noqa: B009
    assert getattr(by_format["eddystone-url"], "url") == "https://github.com/citruz"  # noqa: B009


async def test_passive_scan_reports_only_our_formats(bluez: FakeBlueZ) -> None:
    config = BleConfig(mode=ScanMode.PASSIVE)
    async with BleScanner(config, clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        await bluez.wait_until(lambda: bool(bluez.monitors()))
        assert not bluez.discovering(), "passive scanning must not start a discovery"
        await advertise(bluez, OTHER_TAG)
        for tag in TAGS:
            await advertise(bluez, tag)
        adverts = await collect(scanner, lambda seen: len(seen) == len(TAGS))
        # BlueZ told the monitor about each matching device, never about the other one.
        assert bluez.counters["device_found"] == len(TAGS)
        assert OTHER_TAG.address not in adverts
    check_formats(adverts, TAGS)
    assert not bluez.monitors(), "the monitor is unregistered when the driver closes"


async def test_rssi_only_changes_arrive(bluez: FakeBlueZ) -> None:
    tag = TAGS[6]
    async with BleScanner(BleConfig(), clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        await advertise(bluez, tag, rssi=-70)
        await collect(scanner, lambda seen: tag.address in seen)
        for rssi in (-65, -52, -80):
            await bluez.upsert_device(tag.address, rssi=rssi)
        rssis: list[int] = []

        def record(advert: RawAdvert) -> bool:
            rssis.append(advert.rssi)
            return True

        await collect(scanner, lambda seen: len(rssis) == 3, accept=record)
    assert rssis == [-65, -52, -80]


@pytest.mark.parametrize("mode", list(ScanMode))
async def test_burst_of_hundreds_of_devices_survives(bluez: FakeBlueZ, mode: ScanMode) -> None:
    # All at once, as a trailer of tags backing up to a door: in passive mode every new device
    # is also a DeviceFound call to bleak's monitor, which bleak answers.
    count = 1500
    addresses = [f"D0:00:00:00:{i // 256:02X}:{i % 256:02X}" for i in range(count)]
    async with BleScanner(BleConfig(mode=mode), clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        await bluez.wait_until(bluez.scanning)
        await asyncio.gather(
            *(
                bluez.upsert_device(
                    address,
                    rssi=-40 - i % 50,
                    manufacturer_data={0x0499: bytes([5, i % 256]) * 12},
                )
                for i, address in enumerate(addresses)
            )
        )
        adverts = await collect(scanner, lambda seen: len(seen) == count, timeout_s=30.0)
        assert bluez.running
        assert scanner.queue_stats.dropped == 0
        assert scanner.counters["bus_lost"] == 0
    assert set(adverts) == set(addresses)
    assert bluez.counters["adverts_sent"] == count
    assert bluez.counters["device_found"] == (count if mode is ScanMode.PASSIVE else 0)


@pytest.mark.parametrize("mode", list(ScanMode))
async def test_bluetoothd_restart_is_recovered_at_once(
    bluez: FakeBlueZ, advertiser: Callable[[Tag, float], None], mode: ScanMode
) -> None:
    # The watchdog is far away: recovery comes from seeing bluetoothd return to the bus.
    config = BleConfig(watchdog_timeout_s=30.0, mode=mode)
    async with BleScanner(config, clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        advertiser(TAGS[0], 0.05)
        await collect(scanner, lambda seen: bool(seen))
        await bluez.restart(down_s=0.2)
        recovered_after_s = await heard_again_after(scanner, time.monotonic())
        assert scanner.counters["bluetoothd_restarts"] == 1
        # Stopping the old scan finds bluetoothd ignorant of it ("No discovery started").
        assert scanner.counters["sessions_lost"] == 1
        assert scanner.counters["restarts_silent"] == 0
        assert scanner.counters["scans_started"] == 2
        assert bluez.scanning()
        assert bluez.discovering() is (mode is ScanMode.ACTIVE)
    # bluetoothd gets a second to publish its adapters, then the scan starts in milliseconds.
    assert recovered_after_s < BLUETOOTHD_SETTLE_S + 1.5


async def test_silent_scan_is_restarted_by_the_watchdog(
    bluez: FakeBlueZ, advertiser: Callable[[Tag, float], None]
) -> None:
    watchdog_s = 1.0
    async with BleScanner(BleConfig(watchdog_timeout_s=watchdog_s), clock=SystemClock()) as scanner:
        await scanner.wait_scanning()
        advertiser(TAGS[3], 0.05)
        await collect(scanner, lambda seen: bool(seen))
        # The discovery session is lost without bluetoothd leaving the bus (as when the kernel
        # ends a scan under it): only the silence shows it.
        bluez.drop_discovery_sessions()
        recovered_after_s = await heard_again_after(scanner, time.monotonic())
        assert scanner.counters["restarts_silent"] == 1
        assert scanner.counters["sessions_lost"] == 1
        assert scanner.counters["scans_started"] == 2
    # Silence is noticed within 1.25 timeouts; the new scan starts in milliseconds.
    assert recovered_after_s < watchdog_s * 1.25 + 1.0


async def test_in_progress_on_start_is_retried(bluez: FakeBlueZ) -> None:
    bluez.refuse_start_discovery(1)
    async with BleScanner(BleConfig(), clock=SystemClock()) as scanner:
        await asyncio.wait_for(scanner.wait_scanning(), 10.0)
        assert scanner.counters["in_progress_retries"] == 1
        assert bluez.counters["refused_in_progress"] == 1
        await advertise(bluez, TAGS[1])
        adverts = await collect(scanner, lambda seen: bool(seen))
    assert TAGS[1].address in adverts


async def test_in_progress_beyond_the_retries_fails_the_start_and_is_tried_again(
    bluez: FakeBlueZ,
) -> None:
    # One start: the first try and its 3 retries all refused; the next start succeeds.
    bluez.refuse_start_discovery(IN_PROGRESS_RETRIES + 1)
    async with BleScanner(BleConfig(), clock=SystemClock()) as scanner:
        await asyncio.wait_for(scanner.wait_scanning(), 20.0)
        assert scanner.counters["in_progress_retries"] == IN_PROGRESS_RETRIES
        assert bluez.counters["refused_in_progress"] == IN_PROGRESS_RETRIES + 1
        assert scanner.counters["start_failures"] == 1
        assert scanner.counters["scans_started"] == 1
        assert bluez.discovering()


async def test_wedged_controller_escalates_to_a_power_cycle(
    bluez: FakeBlueZ, advertiser: Callable[[Tag, float], None]
) -> None:
    config = BleConfig(watchdog_timeout_s=0.5, restarts_before_power_cycle=1)
    async with BleScanner(config, clock=SystemClock(), power_off_s=0.05) as scanner:
        await scanner.wait_scanning()
        advertiser(TAGS[2], 0.05)
        await collect(scanner, lambda seen: bool(seen))
        bluez.jam_radio()
        await heard_again_after(scanner, time.monotonic())
        # One plain restart did not help; the second silence power cycled the adapter.
        assert scanner.counters["restarts_silent"] == 2
        assert scanner.counters["power_cycles"] == 1
        assert scanner.counters["power_cycle_failures"] == 0
        assert bluez.counters["power_off"] == 1
        assert bluez.counters["power_on"] == 1
        assert bluez.powered()


async def test_a_quiet_site_is_power_cycled_once_then_left_alone(
    bluez: FakeBlueZ, caplog: pytest.LogCaptureFixture
) -> None:
    # No tag in range at all: one restart, one power cycle (the cure for a wedged controller,
    # which looks the same over D-Bus), then only scan restarts until an advert arrives.
    config = BleConfig(watchdog_timeout_s=0.2, restarts_before_power_cycle=1)
    async with BleScanner(config, clock=SystemClock(), power_off_s=0.01) as scanner:
        async with asyncio.timeout(20.0):
            await scanner.wait_until(lambda: scanner.counters["restarts_silent"] >= 6)
        assert scanner.counters["power_cycles"] == 1
        assert bluez.counters["power_off"] == 1
        quiet = [r for r in caplog.records if "no tags in range?" in r.getMessage()]
        assert len(quiet) == 1

        # A tag passes by (advertising until heard: a scan may be restarting right then) ...
        async def pass_by() -> None:
            while True:
                await advertise(bluez, TAGS[0])
                await asyncio.sleep(0.05)

        passing = asyncio.create_task(pass_by())
        try:
            await collect(scanner, lambda seen: bool(seen))
        finally:
            passing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await passing
        # ... and the next silence may power cycle again.
        await bluez.wait_until(lambda: bluez.counters["power_on"] == 2, timeout_s=20.0)
        assert scanner.counters["power_cycles"] == 2
    assert bluez.counters["power_off"] == 2


async def test_scans_the_configured_adapter_only(
    private_bus: PrivateBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private_bus.address)
    async with FakeBlueZ(private_bus.address, adapters=("hci0", "hci1")) as fake:
        async with BleScanner(BleConfig(adapter="hci1"), clock=SystemClock()) as scanner:
            await scanner.wait_scanning()
            assert fake.discovering("hci1")
            assert not fake.discovering("hci0")
            await fake.upsert_device(TAGS[5].address, adapter="hci0", rssi=-40)
            tag = TAGS[6]
            await fake.upsert_device(
                tag.address, adapter="hci1", rssi=-45, manufacturer_data=tag.manufacturer_data
            )
            adverts = await collect(scanner, lambda seen: tag.address in seen)
        assert set(adverts) == {tag.address}
        assert adverts[tag.address].adapter == "hci1"


async def test_missing_adapter_is_retried_without_crashing(bluez: FakeBlueZ) -> None:
    async with BleScanner(BleConfig(adapter="hci7"), clock=SystemClock()) as scanner:
        async with asyncio.timeout(10.0):
            await scanner.wait_until(lambda: scanner.counters["start_failures"] >= 1)
        assert not scanner.scanning
    assert bluez.counters["start_discovery"] == 0


async def test_a_gateway_started_before_the_bus_scans_once_it_is_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as workdir:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={workdir}/bus.sock")
        async with contextlib.AsyncExitStack() as devices:
            async with BleScanner(BleConfig(), clock=SystemClock()) as scanner:
                # Polled with a deadline: the failed connect is only visible in the log.
                async with asyncio.timeout(10.0):
                    while not any(  # noqa: ASYNC110 - no event to await
                        "cannot reach the system bus" in r.getMessage() for r in caplog.records
                    ):
                        await asyncio.sleep(0.05)
                assert not scanner.scanning
                bus = await devices.enter_async_context(PrivateBus(Path(workdir)))
                fake = await devices.enter_async_context(FakeBlueZ(bus.address))
                await asyncio.wait_for(scanner.wait_scanning(), 10.0)
                assert fake.discovering()
                await advertise(fake, TAGS[8])
                adverts = await collect(scanner, lambda seen: bool(seen))
            # The scanner closed while the bus and bluetoothd are still up: a clean stop.
            assert not fake.discovering()
    assert TAGS[8].address in adverts


async def _bus_restart_scenario() -> float:
    with tempfile.TemporaryDirectory(prefix="tagrelay-dbus-") as workdir:
        async with PrivateBus(Path(workdir)) as bus:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
            config = BleConfig(watchdog_timeout_s=1.0)
            async with (
                FakeBlueZ(bus.address) as fake,
                BleScanner(config, clock=SystemClock()) as scanner,
            ):
                await scanner.wait_scanning()

                async def advertise_forever() -> None:
                    while True:
                        await advertise(fake, TAGS[5])
                        await asyncio.sleep(0.05)

                task = asyncio.create_task(advertise_forever())
                try:
                    await collect(scanner, lambda seen: bool(seen))
                    # Every connection drops, bleak's included; bluetoothd reconnects.
                    await bus.restart()
                    await fake.restart(down_s=0.0)
                    recovered_after_s = await heard_again_after(scanner, time.monotonic())
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                assert scanner.counters["scans_started"] == 2
                assert scanner.counters["bus_lost"] == 1
                # The old scan is stopped once bleak has reconnected: nothing calls into the
                # dead connection, and bluetoothd reports the old session unknown.
                assert scanner.counters["sessions_lost"] == 1
                assert scanner.counters["stop_errors"] == 0
    return recovered_after_s


async def test_system_bus_restart_is_recovered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "")  # set by the scenario, restored after
    recovered_after_s = await _bus_restart_scenario()
    assert recovered_after_s < BLUETOOTHD_SETTLE_S + 2.0


def test_the_bleak_internal_the_driver_uses_has_not_moved() -> None:
    """drivers.ble.scanner.connect_bleak_manager calls bleak's private
    ``get_global_bluez_manager`` (no public equivalent): fail here when a bleak release moves
    or changes it, not at a gateway whose bus restarted."""
    from bleak.backends.bluezdbus import manager

    accessor = getattr(manager, "get_global_bluez_manager", None)
    assert accessor is not None, "bleak moved get_global_bluez_manager: see connect_bleak_manager"
    assert inspect.iscoroutinefunction(accessor)
    assert list(inspect.signature(accessor).parameters) == []
    assert "BlueZManager" in str(inspect.signature(accessor).return_annotation)
    # And it is the only bleak internal reached into: bleak's backends appear nowhere else.
    drivers = Path(__file__).resolve().parents[2] / "drivers"
    users = sorted(
        str(p.relative_to(drivers))
        for p in drivers.rglob("*.py")
        if "bleak.backends.bluezdbus" in p.read_text(encoding="utf-8")
    )
    assert users == ["ble/scanner.py"]
