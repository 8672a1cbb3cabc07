"""The long-lived gateway process: the outbox, the state store, the clock, the uplink and the
pipeline with its drivers; stops cleanly on SIGTERM, and talks to systemd.

:class:`Daemon` is an async context manager owning its tasks (a
:class:`~foundation.lifecycle.TaskOwner`: the uplink's supervisor, the status line, the
watchdog). Entering it opens the outbox, the state store (tag bindings), then the uplink and
the pipeline (drivers and stages), and tells systemd ``READY=1``; leaving it closes them in
reverse order: the pipeline stops its drivers and commits what they handed in, the uplink
publishes its offline status and hands un-acknowledged rows back, the outbox commits what it
holds.

``READY=1`` is sent once the outbox is open, the uplink's connection loop runs (a broker that
is away is not a reason to fail the start: the outbox is there for that) and every driver is
started. ``STATUS=`` lines say the link state, the outbox depth and the tags present. With
``WatchdogSec=`` set, ``WATCHDOG=1`` is sent at half the interval only while every pipeline
stage and the uplink's publisher make progress (:mod:`gateway.health`): a stage stuck on one
item (an outbox call of the publisher that never returns) for longer than the watchdog timeout
stops the pings, and systemd restarts the process, as it does for a wedged event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Final, Self

from pydantic import JsonValue
from pydantic_core import to_jsonable_python

from foundation.clock import Clock, ScaledClock, SystemClock
from foundation.lifecycle import TaskOwner
from gateway.conditions import (
    ConditionMonitor,
    ConditionResult,
    ManifestProfileSink,
    register_condition_commands,
)
from gateway.config import GatewayConfig, config_hash, redacted_view
from gateway.custody import CustodyEngine, TriggerSpec, register_custody_commands
from gateway.errors import GatewayError
from gateway.events import to_outbox
from gateway.health import WEDGE_ENV, Liveness
from gateway.logs import flush_repeats
from gateway.metrics import GatewayMetrics
from gateway.metrics.wiring import serve_metrics
from gateway.notify import SystemdNotifier
from gateway.outbox import EventClass, Outbox, OutboxStats
from gateway.pipeline.pipeline import (
    CONDITIONS_KEY,
    CONDITIONS_NAMESPACE,
    CUSTODY_KEY,
    CUSTODY_NAMESPACE,
    Pipeline,
)
from gateway.pipeline.supervisor import StageFailed
from gateway.presence import PresenceTracker
from gateway.registry import TagChange, TagRegistry, register_tag_commands
from gateway.state import STATE_FILE_NAME, StateStore
from gateway.timekeeping import SystemClockProbe, TimeKeeper, read_boot_id
from gateway.uplink import ConnectionState, StatusInfo, Uplink, default_registry

__all__ = ["Daemon", "SystemdNotifier", "gateway_version", "outbox_stats_view", "run_daemon"]

_log = logging.getLogger(__name__)

#: The outbox database inside the state directory.
OUTBOX_FILE_NAME: Final = "outbox.db"
#: How often the STATUS= line is refreshed (and at once when the link changes).
STATUS_EVERY_S: Final = 10.0
#: Exit code when a pipeline stage kept failing (EX_SOFTWARE: an internal error; systemd
#: restarts the service, and the journal holds the tracebacks).
EXIT_STAGE_FAILED: Final = 70


def gateway_version() -> str:
    try:
        return version("tagrelay")
    except PackageNotFoundError:
        return "0+unknown"


def outbox_stats_view(stats: OutboxStats) -> JsonValue:
    """The ``outbox.stats`` command's answer: the snapshot as JSON, event classes by name."""
    data = to_jsonable_python(stats)
    for key in ("classes", "losses"):
        for row in data.get(key, ()):
            row["event_class"] = EventClass(row["event_class"]).name.lower()
    view: JsonValue = data
    return view


class Daemon:
    """The gateway's components, opened in order and closed in reverse."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock | None = None,
        notifier: SystemdNotifier | None = None,
        wedge: tuple[str, ...] = (),
    ) -> None:
        self._config = config
        self._clock = clock if clock is not None else SystemClock()
        self._notifier = notifier if notifier is not None else SystemdNotifier()
        #: The progress of every pipeline stage and of the uplink's publisher (its leases and
        #: acknowledgements), checked before each watchdog ping.
        self.liveness = Liveness(wedge=wedge)
        self._presence = PresenceTracker(config.presence)
        self._link = "starting"
        self._outbox_depth: int | None = None
        self._stalled: str | None = None
        self._status_due = asyncio.Event()
        self._stack = AsyncExitStack()
        #: The daemon's own tasks, ``daemon:<name>``; they end by themselves once stopping.
        self._owner = TaskOwner("daemon")
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
            ntp_synchronized=(lambda: synced) if sim is not None else SystemClockProbe(),
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
                return outbox_stats_view(await outbox.stats())

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
                    rows = [to_outbox(e) for e in events]
                    if pipeline.epcis is not None:
                        rows = pipeline.epcis.extend(rows)
                    await outbox.accept(rows)
                await pipeline.persist_conditions()

            zones = tuple(dict.fromkeys(s.zone for s in cfg.ble.scanners))
            doors, cargo = cfg.custody.roles(zones)
            custody = CustodyEngine(
                door_zones=doors,
                cargo_zones=cargo,
                triggers=[
                    TriggerSpec(t.door, t.vehicle, t.from_party, t.to_party, t.window_s)
                    for t in cfg.custody.triggers
                ],
                trigger_epoch=self._clock.now().strftime("%Y%m%dT%H%M%SZ"),
            )
            await self._restore(state, CUSTODY_NAMESPACE, CUSTODY_KEY, custody.restore, "custody")

            async def persist_custody() -> None:
                if self.pipeline is not None:
                    await self.pipeline.persist_custody()

            registry = default_registry(self._clock, redacted_view(cfg), outbox_stats)
            register_tag_commands(registry, tags, state, on_change=self._binding_changed)
            register_custody_commands(
                registry,
                custody,
                self._clock,
                persist_custody,
                profiles=ManifestProfileSink(conditions, persist_conditions),
            )
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
                    busy=self.liveness.working,
                )
            )
            self.pipeline = await self._stack.enter_async_context(
                Pipeline(
                    cfg,
                    self.outbox,
                    self._clock,
                    registry=tags,
                    timekeeper=timekeeper,
                    presence=self._presence,
                    conditions=conditions,
                    custody=custody,
                    state=state,
                    site=self.uplink,
                    liveness=self.liveness,
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
                    presence=self._presence,
                    custody=custody,
                    conditions=conditions,
                    version=gateway_version(),
                )
            await self._owner.start()
            self._stack.push_async_exit(self._stop_tasks)
            self._owner.spawn(self._supervise(self.uplink), name="uplink-supervisor")
            self._owner.spawn(self._status_loop(), name="status")
            timeout = self._notifier.watchdog_timeout_s
            if timeout is not None:
                self._owner.spawn(self._watchdog(timeout), name="watchdog")
            await self._refresh_depth()
        except BaseException:
            self._stop.set()  # the daemon's tasks, if started, end by themselves
            await self._stack.aclose()
            raise
        self._notifier.ready(self.status_text())
        _log.info("tagrelay %s running as %s", gateway_version(), cfg.gateway_id)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._notifier.stopping()
        self._stop.set()
        await self._stack.__aexit__(exc_type, exc, tb)
        _log.info("tagrelay stopped")

    async def _stop_tasks(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # First on the way out: ``_stop`` is set, so the loops end by themselves (the uplink
        # supervisor still raises a failure it saw); after an error they are cancelled.
        await self._owner.stop(exc_type, exc, tb, cancel=() if exc_type is None else None)

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
        """Until SIGTERM / SIGINT (see :meth:`signals_handled`) or :meth:`stop`."""
        await self._stop.wait()

    @contextlib.contextmanager
    def signals_handled(self) -> Iterator[None]:
        """SIGTERM / SIGINT stop the daemon cleanly, also while it is still starting (a stop
        right after READY=1 must drain, not kill)."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        _log.info("%s: draining and stopping", sig.name)
        self._stop.set()

    def _binding_changed(self, change: TagChange, command_id: str) -> None:
        if self.pipeline is not None:
            self.pipeline.binding_changed(change, command_id)
        else:  # a command before the pipeline started: the binding holds, its event is lost
            _log.warning("tag.binding of %s (command %s) not emitted", change.tag, command_id)

    def _on_uplink_state(self, state: ConnectionState, detail: str) -> None:
        self._link = f"{state.value}: {detail}" if detail else state.value
        self._status_due.set()

    def status_text(self) -> str:
        """The one line systemd shows in ``systemctl status``."""
        depth = "?" if self._outbox_depth is None else str(self._outbox_depth)
        present = len(set(self._presence.present()))
        stalled = "" if self._stalled is None else f"stalled: {self._stalled}; "
        return f"{stalled}uplink {self._link}; outbox {depth} queued; {present} tags present"

    async def _refresh_depth(self) -> None:
        if self.outbox is None:
            return
        try:
            stats = await self.outbox.stats()
        except GatewayError as exc:
            _log.debug("outbox depth for the status line: %s", exc)
            return
        self._outbox_depth = sum(c.depth for c in stats.classes)

    async def _status_loop(self) -> None:
        """The STATUS= line, and the log's pending "repeated N times" lines."""
        while not self._stop.is_set():
            flush_repeats()
            if self._notifier.enabled:
                await self._refresh_depth()
                self._notifier.status(self.status_text())
            self._status_due.clear()
            # Woken by a link change, or by the stop (the daemon waits for this task). Two
            # short-lived wait tasks, not owned: both are cancelled before this round ends.
            waits = [
                asyncio.create_task(self._status_due.wait()),
                asyncio.create_task(self._stop.wait()),
            ]
            try:
                await asyncio.wait(
                    waits, timeout=STATUS_EVERY_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for wait in waits:
                    wait.cancel()

    async def _supervise(self, uplink: Uplink) -> None:
        """The uplink retries connection problems forever; if its loop ends anyway, that is
        a bug: fail the daemon's tasks so the process exits and systemd restarts it."""
        # Two short-lived wait tasks, not owned: neither outlives this call.
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

    async def _watchdog(self, timeout_s: float) -> None:
        """Ping at half the timeout while no stage has been stuck on one item for longer than
        the timeout itself; say once which stage stopped the pings."""
        interval_s = timeout_s / 2
        reported: frozenset[str] = frozenset()
        while not self._stop.is_set():
            stalls = self.liveness.stalled(timeout_s)
            names = frozenset(s.stage for s in stalls)
            if not stalls:
                if reported:
                    _log.warning("gateway making progress again: watchdog pings resumed")
                self._notifier.watchdog()
            elif names != reported:
                what = ", ".join(str(s) for s in stalls)
                _log.error(
                    "gateway stalled (%s): no more watchdog pings, systemd will restart it",
                    what,
                )
                self._stalled = what
                self._notifier.status(self.status_text())
            if not stalls:
                self._stalled = None
            reported = names
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await self._stop.wait()


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    """The exceptions in a group, nested groups (one per task owner) opened."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


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
        wedge = tuple(n for n in environ.get(WEDGE_ENV, "").split(",") if n)
        daemon = Daemon(config, clock=clock, notifier=notifier, wedge=wedge)
        with daemon.signals_handled():
            async with daemon:
                await daemon.wait_stopped()
    except* StageFailed as group:
        failed.extend(_leaves(group))
    finally:
        notifier.close()
    for exc in failed:
        _log.critical("%s", exc)
    return EXIT_STAGE_FAILED if failed else 0
