"""The BLE scanner driver: bleak's BlueZ scanner on one adapter, turned into a queue of
:class:`RawAdvert` and kept alive.

Detection callbacks stop here: each one becomes a frozen :class:`RawAdvert` on the driver's
bounded queue. Supervision follows what long-running scanners on real BlueZ need (Home
Assistant's): start and stop under one lock; ``org.bluez.Error.InProgress`` on start is
retried; a :class:`BusWatch` sees bluetoothd restart (its callbacks would just stop, and
``stop()`` then fails with "No discovery started") and the system bus restart, and the scan is
restarted at once; a watchdog restarts the scan when no advert arrives for
``watchdog_timeout_s`` for any other reason; and when restarts in a row bring nothing back, the
adapter is power cycled over D-Bus.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, Self

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError, BleakError

from drivers.base import Driver
from drivers.ble.adapter import POWER_OFF_S, power_cycle
from drivers.ble.buswatch import BusWatch
from drivers.ble.errors import BleError, BleErrorReason
from drivers.ble.models import BleConfig, RawAdvert, ScanMode
from drivers.ble.sendbuffer import install_send_buffer_fix
from drivers.ble.supervision import RecoveryAction, ScanSupervisor
from foundation.clock import Clock
from protocols.ble import SMARTLABEL_COMPANY_ID

__all__ = [
    "BLUETOOTHD_SETTLE_S",
    "DEFAULT_OR_PATTERNS",
    "IN_PROGRESS_RETRIES",
    "BleScanner",
    "or_patterns",
]

_log = logging.getLogger(__name__)

_MFR: Final = AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA
_SERVICE_DATA_16: Final = AdvertisementDataType.SERVICE_DATA_UUID16

#: Passive-mode filters: the prefixes of the formats ``protocols.ble`` decodes, as they appear
#: in the AD structure (company ids and 16-bit UUIDs little-endian).
DEFAULT_OR_PATTERNS: Final[tuple[OrPattern, ...]] = (
    OrPattern(0, _MFR, b"\x4c\x00\x02\x15"),  # Apple 0x004C + iBeacon type/length
    OrPattern(2, _MFR, b"\xbe\xac"),  # AltBeacon code, under any company id
    OrPattern(0, _MFR, b"\x99\x04"),  # Ruuvi Innovations 0x0499 (formats 3, 5, E1)
    OrPattern(0, _MFR, SMARTLABEL_COMPANY_ID.to_bytes(2, "little")),  # our SmartLabel advert
    OrPattern(0, _SERVICE_DATA_16, b"\xaa\xfe"),  # Eddystone service data 0xFEAA
)

#: bluetoothd needs a moment to finish the discovery it is busy with; three tries a second
#: apart cover the kernel's own scan restart (~10 s cycle) often enough without stalling.
IN_PROGRESS_RETRIES: Final = 3
IN_PROGRESS_RETRY_DELAY_S: Final = 1.0
#: After a failed start, wait before the next try so a missing adapter does not spin the CPU.
START_RETRY_DELAY_S: Final = 2.0
#: A healthy bluetoothd answers within milliseconds; a hung one must not hang the driver.
START_STOP_TIMEOUT_S: Final = 15.0
#: The watchdog looks this many times per timeout: recovery lands within 1.25 x the timeout.
WATCHDOG_CHECKS_PER_TIMEOUT: Final = 4
#: bluetoothd takes the bus name before it has published its adapters; starting the scan at
#: once would fail with "adapter not found". A second covers a real bluetoothd's start-up.
BLUETOOTHD_SETTLE_S: Final = 1.0
#: Repeated failures are logged once, then every this many, so a dead adapter cannot flood.
LOG_EVERY_FAILURES: Final = 30

_ERR_IN_PROGRESS: Final = "org.bluez.Error.InProgress"
#: What bluetoothd answers StopDiscovery / UnregisterMonitor for a session it does not know,
#: which after a restart of bluetoothd is every session we had.
_SESSION_LOST_ERRORS: Final = frozenset({"org.bluez.Error.Failed", "org.bluez.Error.DoesNotExist"})


async def connect_bleak_manager() -> None:
    """Have bleak's process-wide BlueZ manager (re)connect to the system bus, and wait for it.

    The one use of a bleak internal in the gateway: bleak has no public call for "be connected
    again" (``BleakScanner.start`` does it as a side effect, but would start a scan), and the
    orphaned scan must be stopped on a live connection. ``get_global_bluez_manager`` is not in
    bleak's documented API; tests/drivers/test_ble_scanner.py checks its name and shape, so a
    bleak release that moves it fails there, not in the field.
    """
    from bleak.backends.bluezdbus.manager import get_global_bluez_manager

    await get_global_bluez_manager()


def or_patterns(config: BleConfig) -> list[OrPattern]:
    """The passive-mode patterns for ``config``: the defaults plus its extra company ids."""
    patterns = list(DEFAULT_OR_PATTERNS)
    for company_id in config.extra_company_ids:
        patterns.append(OrPattern(0, _MFR, company_id.to_bytes(2, "little")))
    return patterns


class BleScanner(Driver[RawAdvert]):
    """Scan with ``config`` and yield :class:`RawAdvert` from :meth:`events`.

    The bus is the system bus from the environment (``DBUS_SYSTEM_BUS_ADDRESS``), as bleak
    uses it. :attr:`counters` counts starts, restarts by reason, power cycles and failures.
    """

    def __init__(
        self, config: BleConfig, *, clock: Clock, power_off_s: float = POWER_OFF_S
    ) -> None:
        super().__init__(name=f"ble:{config.adapter}", clock=clock, queue_size=config.queue_size)
        self._config = config
        self._power_off_s = power_off_s
        self._lock = asyncio.Lock()
        self._scanner: BleakScanner | None = None
        self._supervisor = ScanSupervisor(
            clock,
            silence_timeout_s=config.watchdog_timeout_s,
            restarts_before_power_cycle=config.restarts_before_power_cycle,
            max_power_cycles_while_silent=config.max_power_cycles_while_silent,
        )
        #: The "site looks quiet" line was logged for the current silence.
        self._quiet_logged = False
        self._scanning = asyncio.Event()
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._watch = BusWatch(clock, self._wake_up)
        #: (bus, bluetoothd) generations the running scan was started on.
        self._scan_generations = (0, 0)
        #: A scan whose bus connection died; stopped once bleak has reconnected.
        self._orphan: BleakScanner | None = None
        #: Counters: scans_started, in_progress_retries, start_failures, restarts_silent,
        #: bluetoothd_restarts, sessions_lost (stop found the session gone), bus_lost,
        #: stop_errors, power_cycles, power_cycle_failures.
        self._counters: collections.Counter[str] = collections.Counter()

    async def __aenter__(self) -> Self:
        # Before the driver's first D-Bus connection (the bus watch, bleak's manager): every
        # dbus-fast connection of the process must wait on a full send buffer instead of
        # closing (drivers/ble/sendbuffer.py). Raises SendBufferFixError if dbus-fast moved.
        install_send_buffer_fix()
        return await super().__aenter__()

    @property
    def counters(self) -> Mapping[str, int]:
        """Read-only view of the supervision counters (a missing name reads as 0)."""
        return MappingProxyType(self._counters)

    @property
    def config(self) -> BleConfig:
        return self._config

    @property
    def scanning(self) -> bool:
        """A scan is running (as far as the driver knows)."""
        return self._scanner is not None

    async def wait_scanning(self) -> None:
        """Return once a scan has been started."""
        await self._scanning.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; re-checked whenever a counter changes."""
        while not predicate():
            event = self._changed
            await event.wait()

    def _count(self, name: str) -> None:
        self._counters[name] += 1
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the device loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            # The bus watch lives exactly as long as this loop (a scoped group, not the
            # driver's owner): it is gone before the scan is stopped below.
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._watch.run(), name=f"{self.name}:bus-watch")
                await self._supervise()
        finally:
            # Stop while the queue is still open: bleak removes our callback first thing.
            await self._stop()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (forever if None), waking early when the bus or bluetoothd changes."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _supervise(self) -> None:
        check_every_s = self._config.watchdog_timeout_s / WATCHDOG_CHECKS_PER_TIMEOUT
        watch = self._watch
        while True:
            await self._follow_bus()
            if self._scanner is None:
                if not (watch.bus_up and watch.bluez_up):
                    await self._sleep(None)  # nothing to scan with until they are back
                    continue
                appeared_at = watch.bluez_appeared_at
                settle_s = 0.0
                if appeared_at is not None:
                    settle_s = appeared_at + BLUETOOTHD_SETTLE_S - self._clock.monotonic()
                if settle_s > 0:
                    await self._sleep(settle_s)
                    continue
                if self._supervisor.before_start() is RecoveryAction.POWER_CYCLE:
                    await self._power_cycle()
                try:
                    await self._start()
                except BleError as exc:
                    self._supervisor.start_failed()
                    self._count("start_failures")
                    failures = self.counters["start_failures"]
                    if failures % LOG_EVERY_FAILURES == 1:
                        _log.warning(
                            "%s: scan start failed (%s); retrying every %.0f s (%d failures)",
                            self.name,
                            exc,
                            START_RETRY_DELAY_S,
                            failures,
                        )
                    await self._sleep(START_RETRY_DELAY_S)
                    continue
            await self._sleep(check_every_s)
            if self._scan_generations != (watch.bus_generation, watch.bluez_generation):
                continue  # handled by _follow_bus at the top
            action = self._supervisor.check(self.last_event_at)
            if not self._supervisor.power_cycles_exhausted:
                self._quiet_logged = False
            if action is RecoveryAction.NONE:
                continue
            self._count("restarts_silent")
            self._log_silent_restart(action)
            await self._stop()
            if action is RecoveryAction.POWER_CYCLE:
                await self._power_cycle()

    def _log_silent_restart(self, action: RecoveryAction) -> None:
        timeout_s = self._config.watchdog_timeout_s
        if action is RecoveryAction.POWER_CYCLE:
            _log.warning(
                "%s: no advert for %.1f s, restarting the scan after an adapter power cycle",
                self.name,
                timeout_s,
            )
        elif not self._supervisor.power_cycles_exhausted:
            _log.warning("%s: no advert for %.1f s, restarting the scan", self.name, timeout_s)
        elif not self._quiet_logged:
            # Once per silence: a quiet site would otherwise log a warning every timeout.
            self._quiet_logged = True
            _log.warning(
                "%s: no advert for %.1f s after %d adapter power cycle(s): no tags in range? "
                "Restarting the scan every %.1f s; the adapter is not power cycled again "
                "until an advert arrives",
                self.name,
                timeout_s,
                self._supervisor.power_cycles_while_silent,
                timeout_s,
            )
        else:
            _log.info("%s: no advert for %.1f s, restarting the scan", self.name, timeout_s)

    async def _follow_bus(self) -> None:
        """React to what the bus watch saw since the scan started."""
        watch = self._watch
        if self._scanner is None:
            return
        bus_generation, bluez_generation = self._scan_generations
        if not watch.bus_up or watch.bus_generation != bus_generation:
            # The system bus went away, and bleak's connection with it. Calling into that dead
            # connection only produces errors, so the scan is set aside and stopped once
            # bleak has reconnected (see _start).
            async with self._lock:
                self._orphan, self._scanner = self._scanner, None
                self._scanning.clear()
            self._count("bus_lost")
            _log.warning("%s: the system bus went away; scanning again once it is back", self.name)
        elif watch.bluez_up and watch.bluez_generation != bluez_generation:
            # bluetoothd restarted: our discovery session or monitor died with the old one.
            self._count("bluetoothd_restarts")
            _log.warning("%s: bluetoothd restarted, restarting the scan", self.name)
            await self._stop()

    async def _close(self) -> None:
        await self._stop()  # normally already done by _run; a no-op then

    # -- start / stop under the lock -----------------------------------------------------------

    def _new_scanner(self) -> BleakScanner:
        bluez = BlueZScannerArgs(adapter=self._config.adapter)
        if self._config.mode is ScanMode.PASSIVE:
            bluez["or_patterns"] = list(or_patterns(self._config))
        return BleakScanner(self._on_advert, scanning_mode=self._config.mode.value, bluez=bluez)

    async def _start(self) -> None:
        async with self._lock:
            if self._scanner is not None:
                return
            if self._orphan is not None:
                await self._stop_orphan()
            generations = (self._watch.bus_generation, self._watch.bluez_generation)
            for attempt in range(IN_PROGRESS_RETRIES + 1):
                scanner = self._new_scanner()
                try:
                    async with asyncio.timeout(START_STOP_TIMEOUT_S):
                        await scanner.start()
                except BleakDBusError as exc:
                    if exc.dbus_error != _ERR_IN_PROGRESS:
                        raise BleError(BleErrorReason.DBUS_ERROR, str(exc)) from exc
                    if attempt == IN_PROGRESS_RETRIES:
                        break  # out of retries: a failed start, tried again later
                    self._count("in_progress_retries")
                    _log.info(
                        "%s: discovery start refused (InProgress), retry %d of %d",
                        self.name,
                        attempt + 1,
                        IN_PROGRESS_RETRIES,
                    )
                    await asyncio.sleep(IN_PROGRESS_RETRY_DELAY_S)
                    continue
                except BleakError as exc:
                    raise BleError(BleErrorReason.ADAPTER_UNAVAILABLE, str(exc)) from exc
                except TimeoutError as exc:
                    raise BleError(BleErrorReason.TIMEOUT, "starting the scan") from exc
                except (OSError, EOFError) as exc:
                    raise BleError(BleErrorReason.BUS_UNAVAILABLE, str(exc)) from exc
                self._scanner = scanner
                self._scan_generations = generations
                self._supervisor.scan_started()
                self._count("scans_started")
                self._scanning.set()
                _log.info("%s: %s scan started", self.name, self._config.mode.value)
                return
            raise BleError(BleErrorReason.IN_PROGRESS, f"{IN_PROGRESS_RETRIES} retries")

    async def _stop(self) -> None:
        async with self._lock:
            scanner, self._scanner = self._scanner, None
            self._scanning.clear()
            if scanner is not None:
                await self._stop_scanner(scanner)

    async def _stop_orphan(self) -> None:
        """Stop the scan set aside when the bus went away, now that the bus is back.

        bleak's manager reconnects first (:func:`connect_bleak_manager`), so the stop runs on a
        live connection: it removes the old callback and bluetoothd answers that it does not
        know the session. Must be called with the lock held, before a new scan starts (the
        stop would otherwise end the new session, which has the same client name).
        """
        orphan, self._orphan = self._orphan, None
        if orphan is None:
            return
        try:
            async with asyncio.timeout(START_STOP_TIMEOUT_S):
                await connect_bleak_manager()
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            self._orphan = orphan
            raise BleError(BleErrorReason.BUS_UNAVAILABLE, str(exc)) from exc
        await self._stop_scanner(orphan)

    async def _stop_scanner(self, scanner: BleakScanner) -> None:
        try:
            async with asyncio.timeout(START_STOP_TIMEOUT_S):
                await scanner.stop()
        except BleakDBusError as exc:
            if exc.dbus_error in _SESSION_LOST_ERRORS:
                # bluetoothd restarted (or the bus did): our session died with the old one.
                self._count("sessions_lost")
                _log.warning(
                    "%s: bluetoothd no longer knows our scan (%s): it restarted",
                    self.name,
                    exc.dbus_error_details or exc.dbus_error,
                )
            else:
                self._count("stop_errors")
                _log.warning("%s: stopping the scan failed: %s", self.name, exc)
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            self._count("stop_errors")
            _log.warning("%s: stopping the scan failed: %r", self.name, exc)

    async def _power_cycle(self) -> None:
        self._count("power_cycles")
        _log.warning("%s: power cycling the adapter", self.name)
        try:
            await power_cycle(self._config.adapter, off_s=self._power_off_s)
        except BleError as exc:
            self._count("power_cycle_failures")
            _log.warning("%s: adapter power cycle failed: %s", self.name, exc)

    # -- the callback edge ---------------------------------------------------------------------

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        clock = self._clock
        self._emit(
            RawAdvert(
                address=device.address,
                rssi=adv.rssi,
                manufacturer_data=MappingProxyType(adv.manufacturer_data),
                service_data=MappingProxyType(adv.service_data),
                service_uuids=tuple(adv.service_uuids),
                name=adv.local_name,
                tx_power=adv.tx_power,
                adapter=self._config.adapter,
                monotonic=clock.monotonic(),
                received_at=clock.now(),
            )
        )
