"""The device sections and the pipeline's tunables of the gateway configuration.

``[[ble.scanners]]`` binds each BLE adapter to a presence zone, ``[[smartlabel_readers]]`` names
the serial readers, ``[gps]`` the vehicle receiver, ``[pipeline]`` the queues, supervision and
telemetry rate limits. Defaults are what a site engineer would pick for a dock door; every field
says why in its description (``tagrelay config show`` prints the effective values).
"""

from __future__ import annotations

import enum
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.ble import BleConfig
from drivers.serial import SerialConfig
from gateway.conditions import PRESETS, DeviceSettings, Profile

__all__ = [
    "ZONE_PATTERN",
    "BleScannerConfig",
    "BleSection",
    "ConditionsConfig",
    "CustodyConfig",
    "CustodyTrigger",
    "EpcisConfig",
    "EpcisOutput",
    "PipelineConfig",
    "SmartLabelReaderConfig",
    "SupervisionConfig",
    "TelemetryConfig",
]

#: A zone is a topic-safe, log-friendly name: ``door-3``, ``cargo``, ``cold-store``.
ZONE_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,31}$"

#: Queue between the decode stage and the writer: a few seconds of a busy door (10k adverts/s
#: would be far beyond any site; the writer commits thousands of events per group).
EVENT_QUEUE_SIZE: Final = 20_000
#: Tick of the timers (presence timeouts, silent devices, clock refresh): exits are promised
#: within 3 advertising intervals + 5 s, so a 1 s tick costs at most a second of that budget.
TICK_S: Final = 1.0
#: The first restart of a failed stage waits this long, doubling up to the maximum below: fast
#: enough that one bad input costs nothing, slow enough that a tight crash loop does not fill
#: the journal.
RESTART_MIN_S: Final = 0.5
RESTART_MAX_S: Final = 30.0
#: A stage that fails this many times within the window ends the process (systemd restarts it
#: with a clean slate, and its restart counter shows the site engineer that something is wrong).
MAX_FAILURES: Final = 5
FAILURE_WINDOW_S: Final = 300.0
#: Telemetry: a tag advertising at 10 Hz with stable readings must not become 10 events a second
#: on a cellular link. Changes beyond the deadband go out at most every MIN_INTERVAL; unchanged
#: readings are re-sent every MAX_INTERVAL as a heartbeat of the value (60 per tag-hour).
TELEMETRY_MIN_INTERVAL_S: Final = 10.0
TELEMETRY_MAX_INTERVAL_S: Final = 60.0
#: Deadbands: about the sensors' own accuracy (SHT3x ±0.2 °C / ±2 %RH; GPS ±10-25 m), so noise
#: alone never counts as a change.
DEADBAND_TEMPERATURE_C: Final = 0.3
DEADBAND_HUMIDITY_PCT: Final = 2.0
DEADBAND_PRESSURE_PA: Final = 100.0
DEADBAND_BATTERY_MV: Final = 50.0
DEADBAND_ACCELERATION_G: Final = 0.2
DEADBAND_POSITION_M: Final = 25.0
#: BLE sensor tags feed the condition monitor at most this often each (a 10 Hz tag would
#: otherwise cost 36,000 readings an hour; a logger samples every 1-5 minutes).
CONDITIONS_SAMPLE_S: Final = 10.0
#: The monitor's state (open excursions, cumulative totals) is written to the state store at
#: most this often while it changes, and at every excursion open / close and at shutdown.
CONDITIONS_PERSIST_S: Final = 30.0
#: A SmartLabel reader's labels are given the gateway's time this often (and at every connect),
#: so their own clocks never drift far from it.
TIME_SYNC_INTERVAL_S: Final = 3600.0
#: A label that sent nothing for this long is reported silent (device.status); labels report
#: every minute or more often, heartbeats included.
SILENT_AFTER_S: Final = 600.0


class BleScannerConfig(BleConfig):
    """One BLE adapter and the presence zone it covers."""

    zone: str = Field(
        pattern=ZONE_PATTERN,
        description="presence zone this adapter covers (e.g. door-3, cargo)",
    )


class BleSection(BaseModel):
    """BLE scanning: the adapters, and the system bus when it is not the default one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dbus_system_bus_address: str | None = Field(
        default=None,
        description=(
            "D-Bus system bus address for BlueZ (sets DBUS_SYSTEM_BUS_ADDRESS for this process); "
            "None = the default bus. For simulators and containers."
        ),
    )
    scanners: tuple[BleScannerConfig, ...] = ()

    @model_validator(mode="after")
    def _one_scanner_per_adapter(self) -> Self:
        adapters = [s.adapter for s in self.scanners]
        if len(adapters) != len(set(adapters)):
            raise ValueError("each adapter may be listed once")
        return self


class SmartLabelReaderConfig(SerialConfig):
    """A SmartLabel reader on a serial path or URL."""

    zone: str | None = Field(
        default=None,
        pattern=ZONE_PATTERN,
        description="zone the reader sits in (recorded on the events of its labels)",
    )
    time_sync_interval_s: float = Field(
        default=TIME_SYNC_INTERVAL_S,
        gt=0,
        description="how often each label heard is sent the gateway's time",
    )


class TelemetryConfig(BaseModel):
    """Rate limits and deadbands of telemetry.reading / telemetry.position, per source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_interval_s: float = Field(default=TELEMETRY_MIN_INTERVAL_S, ge=0)
    max_interval_s: float = Field(default=TELEMETRY_MAX_INTERVAL_S, gt=0)
    temperature_c: float = Field(default=DEADBAND_TEMPERATURE_C, ge=0)
    humidity_pct: float = Field(default=DEADBAND_HUMIDITY_PCT, ge=0)
    pressure_pa: float = Field(default=DEADBAND_PRESSURE_PA, ge=0)
    battery_mv: float = Field(default=DEADBAND_BATTERY_MV, ge=0)
    acceleration_g: float = Field(default=DEADBAND_ACCELERATION_G, ge=0)
    position_m: float = Field(default=DEADBAND_POSITION_M, ge=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> Self:
        if self.min_interval_s > self.max_interval_s:
            raise ValueError("min_interval_s must not exceed max_interval_s")
        return self


class SupervisionConfig(BaseModel):
    """How a failing pipeline stage is restarted, and when the process gives up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    restart_min_s: float = Field(default=RESTART_MIN_S, gt=0)
    restart_max_s: float = Field(default=RESTART_MAX_S, gt=0)
    max_failures: int = Field(default=MAX_FAILURES, ge=1)
    failure_window_s: float = Field(default=FAILURE_WINDOW_S, gt=0)


class ConditionsConfig(BaseModel):
    """Cold-chain condition profiles (docs/conditions.md) and who they apply to.

    The presets (``pharma-2-8``, ``who-pqs-refrigerator``, ``frozen``, ``ambient-15-25``,
    ``parcel`` ...) are always known; ``profiles`` adds or replaces profiles by name.
    ``assignments`` maps an asset URI or a tag id to a profile; ``default_profile`` applies to
    every other subject (None: readings of unassigned subjects are recorded, not evaluated).
    The ``profiles.set`` / ``profiles.assign`` commands change both at run time (persisted).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    profiles: tuple[Profile, ...] = ()
    assignments: dict[str, str] = Field(default_factory=dict)
    default_profile: str | None = None
    #: Per device (tag id): allowed silence, battery chemistry, stuck readings, over the
    #: ``device`` settings of its goods' profile.
    devices: dict[str, DeviceSettings] = Field(default_factory=dict)
    sample_interval_s: float = Field(
        default=CONDITIONS_SAMPLE_S,
        gt=0,
        description="BLE sensor tags feed the monitor at most this often each",
    )

    @model_validator(mode="after")
    def _known_profiles(self) -> Self:
        known = set(PRESETS) | {p.name for p in self.profiles}
        named = set(self.assignments.values())
        if self.default_profile is not None:
            named.add(self.default_profile)
        unknown = sorted(named - known)
        if unknown:
            raise ValueError(f"unknown profile(s) {unknown}; known: {sorted(known)}")
        return self


class CustodyTrigger(BaseModel):
    """``[[custody.triggers]]``: open a handoff session when a vehicle's own tag arrives at a
    door (docs/custody.md, "Sessions opened by a trigger")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    door: str = Field(pattern=ZONE_PATTERN, description="a door zone of this gateway (door-3)")
    vehicle: str = Field(
        min_length=1,
        max_length=256,
        description="the vehicle's tag id or asset id, or a glob pattern over them (TRL-*)",
    )
    from_party: str = Field(
        min_length=1, max_length=128, description="the delivering party (a GLN or a name)"
    )
    to_party: str = Field(
        min_length=1, max_length=128, description="the receiving party (a GLN or a name)"
    )
    window_s: float = Field(
        default=14_400.0,
        gt=0.0,
        le=86_400.0,
        description="the session closes this long after it opened if the vehicle never leaves",
    )


class CustodyConfig(BaseModel):
    """Which zones are dock doors (handoff sessions) and which are a vehicle's load space
    (route and delivery checks). By default a zone named ``door...`` is a door and a zone named
    ``cargo...`` is a load space (docs/custody.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    door_zones: tuple[str, ...] | None = None
    cargo_zones: tuple[str, ...] | None = None
    #: Sessions opened by a vehicle's tag at a door, without a handoff.open command.
    triggers: tuple[CustodyTrigger, ...] = Field(default=(), max_length=64)

    def roles(self, zones: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(door zones, cargo zones) among ``zones``."""
        doors = self.door_zones
        if doors is None:
            doors = tuple(z for z in zones if z.startswith("door"))
        cargo = self.cargo_zones
        if cargo is None:
            cargo = tuple(z for z in zones if z.startswith("cargo"))
        return doors, cargo


#: The native kinds rendered as EPCIS by default: custody, presence at a door, conditions,
#: tag bindings.
EPCIS_KINDS: Final = (
    "handoff.item",
    "handoff.report",
    "route.departure",
    "delivery.evidence",
    "delivery.alert",
    "presence.enter",
    "presence.exit",
    "condition.excursion",
    "condition.shock",
    "tag.binding",
)


class EpcisOutput(enum.StrEnum):
    """What a gateway publishes for the kinds in ``[epcis] kinds`` (docs/epcis.md)."""

    #: Native events only (the default).
    NATIVE = "native"
    #: Native events on their topics and EPCIS documents on ``.../events/epcis/document``.
    BOTH = "both"
    #: EPCIS documents only, for the mapped kinds; a native event whose EPCIS document is not
    #: committed with it (nothing to state in EPCIS yet) is kept, so nothing is lost.
    EPCIS = "epcis"


class EpcisConfig(BaseModel):
    """The GS1 EPCIS 2.0 output profile (docs/epcis.md): off by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: native, both or epcis: the switch (``tagrelay demo --epcis`` sets ``both``).
    output: EpcisOutput | None = None
    #: The older switch: ``enabled = true`` is ``output = "both"`` when ``output`` is not set.
    enabled: bool = False
    #: Which native kinds are also published as EPCIS documents.
    kinds: tuple[str, ...] = EPCIS_KINDS
    #: This gateway's read point and business location (an SGLN Digital Link URI such as
    #: https://id.gs1.org/414/4012345000009/254/door-3, or any absolute URI).
    read_point: str | None = None
    biz_location: str | None = None
    #: The GS1 key URI (GIAI / GRAI) of the vehicle a vehicle gateway rides in.
    vehicle: str | None = None

    @property
    def mode(self) -> EpcisOutput:
        """The output in force: ``output``, else ``both`` when ``enabled``, else ``native``."""
        if self.output is not None:
            return self.output
        return EpcisOutput.BOTH if self.enabled else EpcisOutput.NATIVE

    @model_validator(mode="after")
    def _uris(self) -> Self:
        from gateway.epcis import location_uri

        for name in ("read_point", "biz_location", "vehicle"):
            value = getattr(self, name)
            if value is not None:
                location_uri(value)  # raises ValueError with the reason
        return self


class PipelineConfig(BaseModel):
    """The stages between the drivers and the outbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_queue_size: int = Field(default=EVENT_QUEUE_SIZE, ge=100)
    tick_s: float = Field(default=TICK_S, gt=0, le=10)
    silent_after_s: float = Field(default=SILENT_AFTER_S, gt=0)
    telemetry: TelemetryConfig = TelemetryConfig()
    supervision: SupervisionConfig = SupervisionConfig()
