"""The daemon's configuration: one pydantic model, parsed once from a TOML file at start.

Each component receives its own section (``outbox``, ``uplink``, ...); nothing reads the
configuration or the environment deep in the code. Secrets (the MQTT password) may come from a
file or an environment variable; the loader resolves them here into ``SecretStr`` values that
print as ``**********`` in logs, ``repr`` and ``tagrelay config show``.

Device sections (``ble``, ``smartlabel_readers``, ``gps``) and the pipeline's tunables live in
:mod:`gateway.pipeline.config`; each is optional, so a gateway configures only what it has.
"""

from __future__ import annotations

import enum
import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    ValidationError,
    model_validator,
)

from drivers.gps import GpsConfig
from gateway.errors import GatewayError
from gateway.metrics.config import MetricsConfig
from gateway.outbox import EventClass, OutboxConfig
from gateway.pipeline.config import (
    BleSection,
    ConditionsConfig,
    CustodyConfig,
    EpcisConfig,
    PipelineConfig,
    SmartLabelReaderConfig,
)
from gateway.presence import PresenceConfig
from gateway.registry import TagBindingList
from gateway.uplink import UplinkConfig

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "GatewayConfig",
    "LoggingConfig",
    "SimulatedClockConfig",
    "config_hash",
    "load_config",
    "missing_files",
    "redacted_view",
    "resolve_secrets",
]

#: Where systemd's StateDirectory= puts our state; the outbox database lives here.
DEFAULT_STATE_DIR: Final = Path("/var/lib/tagrelay")
#: A gateway id is a topic level and a client id: no "/", "+", "#", ".", spaces (NATS forbids ".").
GATEWAY_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class LoggingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: text, kv (key=value) or json lines; auto = kv under journald, text on a terminal.
    format: Literal["auto", "text", "kv", "json"] = "auto"
    #: Repeats of one message within this window become one "repeated N times" line (0 = off).
    repeat_window_s: float = Field(default=60.0, ge=0, le=3600)


class SimulatedClockConfig(BaseModel):
    """Scenario time of a simulated world (written by ``tagrelay simulate``; never on a truck):
    the gateway's clock runs ``speed`` times real time from ``start``, reached at the real
    monotonic time ``anchor_monotonic_s``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    speed: float = Field(gt=0, le=1000)
    anchor_monotonic_s: float
    #: Whether the scenario's clock counts as synchronised (like NTP). False: a wall clock
    #: nobody set, ``unsynced`` until GPS time arrives (for tests of time correction).
    synchronized: bool = True


class GatewayConfig(BaseModel):
    """The root of the configuration file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway_id: str = Field(pattern=GATEWAY_ID_PATTERN)
    state_dir: Path = DEFAULT_STATE_DIR
    outbox: OutboxConfig = OutboxConfig()
    uplink: UplinkConfig
    logging: LoggingConfig = LoggingConfig()
    #: BLE adapters, each bound to a presence zone.
    ble: BleSection = BleSection()
    #: SmartLabel readers on serial paths or URLs.
    smartlabel_readers: tuple[SmartLabelReaderConfig, ...] = ()
    #: The vehicle's GPS receiver (serial or gpsd); None on a fixed dock door.
    gps: GpsConfig | None = None
    pipeline: PipelineConfig = PipelineConfig()
    #: Condition profiles and their assignments (docs/conditions.md).
    conditions: ConditionsConfig = ConditionsConfig()
    #: The GS1 EPCIS 2.0 output profile (docs/epcis.md), off by default.
    epcis: EpcisConfig = EpcisConfig()
    #: Which zones are dock doors and which a vehicle's load space (docs/custody.md).
    custody: CustodyConfig = CustodyConfig()
    #: Presence thresholds and timeouts, per zone where they differ (docs/presence.md).
    presence: PresenceConfig = PresenceConfig()
    #: The Prometheus endpoint on a loopback port, off by default (docs/operations.md).
    metrics: MetricsConfig = MetricsConfig()
    #: Only for simulations: follow a simulated world's clock instead of the system's.
    simulated_clock: SimulatedClockConfig | None = None
    #: Tags bound to assets (``[[tags]]``: tag id and GS1 key); ``tags.bind`` commands override.
    tags: TagBindingList = ()

    @model_validator(mode="after")
    def _devices_unique(self) -> Self:
        paths = [r.path for r in self.smartlabel_readers]
        if self.gps is not None and self.gps.serial is not None:
            paths.append(self.gps.serial.path)
        if len(paths) != len(set(paths)):
            raise ValueError("a serial path is used twice (readers and GPS need their own)")
        return self


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem, located by its field path (e.g. ``uplink.port``)."""

    location: str
    message: str


class ConfigError(GatewayError):
    """The configuration file cannot be used; ``issues`` says where and why."""

    def __init__(self, path: Path, issues: tuple[ConfigIssue, ...]) -> None:
        lines = "; ".join(f"{i.location}: {i.message}" for i in issues)
        super().__init__(f"{path}: {lines}")
        self.path = path
        self.issues = issues


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, *, secrets: bool = True
) -> GatewayConfig:
    """Read, validate and (unless ``secrets`` is false) resolve secrets; raise
    :class:`ConfigError` with every problem found."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, (ConfigIssue("(file)", exc.strerror or str(exc)),)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, (ConfigIssue("(syntax)", str(exc)),)) from exc
    _resolve_relative_paths(data, path.parent)
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        issues = tuple(
            ConfigIssue(_location(err["loc"]) or "(root)", err["msg"]) for err in exc.errors()
        )
        raise ConfigError(path, issues) from exc
    issues = custody_issues(config)
    if issues:
        raise ConfigError(path, issues)
    return resolve_secrets(config, path, environ) if secrets else config


def custody_issues(config: GatewayConfig) -> tuple[ConfigIssue, ...]:
    """A trigger's door must be a door zone of this gateway (the zones of its BLE scanners
    that ``[custody]`` counts as doors)."""
    zones = tuple(dict.fromkeys(s.zone for s in config.ble.scanners))
    doors, _ = config.custody.roles(zones)
    known = ", ".join(doors) or "none"
    return tuple(
        ConfigIssue(f"custody.triggers.{i}.door", f"unknown door {t.door!r} (door zones: {known})")
        for i, t in enumerate(config.custody.triggers)
        if t.door not in doors
    )


#: Fields keyed by event class: their keys are named in error locations, not numbered.
_CLASS_KEYED: Final = frozenset({"ttl_s", "class_weights"})


def _location(loc: tuple[int | str, ...]) -> str:
    """A field path (``outbox.ttl_s.telemetry``), event classes by name, not by number."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, enum.Enum):
            parts.append(part.name.lower())
        elif i > 0 and loc[i - 1] in _CLASS_KEYED and isinstance(part, int):
            parts.append(EventClass(part).name.lower() if part in set(EventClass) else str(part))
        else:
            parts.append(str(part))
    return ".".join(parts)


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Relative file names in the config are relative to the config file, not to the cwd."""

    def fix(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            p = Path(section[key])
            if not p.is_absolute():
                section[key] = str(base / p)

    fix(data, "state_dir")
    uplink = data.get("uplink")
    fix(uplink, "password_file")
    if isinstance(uplink, dict):
        for key in ("ca_file", "cert_file", "key_file"):
            fix(uplink.get("tls"), key)
    readers = data.get("smartlabel_readers")
    if isinstance(readers, list):
        for reader in readers:
            if isinstance(reader, dict) and "://" not in str(reader.get("path", "")):
                fix(reader, "path")
    gps = data.get("gps")
    if isinstance(gps, dict):
        fix(gps.get("serial"), "path")


def resolve_secrets(
    config: GatewayConfig, path: Path, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read the password from its file or environment variable into a ``SecretStr``."""
    env = os.environ if environ is None else environ
    uplink = config.uplink
    secret: str | None = None
    if uplink.password_file is not None:
        try:
            secret = uplink.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            issue = ConfigIssue("uplink.password_file", f"cannot read: {exc.strerror or exc}")
            raise ConfigError(path, (issue,)) from exc
    elif uplink.password_env is not None:
        secret = env.get(uplink.password_env)
        if secret is None:
            issue = ConfigIssue(
                "uplink.password_env", f"environment variable {uplink.password_env} is not set"
            )
            raise ConfigError(path, (issue,))
    if secret is None:
        return config
    new_uplink = uplink.model_copy(update={"password": SecretStr(secret)})
    return config.model_copy(update={"uplink": new_uplink})


def redacted_view(config: GatewayConfig) -> dict[str, JsonValue]:
    """The configuration as JSON-able data with every secret shown as ``**********``."""
    view: dict[str, JsonValue] = config.model_dump(mode="json")
    return view


def config_hash(config: GatewayConfig) -> str:
    """A short stable fingerprint of the running configuration (secrets excluded)."""
    canonical = config.model_dump_json().encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def missing_files(config: GatewayConfig) -> tuple[ConfigIssue, ...]:
    """Files named in the configuration that do not exist on this machine (a warning at
    ``config check`` time: the file may be installed later, the daemon fails clearly then)."""
    tls = config.uplink.tls
    named = {
        "uplink.tls.ca_file": tls.ca_file,
        "uplink.tls.cert_file": tls.cert_file,
        "uplink.tls.key_file": tls.key_file,
    }
    issues = [
        ConfigIssue(loc, f"{p} does not exist")
        for loc, p in named.items()
        if p is not None and not p.exists()
    ]
    # A reader or receiver that is unplugged now is waited for by the daemon: a warning only.
    for i, reader in enumerate(config.smartlabel_readers):
        if not reader.is_url and not Path(reader.path).exists():
            issues.append(
                ConfigIssue(f"smartlabel_readers.{i}.path", f"{reader.path} does not exist (yet)")
            )
    if config.gps is not None and config.gps.serial is not None:
        gps_path = config.gps.serial
        if not gps_path.is_url and not Path(gps_path.path).exists():
            issues.append(ConfigIssue("gps.serial.path", f"{gps_path.path} does not exist (yet)"))
    return tuple(issues)
