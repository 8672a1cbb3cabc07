"""The pipeline: the configured drivers, the stages that turn what they hear into events, and
the way into the outbox.

:class:`Pipeline` is an async context manager that owns its drivers (an exit stack) and its
stages (a :class:`~foundation.lifecycle.TaskOwner`, each stage supervised). Per BLE adapter, a
stage decodes adverts, tracks presence and rate-limits telemetry
(:class:`~gateway.pipeline.adverts.AdvertProcessor`); per SmartLabel reader, a stage turns
frames into events, waits for their commit and only then ACKs them
(:class:`~gateway.pipeline.labels.LabelProcessor`); the GPS stage feeds the clock and the
gateway's position; a ticker runs the timers (presence timeouts, silent labels, the NTP state).
Leaving the context stops the drivers first, lets every stage drain what they handed in,
commits it, and only then returns: that is how SIGTERM loses nothing.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from pydantic import JsonValue

from drivers.ble import BleScanner
from drivers.gps import GpsDriver, gps_driver
from drivers.serial import ReaderFrame, SerialLinkError, SmartLabelReaderDriver
from foundation.clock import Clock
from foundation.lifecycle import TaskOwner
from gateway.conditions import ConditionMonitor, DeviceSettings
from gateway.custody import CustodyEngine, CustodyResult
from gateway.events import EventSource, to_outbox
from gateway.health import Liveness
from gateway.outbox import AcceptStatus, EventClass, Outbox, OutboxError, OutboxEvent
from gateway.pipeline.adverts import AdvertProcessor, Reading
from gateway.pipeline.bindings import binding_event
from gateway.pipeline.claims import CLAIMS_EVERY_S, ClaimError, decode_claims, encode_claims
from gateway.pipeline.conditions import ConditionsBridge
from gateway.pipeline.config import CONDITIONS_PERSIST_S, EpcisOutput
from gateway.pipeline.custody import CustodyBridge
from gateway.pipeline.epcis import EpcisProfile
from gateway.pipeline.factory import EventFactory
from gateway.pipeline.labels import LabelProcessor
from gateway.pipeline.supervisor import Supervisor
from gateway.pipeline.telemetry import TelemetryLimiter
from gateway.pipeline.writer import EventWriter
from gateway.presence import PresenceChange, PresenceTracker
from gateway.registry import TagChange, TagRegistry
from gateway.state import StateError, StateStore
from gateway.timekeeping import TimeKeeper
from gateway.uplink import Uplink
from protocols.smartlabel import NackReason

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

__all__ = [
    "CONDITIONS_KEY",
    "CONDITIONS_NAMESPACE",
    "CUSTODY_KEY",
    "CUSTODY_NAMESPACE",
    "DBUS_ADDRESS_ENV",
    "Pipeline",
]

_log = logging.getLogger(__name__)

#: Where bleak (dbus-fast) looks for the system bus.
DBUS_ADDRESS_ENV: Final = "DBUS_SYSTEM_BUS_ADDRESS"
#: Where the condition monitor's state is kept in the state store.
CONDITIONS_NAMESPACE: Final = "conditions"
EXCURSION_KIND: Final = "condition.excursion"
CONDITIONS_KEY: Final = "monitor"
#: Where the custody engine's state (open sessions with their evidence, routes) is kept.
CUSTODY_NAMESPACE: Final = "custody"
CUSTODY_KEY: Final = "engine"
#: SmartLabel frames already queued when the label stage takes one go into the same commit, up
#: to this many: a reader's burst is one fsync, and the first frame's ACK waits for at most this.
LABEL_BATCH_MAX_FRAMES: Final = 256
#: ... and beside it, in the same transaction, the custody events of the latest saves: given to
#: the outbox again at start (it drops those it already has), so that a kill -9 between a save
#: and the outbox's commit loses no event the saved state has already moved past (a report).
CUSTODY_PENDING_KEY: Final = "pending"
#: How many such events are kept: far more than a group commit of the writer is ever behind.
CUSTODY_PENDING_KEPT: Final = 256
#: Scanner counters that mean "the scan was interrupted": tags heard before are unknown, not
#: away, until the scan is back (a bluetoothd restart must not produce a wave of exits).
_INTERRUPTIONS: Final = ("bluetoothd_restarts", "sessions_lost", "bus_lost", "power_cycles")


class Pipeline:
    """Drivers and stages of one gateway; ``async with Pipeline(...)``."""

    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        clock: Clock,
        *,
        registry: TagRegistry,
        timekeeper: TimeKeeper,
        presence: PresenceTracker,
        conditions: ConditionMonitor | None = None,
        custody: CustodyEngine | None = None,
        state: StateStore | None = None,
        site: Uplink | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        self._config = config
        #: Each stage's idle / busy state, for the watchdog (gateway.health).
        self.liveness = liveness if liveness is not None else Liveness()
        self._outbox = outbox
        self._clock = clock
        self._timekeeper = timekeeper
        self._presence = presence
        pcfg = config.pipeline
        self.telemetry = TelemetryLimiter(pcfg.telemetry)
        zones = {s.adapter: s.zone for s in config.ble.scanners}
        self.adverts = AdvertProcessor(
            zones,
            presence,
            self.telemetry,
            sample_interval_s=config.conditions.sample_interval_s,
            custody=custody,
            asset_of=registry.asset_of,
        )
        self.factory = EventFactory(config.gateway_id, registry, timekeeper)
        self.custody = None if custody is None else CustodyBridge(custody, self.factory, clock)
        self._state = state
        self.conditions = (
            None
            if conditions is None
            else ConditionsBridge(
                conditions,
                self.factory,
                clock,
                config.conditions.devices,
                # A label on goods without a profile: silent after pipeline.silent_after_s at
                # the soonest, as before profiles (longer for a label reporting slowly).
                DeviceSettings(
                    silent_floor_s=config.pipeline.silent_after_s,
                    silent_unlearned_s=config.pipeline.silent_after_s,
                ),
            )
        )
        self._persisted_at = -math.inf
        # One condition snapshot written at a time, so an older one never lands after a newer.
        self._conditions_lock = asyncio.Lock()
        self._site = site
        self._claims_at = -math.inf
        self._custody_saved: str | None = None
        #: One custody save at a time (the stages and the ticker save): a snapshot taken earlier
        #: never overwrites a later one.
        self._custody_lock = asyncio.Lock()
        self._custody_pending: collections.deque[OutboxEvent] = collections.deque(
            maxlen=CUSTODY_PENDING_KEPT
        )
        self._custody_pending_saved = True
        #: The custody engine's revision as last saved (see :meth:`_custody_events`).
        self._custody_revision = 0 if custody is None else custody.revision
        #: One per SmartLabel reader, by its configured path.
        self.labels: dict[str, LabelProcessor] = {}
        self.epcis = (
            None
            if config.epcis.mode is EpcisOutput.NATIVE
            else EpcisProfile(config.gateway_id, config.epcis, clock, timekeeper.correct_payload)
        )
        self.writer = EventWriter(
            outbox,
            clock,
            maxsize=pcfg.event_queue_size,
            extend=None if self.epcis is None else self.epcis.extend,
            beat=self.liveness.beat("writer"),
        )
        self.supervisor = Supervisor(pcfg.supervision, clock)
        self.scanners: list[BleScanner] = []
        self.readers: list[SmartLabelReaderDriver] = []
        self.gps: GpsDriver | None = None
        self.counters: collections.Counter[str] = collections.Counter()
        self._drivers = AsyncExitStack()
        #: The stages, the writer and the timers: tasks ``pipeline:<stage>``.
        self._owner = TaskOwner("pipeline")
        self._stages: list[asyncio.Task[None]] = []
        self._writer_task: asyncio.Task[None] | None = None
        self._interruptions: dict[str, int] = {}
        self._scanner_up: dict[str, bool] = {}

    # -- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        cfg = self._config
        if cfg.ble.dbus_system_bus_address is not None:
            # Read by dbus-fast when bleak connects: the one place this process points BlueZ
            # traffic at a non-default bus (a simulator, a container).
            os.environ[DBUS_ADDRESS_ENV] = cfg.ble.dbus_system_bus_address
        await self._owner.start()
        try:
            self._writer_task = self._owner.spawn(self.writer.run(), name="writer")
            await self._replay_custody()
            for scanner_cfg in cfg.ble.scanners:
                scanner = await self._drivers.enter_async_context(
                    BleScanner(scanner_cfg, clock=self._clock)
                )
                self.scanners.append(scanner)
                self._start(f"ble:{scanner_cfg.adapter}", self._ble_stage(scanner))
            for reader_cfg in cfg.smartlabel_readers:
                reader = await self._drivers.enter_async_context(
                    SmartLabelReaderDriver(reader_cfg, clock=self._clock)
                )
                self.readers.append(reader)
                labels = self.labels[reader_cfg.path] = LabelProcessor(
                    self.factory,
                    self._timekeeper,
                    self._clock,
                    silent_after_s=cfg.pipeline.silent_after_s,
                    time_sync_interval_s=reader_cfg.time_sync_interval_s,
                    conditions=self.conditions,
                )
                self._start(reader.name, self._label_stage(reader, labels, reader_cfg.zone))
            if cfg.gps is not None:
                self.gps = await self._drivers.enter_async_context(
                    gps_driver(cfg.gps, clock=self._clock)
                )
                self._start("gps", self._gps_stage(self.gps))
            if self._site is not None and self.custody is not None:
                claims_stage = self._claims_stage(self._site)
                # Not a driver stage: nothing to drain, it is cancelled at shutdown (its input
                # ends only when the uplink stops, which is after the pipeline).
                self._owner.spawn(
                    self.supervisor.run("site-claims", self._live("site-claims", claims_stage)),
                    name="site-claims",
                )
            self._owner.spawn(
                self.supervisor.run("ticker", self._live("ticker", self._ticker_stage)),
                name="ticker",
            )
        except BaseException as exc:
            await self._shutdown(type(exc), exc, exc.__traceback__)
            raise
        _log.info(
            "pipeline running: %d BLE adapter(s), %d SmartLabel reader(s), GPS %s",
            len(self.scanners),
            len(self.readers),
            "on" if self.gps is not None else "off",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown(exc_type, exc, tb)

    async def _shutdown(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The timers have nothing to drain: cancelled at once, the stages below drain.
        self._owner.cancel("ticker", "site-claims")
        try:
            # Drivers first: their queues close, each stage drains what is queued and ends.
            await self._drivers.aclose()
            if self._stages:
                await asyncio.wait(self._stages)
            # Then what the stages handed to the writer is committed, and the monitor's state.
            if self.epcis is not None:
                self.writer.submit(self.epcis.corrected())
                self.epcis.close()
            self.writer.close()
            if self._writer_task is not None:
                await asyncio.wait([self._writer_task])
            await self.persist_conditions()
            await self.persist_custody()
        finally:
            # Normally every task has ended here; after an error whatever is left is cancelled.
            await self._owner.stop(exc_type, exc, tb)
        _log.info(
            "pipeline stopped: %d events committed, %d dropped",
            self.writer.committed + self.counters["label_events"],
            self.writer.dropped,
        )

    def _start(self, name: str, stage: Callable[[], Awaitable[None]]) -> None:
        task = self._owner.spawn(self.supervisor.run(name, self._live(name, stage)), name=name)
        self._stages.append(task)

    def _live(
        self, name: str, stage: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """``stage``, marked idle whenever it ends or fails (a restart backoff is not a stall)."""
        liveness = self.liveness

        async def run() -> None:
            try:
                await stage()
            finally:
                liveness.idle(name)

        return run

    # -- stages -------------------------------------------------------------------------------

    def _ble_stage(self, scanner: BleScanner) -> Callable[[], Awaitable[None]]:
        live, name = self.liveness, f"ble:{scanner.config.adapter}"
        process = self.adverts.process
        writer = self.writer
        factory = self.factory
        bridge = self.conditions
        custody = self.custody

        async def stage() -> None:
            changes: list[PresenceChange] = []
            readings: list[Reading] = []
            samples: list[Reading] | None = None if bridge is None else []
            found: list[CustodyResult] | None = None if custody is None else []
            async for raw in live.each(name, scanner.events()):
                process(raw, changes, readings, samples, found)
                if found or (
                    custody is not None and custody.engine.revision != self._custody_revision
                ):
                    assert found is not None
                    writer.submit(await self._custody_events(found))
                    found.clear()
                if changes or readings:
                    writer.submit(factory.from_adverts(changes, readings))
                    changes.clear()
                    readings.clear()
                if samples:
                    assert bridge is not None
                    for sample in samples:
                        source = EventSource(device=sample.tag, via=sample.via, zone=sample.zone)
                        at = factory.stamp(sample.monotonic).time
                        events = bridge.readings(
                            sample.tag, source, sample.values, at, sample.monotonic
                        )
                        if events:
                            writer.submit(to_outbox(e) for e in events)
                    samples.clear()

        return stage

    def _claims_stage(self, site: Uplink) -> Callable[[], Awaitable[None]]:
        """Neighbours' claims into the custody engine (ends when the uplink stops)."""

        async def stage() -> None:
            assert self.custody is not None
            engine = self.custody.engine
            async for message in self.liveness.each("site-claims", site.site_messages()):
                try:
                    claims = decode_claims(message.data)
                except ClaimError as exc:
                    self.counters["site_claims_refused"] += 1
                    _log.debug("claims from %s refused: %s", message.sender, exc)
                    continue
                self.counters["site_claims"] += len(claims)
                engine.neighbour_claims(claims, message.received_s)

        return stage

    def binding_changed(self, change: TagChange, command_id: str) -> None:
        """Queue the ``tag.binding`` event of a ``tags.bind`` / ``tags.unbind`` just applied."""
        event = binding_event(self.factory, change, command_id, self._clock.monotonic())
        if event is not None:
            self.writer.submit([to_outbox(event)])

    async def _custody_events(self, found: Sequence[CustodyResult]) -> list[OutboxEvent]:
        """The events of custody results, after the engine's state was saved if it moved (a
        session opened, closed or reported, a crossing decided): an event that goes out is never
        one the state forgets in a kill -9 (docs/custody.md, "What a crash can lose")."""
        bridge = self.custody
        assert bridge is not None
        rows = [to_outbox(e) for e in bridge.events(found)]
        if rows:
            self._custody_pending.extend(rows)
            self._custody_pending_saved = False
        if rows or bridge.engine.revision != self._custody_revision:
            await self.persist_custody()
        return rows

    async def _replay_custody(self) -> None:
        """Give the outbox the custody events saved with the state (see CUSTODY_PENDING_KEY)."""
        if self.custody is None or self._state is None:
            return
        try:
            saved = await asyncio.to_thread(self._state.get, CUSTODY_NAMESPACE, CUSTODY_PENDING_KEY)
            rows = _pending_rows(saved)
        except (StateError, KeyError, TypeError, ValueError) as exc:
            _log.warning("saved custody events not replayed: %s", exc)
            return
        if rows:
            self._custody_pending.extend(rows)
            self.writer.submit(rows)
            _log.info("%d saved custody event(s) given to the outbox again", len(rows))

    async def persist_custody(self) -> None:
        """Write the custody engine's state (sessions, evidence, routes) to the state store."""
        bridge, state = self.custody, self._state
        if bridge is None or state is None:
            return
        async with self._custody_lock:
            await self._save_custody(bridge, state)

    async def _save_custody(self, bridge: CustodyBridge, state: StateStore) -> None:
        bridge.dirty = False
        revision = bridge.engine.revision
        snapshot = bridge.engine.snapshot()
        # Open sessions gather evidence between results: saved while it changes, but a state
        # that did not change is not written again (flash wear).
        text = json.dumps(snapshot, sort_keys=True)
        if text == self._custody_saved and self._custody_pending_saved:
            self._custody_revision = revision
            return
        documents: dict[str, JsonValue] = {CUSTODY_KEY: snapshot}
        pending_saved = self._custody_pending_saved
        if not pending_saved:
            documents[CUSTODY_PENDING_KEY] = [_pending_json(r) for r in self._custody_pending]
            self._custody_pending_saved = True
        try:
            await asyncio.to_thread(state.put_many, CUSTODY_NAMESPACE, documents)
        except StateError as exc:
            bridge.dirty = True
            self._custody_pending_saved = pending_saved
            _log.warning("custody state not saved: %s", exc)
            return
        self._custody_saved = text
        self._custody_revision = revision

    async def persist_conditions(self, force: bool = True) -> None:
        """Write the condition monitor's state (open excursions, totals) to the state store."""
        bridge, state = self.conditions, self._state
        if bridge is None or state is None or not (force or bridge.dirty):
            return
        async with self._conditions_lock:
            bridge.dirty = False
            snapshot = bridge.monitor.snapshot()
            try:
                await asyncio.to_thread(state.put, CONDITIONS_NAMESPACE, CONDITIONS_KEY, snapshot)
            except StateError as exc:
                bridge.dirty = True  # try again at the next tick
                _log.warning("condition state not saved: %s", exc)
        self._persisted_at = self._clock.monotonic()

    def _label_stage(
        self, reader: SmartLabelReaderDriver, labels: LabelProcessor, zone: str | None
    ) -> Callable[[], Awaitable[None]]:
        async def stage() -> None:
            frames = self.liveness.each(reader.name, reader.events())
            async for first in frames:
                batch = [first]
                # Frames already queued share the commit: one fsync for the lot, not one each
                # (taking a queued frame does not wait).
                while len(batch) < LABEL_BATCH_MAX_FRAMES and reader.queue_stats.depth:
                    batch.append(await anext(frames))
                await self._label_batch(reader, labels, zone, batch)

        return stage

    async def _label_batch(
        self,
        reader: SmartLabelReaderDriver,
        labels: LabelProcessor,
        zone: str | None,
        frames: list[ReaderFrame],
    ) -> None:
        """Commit the events of ``frames`` in one accept, then answer each frame."""
        outcomes = [labels.process(frame, zone) for frame in frames]
        rows: list[OutboxEvent] = []
        spans: list[tuple[int, int]] = []
        for outcome in outcomes:
            first = len(rows)
            if outcome.nack is None and outcome.events:
                rows.extend(self.epcis.extend(outcome.events) if self.epcis else outcome.events)
            spans.append((first, len(rows)))
        statuses: Sequence[AcceptStatus] = ()
        failed = False
        if rows:
            try:
                statuses = (await self._outbox.accept(rows)).statuses
            except OutboxError as exc:
                failed = True
                _log.warning("%d label frames not committed (%s): NACK busy", len(frames), exc)
        if not failed and any(row.kind == EXCURSION_KIND for row in rows):
            # The monitor's state with this excursion is durable before the reader forgets the
            # frame: a power cut then cannot open it again under a new id.
            await self.persist_conditions()
        for frame, outcome, (first, end) in zip(frames, outcomes, spans, strict=True):
            msg = frame.message
            try:
                if outcome.nack is not None:
                    self.counters[f"label_nack_{outcome.nack.name.lower()}"] += 1
                    await reader.nack(msg.label_id, msg.seq, outcome.nack)
                    continue
                if end > first:
                    mine = statuses[first:end]
                    if failed or AcceptStatus.REFUSED in mine:
                        self.counters["label_nack_busy"] += 1
                        await reader.nack(msg.label_id, msg.seq, NackReason.BUSY)
                        continue
                    self.counters["label_events"] += mine.count(AcceptStatus.ACCEPTED)
                    self.counters["label_duplicates"] += mine.count(AcceptStatus.DUPLICATE)
                # Committed (or nothing to commit): the reader may forget the frame.
                await reader.ack(msg.label_id, msg.seq)
                self.counters["label_acks"] += 1
                sync = labels.time_sync_due(msg.label_id, frame.monotonic)
                if sync is not None:
                    await reader.time_sync(msg.label_id, sync.utc, sync.source)
            except SerialLinkError as exc:
                # Unplugged between the frame and the answer: the reader resends whatever
                # it did not see ACKed, and the outbox drops the duplicate.
                self.counters["label_answer_lost"] += 1
                _log.debug("answer to label %x not sent: %s", msg.label_id, exc)

    def _gps_stage(self, driver: GpsDriver) -> Callable[[], Awaitable[None]]:
        async def stage() -> None:
            async for fix in self.liveness.each("gps", driver.events()):
                self._timekeeper.on_gps(driver.trusted_time, fix.monotonic)
                events = self.factory.from_gps(fix, self.telemetry)
                if self.custody is not None:
                    f = fix.fix
                    if f.lat is not None and f.lon is not None:
                        found = self.custody.engine.position(
                            f.lat, f.lon, fix.valid, fix.monotonic, f.hdop
                        )
                    else:
                        found = self.custody.engine.tick(fix.monotonic)
                    events.extend(await self._custody_events(found))
                if events:
                    self.writer.submit(events)

        return stage

    async def _ticker_stage(self) -> None:
        period = self._config.pipeline.tick_s
        sim = self._config.simulated_clock
        if sim is not None:
            period /= sim.speed  # the rules count scenario seconds
        while True:
            async with self.liveness.working("ticker"):
                await self._tick()
            await asyncio.sleep(period)

    async def _tick(self) -> None:
        """One round of the timers."""
        now = self._clock.monotonic()
        self._timekeeper.refresh(now)
        self._watch_scanners(now)
        changes = self._presence.tick(now)
        events = self.factory.from_adverts(changes, ())
        for labels in self.labels.values():
            events.extend(labels.tick(now))
        if self.conditions is not None:
            events.extend(to_outbox(e) for e in self.conditions.tick(now))
        if self.custody is not None:
            found = self.custody.engine.tick(now)
            events.extend(await self._custody_events(found))
        if self.epcis is not None:
            events.extend(self.epcis.corrected())  # unsynced events, now the clock is trusted
        if events:
            self.writer.submit(events)
        if (
            self._site is not None
            and self.custody is not None
            and now - self._claims_at >= CLAIMS_EVERY_S
        ):
            self._claims_at = now
            claims = self.custody.engine.claims()
            if claims:
                self._site.publish_site(encode_claims(claims))
        if now - self._persisted_at >= CONDITIONS_PERSIST_S:
            await self.persist_conditions(force=False)
            await self.persist_custody()
        elif self.conditions is not None and self.conditions.dirty:
            # An excursion opened or closed (from adverts): saved within a tick, so a power
            # cut does not forget an excursion whose open was already published.
            await self.persist_conditions(force=False)

    def _watch_scanners(self, now: float) -> None:
        """Tell presence (and the custody engine's doors) when a scanner stopped or was
        interrupted, and when it is back."""
        zones = {sc.adapter: sc.zone for sc in self._config.ble.scanners}
        for scanner in self.scanners:
            adapter = scanner.config.adapter
            interruptions = sum(scanner.counters[name] for name in _INTERRUPTIONS)
            interrupted = interruptions != self._interruptions.get(adapter, interruptions)
            self._interruptions[adapter] = interruptions
            up = scanner.scanning and not interrupted
            was_up = self._scanner_up.get(adapter)
            engine = None if self.custody is None else self.custody.engine
            zone = zones.get(adapter)
            if was_up is not False and not up:
                self._presence.scanner_down(adapter, now)
                if engine is not None:
                    engine.receiver(zone or "", adapter, False, now)
            if up and was_up is not True:
                self._presence.scanner_up(adapter, now)
                if engine is not None:
                    engine.receiver(zone or "", adapter, True, now)
            self._scanner_up[adapter] = up


def _pending_json(row: OutboxEvent) -> JsonValue:
    return {
        "event_id": row.event_id,
        "class": int(row.event_class),
        "kind": row.kind,
        "payload": row.payload.decode(),
        "dedup_key": row.dedup_key,
        "source": row.source,
    }


def _pending_rows(saved: JsonValue) -> list[OutboxEvent]:
    """The rows of :func:`_pending_json` values (raises KeyError / TypeError / ValueError)."""
    if saved is None:
        return []
    rows: Any = saved
    return [
        OutboxEvent(
            event_id=str(r["event_id"]),
            event_class=EventClass(int(r["class"])),
            kind=str(r["kind"]),
            payload=str(r["payload"]).encode(),
            dedup_key=None if r["dedup_key"] is None else str(r["dedup_key"]),
            source=str(r["source"]),
        )
        for r in rows
    ]
