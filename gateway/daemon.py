"""The long-lived gateway process: the outbox, the state store, the clock, the uplink and the
pipeline with its drivers; stops cleanly on SIGTERM, and talks to systemd.

:class:`Daemon` is an async context manager owning a TaskGroup. Entering it opens the outbox,
the state store (tag bindings), then the uplink and the pipeline (drivers and stages), and tells
systemd ``READY=1``; leaving it closes them in reverse order: the pipeline stops its drivers and
commits what they handed in, the uplink publishes its offline status and hands un-acknowledged
rows back, the outbox commits what it holds. With ``WatchdogSec=`` set, a task sends
``WATCHDOG=1`` at half the interval from the event loop itself, so a wedged loop gets the
process restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Final, Self

import sdnotify
from pydantic import JsonValue
from pydantic_core import to_jsonable_python

from drivers.clock import Clock, ScaledClock, SystemClock
from gateway.conditions import ConditionMonitor, ConditionResult, register_condition_commands
from gateway.config import GatewayConfig, config_hash, redacted_view
from gateway.custody import CustodyEngine, register_custody_commands
from gateway.errors import GatewayError
from gateway.events import to_outbox
from gateway.metrics import GatewayMetrics
from gateway.metrics.wiring import serve_metrics
from gateway.outbox import Outbox
from gateway.pipeline.pipeline import (
    CONDITIONS_KEY,
    CONDITIONS_NAMESPACE,
    CUSTODY_KEY,
    CUSTODY_NAMESPACE,
    Pipeline,
)
from gateway.pipeline.supervisor import StageFailed
from gateway.presence import PresenceTracker
from gateway.registry import TagRegistry, register_tag_commands
from gateway.state import STATE_FILE_NAME, StateStore
from gateway.timekeeping import TimeKeeper, read_boot_id, system_ntp_synchronized
from gateway.uplink import ConnectionState, StatusInfo, Uplink, default_registry

__all__ = ["Daemon", "SystemdNotifier", "gateway_version", "run_daemon"]

_log = logging.getLogger(__name__)

#: The outbox database inside the state directory.
OUTBOX_FILE_NAME: Final = "outbox.db"
#: Ping the watchdog at this fraction of WatchdogSec: systemd's own recommendation is half.
WATCHDOG_FRACTION: Final = 0.5
#: Exit code when a pipeline stage kept failing (EX_SOFTWARE: an internal error; systemd
#: restarts the service, and the journal holds the tracebacks).
EXIT_STAGE_FAILED: Final = 70


def gateway_version() -> str:
    try:
        return version("tagrelay")
    except PackageNotFoundError:
        return "0+unknown"


class SystemdNotifier:
    """``sd_notify`` when started by systemd (``NOTIFY_SOCKET`` set), else a no-op.

    The datagram socket is non-blocking: if nobody reads it, a notification is dropped
    rather than stalling the event loop (which would stall delivery, too).
    """

    def __init__(self, enabled: bool, watchdog_interval_s: float | None) -> None:
        self.enabled = enabled
        self.watchdog_interval_s = watchdog_interval_s
        self._notifier: sdnotify.SystemdNotifier | None = None
        if enabled:
            # sdnotify reads NOTIFY_SOCKET itself and swallows send errors (debug=False).
            self._notifier = sdnotify.SystemdNotifier()
            self._notifier.socket.setblocking(False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier:
        enabled = bool(environ.get("NOTIFY_SOCKET"))
        usec = environ.get("WATCHDOG_USEC", "")
        interval = int(usec) / 1e6 * WATCHDOG_FRACTION if usec.isdigit() else None
        return cls(enabled, interval if enabled else None)

    def notify(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.socket.close()
            self._notifier = None


class Daemon:
    """The gateway's components, opened in order and closed in reverse."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self._config = config
        self._clock = clock if clock is not None else SystemClock()
        self._notifier = notifier if notifier is not None else SystemdNotifier(False, None)
        self._stack = AsyncExitStack()
        self._tasks: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self.outbox: Outbox | None = None
        self.uplink: Uplink | None = None
        self.pipeline: Pipeline | None = None
        #: The Prometheus collector when ``[metrics]`` is enabled.
        self.metrics = GatewayMetrics(self._clock) if config.metrics.enabled else None
        # Scenario time is the world's own truth: trusted like an NTP-synchronised clock
        # (unless the scenario says it is a clock nobody set).
        sim = config.simulated_clock
        synced = sim is not None and sim.synchronized
        self.timekeeper = TimeKeeper(
            self._clock,
            boot_id=read_boot_id(),
            ntp_synchronized=(lambda: synced) if sim is not None else system_ntp_synchronized,
        )

    async def __aenter__(self) -> Self:
        cfg = self._config
        try:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
            self.outbox = await self._stack.enter_async_context(
                Outbox(cfg.state_dir / OUTBOX_FILE_NAME, cfg.outbox, self._clock)
            )
            outbox = self.outbox

            async def outbox_stats() -> JsonValue:
                stats: JsonValue = to_jsonable_python(await outbox.stats())
                return stats

            state = StateStore(cfg.state_dir / STATE_FILE_NAME, self._clock)
            await asyncio.to_thread(state.open)
            self._stack.callback(state.close)
            tags = await asyncio.to_thread(TagRegistry.load, state, cfg.tags)
            timekeeper = self.timekeeper

            conditions = ConditionMonitor(
                cfg.conditions.profiles,
                cfg.conditions.assignments,
                default_profile=cfg.conditions.default_profile,
            )
            await self._restore(
                state, CONDITIONS_NAMESPACE, CONDITIONS_KEY, conditions.restore, "condition"
            )

            async def persist_conditions(results: Sequence[ConditionResult]) -> None:
                # A profile change can close excursions: their events go out like any other.
                pipeline = self.pipeline
                if pipeline is None or pipeline.conditions is None:
                    return
                events = pipeline.conditions.events(results, None, self._clock.monotonic())
                if events:
                    await outbox.accept([to_outbox(e) for e in events])
                await pipeline.persist_conditions()

            zones = tuple(dict.fromkeys(s.zone for s in cfg.ble.scanners))
            doors, cargo = cfg.custody.roles(zones)
            custody = CustodyEngine(door_zones=doors, cargo_zones=cargo)
            await self._restore(state, CUSTODY_NAMESPACE, CUSTODY_KEY, custody.restore, "custody")

            async def persist_custody() -> None:
                if self.pipeline is not None:
                    await self.pipeline.persist_custody()

            registry = default_registry(self._clock, redacted_view(cfg), outbox_stats)
            register_tag_commands(registry, tags, state)
            register_custody_commands(registry, custody, self._clock, persist_custody)
            register_condition_commands(registry, conditions, persist_conditions)
            self.uplink = await self._stack.enter_async_context(
                Uplink(
                    cfg.uplink,
                    cfg.gateway_id,
                    self.outbox,
                    self._clock,
                    status=StatusInfo(gateway_version(), config_hash(cfg)),
                    commands=registry,
                    on_state=self._on_uplink_state,
                    clock_state=lambda: timekeeper.state.value,
                    rewrite=timekeeper.correct_payload,
                    on_delivery=None if self.metrics is None else self.metrics.on_delivery,
                )
            )
            presence = PresenceTracker(cfg.presence)
            self.pipeline = await self._stack.enter_async_context(
                Pipeline(
                    cfg,
                    self.outbox,
                    self._clock,
                    registry=tags,
                    timekeeper=timekeeper,
                    presence=presence,
                    conditions=conditions,
                    custody=custody,
                    state=state,
                    site=self.uplink,
                )
            )
            if self.metrics is not None:
                await serve_metrics(
                    self._stack,
                    cfg,
                    self.metrics,
                    outbox=outbox,
                    uplink=self.uplink,
                    pipeline=self.pipeline,
                    timekeeper=timekeeper,
                    presence=presence,
                    custody=custody,
                    conditions=conditions,
                    version=gateway_version(),
                )
            self._tasks = asyncio.TaskGroup()
            await self._stack.enter_async_context(self._tasks)
            self._tasks.create_task(self._supervise(self.uplink))
            if self._notifier.watchdog_interval_s is not None:
                self._tasks.create_task(self._watchdog(self._notifier.watchdog_interval_s))
        except BaseException:
            await self._stack.aclose()
            raise
        self._notifier.notify("READY=1")
        _log.info("tagrelay %s running as %s", gateway_version(), cfg.gateway_id)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._notifier.notify("STOPPING=1")
        self._stop.set()
        await self._stack.__aexit__(exc_type, exc, tb)
        _log.info("tagrelay stopped")

    def stop(self) -> None:
        self._stop.set()

    async def _restore(
        self,
        state: StateStore,
        namespace: str,
        key: str,
        restore: Callable[[JsonValue], object],
        what: str,
    ) -> None:
        """A domain's state from before a restart (never a reason not to start)."""
        try:
            snapshot = await asyncio.to_thread(state.get, namespace, key)
            if snapshot is not None and restore(snapshot) is False:
                _log.error("%s state from before the restart is not readable; ignored", what)
        except Exception:
            _log.exception("%s state could not be restored; starting without it", what)

    async def wait_stopped(self) -> None:
        """Until SIGTERM / SIGINT (or :meth:`stop`)."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._stop.wait()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        _log.info("%s: draining and stopping", sig.name)
        self._stop.set()

    def _on_uplink_state(self, state: ConnectionState, detail: str) -> None:
        self._notifier.notify(f"STATUS=uplink {state.value}: {detail}")

    async def _supervise(self, uplink: Uplink) -> None:
        """The uplink retries connection problems forever; if its loop ends anyway, that is
        a bug: fail the TaskGroup so the process exits and systemd restarts it."""
        finished = asyncio.create_task(uplink.wait_finished())
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait([finished, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not finished.done():
                finished.cancel()  # only our wait: the uplink itself is shielded
        if finished.done() and not finished.cancelled():
            finished.result()  # re-raises the uplink's failure
            if not self._stop.is_set():
                raise GatewayError("the uplink stopped unexpectedly")

    async def _watchdog(self, interval_s: float) -> None:
        while not self._stop.is_set():
            self._notifier.notify("WATCHDOG=1")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await self._stop.wait()


async def run_daemon(config: GatewayConfig, environ: Mapping[str, str]) -> int:
    """``tagrelay run``: until SIGTERM; the exit code for systemd."""
    notifier = SystemdNotifier.from_environ(environ)
    failed: list[BaseException] = []
    sim = config.simulated_clock
    clock: Clock | None = None
    if sim is not None:
        clock = ScaledClock(sim.start, sim.speed, sim.anchor_monotonic_s)
        _log.warning("simulated clock: scenario time from %s at %gx", sim.start, sim.speed)
    try:
        async with Daemon(config, clock=clock, notifier=notifier) as daemon:
            await daemon.wait_stopped()
    except* StageFailed as group:
        failed.extend(group.exceptions)
    finally:
        notifier.close()
    for exc in failed:
        _log.critical("%s", exc)
    return EXIT_STAGE_FAILED if failed else 0
