"""Configuration files for the gateways of a simulated world.

A gateway learns where its devices are from its TOML configuration, exactly as on a truck. For
each gateway of a running scenario, :func:`write_gateway_configs` writes a complete file: the
D-Bus bus of the fake BlueZ and the adapter with its zone, the SmartLabel reader's and GPS
receiver's pty symlinks, a state directory and the broker to publish to. ``tagrelay run --config``
accepts it as it is. The file is the whole interface: nothing here imports the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import tomli_w

from simulator.runner import Endpoints, GatewayEndpoint

__all__ = [
    "CARGO_ZONE",
    "BrokerAddress",
    "ScenarioClock",
    "door_zone",
    "gateway_config",
    "write_gateway_configs",
]

#: The zone of a vehicle gateway's own adapter: its load space.
CARGO_ZONE: Final = "cargo"
#: Short reconnect backoff: a simulated broker outage lasts seconds of real time.
RECONNECT_MAX_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the gateways publish: ``mqtt://host:port`` (plaintext) or ``mqtts://host:port``."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker must be mqtt://HOST:PORT or mqtts://HOST:PORT, not {url!r}")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)


def door_zone(door_id: str) -> str:
    """The presence zone of a door's gateway: ``door-`` and the door id in lower case."""
    return f"door-{door_id.lower()}"


@dataclass(frozen=True, slots=True)
class ScenarioClock:
    """Scenario time for the gateways: ``start`` at the real monotonic ``t0_real``, running at
    ``speed``; a gateway configured with it stamps events in scenario time."""

    start: datetime
    speed: float
    t0_real: float


def gateway_config(
    endpoints: Endpoints,
    gateway: GatewayEndpoint,
    broker: BrokerAddress,
    state_dir: Path,
    clock: ScenarioClock | None = None,
) -> dict[str, Any]:
    """The configuration of one simulated gateway, as TOML-ready data."""
    zone = CARGO_ZONE if gateway.vehicle is not None else door_zone(gateway.door or gateway.id)
    config: dict[str, Any] = {
        "gateway_id": gateway.id,
        "state_dir": str(state_dir),
        "uplink": {
            "host": broker.host,
            "port": broker.port,
            "transport": "tls" if broker.tls else "tcp",
            "reconnect_max_s": RECONNECT_MAX_S,
            # The scenario's door gateways share custody claims on the site topic.
            "site": endpoints.scenario,
        },
        "ble": {
            "dbus_system_bus_address": endpoints.dbus_address,
            "scanners": [{"adapter": gateway.adapter, "zone": zone}],
        },
    }
    if gateway.smartlabel_port is not None:
        config["smartlabel_readers"] = [{"path": str(gateway.smartlabel_port), "zone": zone}]
    if gateway.gps_port is not None:
        config["gps"] = {"source": "serial", "serial": {"path": str(gateway.gps_port)}}
    if clock is not None:
        config["simulated_clock"] = {
            "start": clock.start,
            "speed": clock.speed,
            "anchor_monotonic_s": clock.t0_real,
        }
    return config


def write_gateway_configs(
    endpoints: Endpoints, directory: Path, broker_url: str, clock: ScenarioClock | None = None
) -> list[Path]:
    """Write ``DIRECTORY/<gateway id>.toml`` for every gateway; state goes under
    ``DIRECTORY/<gateway id>/``. With ``clock`` the gateways follow scenario time (needed at a
    speed other than 1: presence, custody and condition rules count in scenario seconds).
    Returns the files written."""
    broker = BrokerAddress.parse(broker_url)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for gateway in endpoints.gateways:
        state_dir = (directory / gateway.id / "state").resolve()
        path = directory / f"{gateway.id}.toml"
        header = (
            f"# Gateway {gateway.id} of the simulated scenario {endpoints.scenario}.\n"
            "# Written by `tagrelay simulate`; valid while that simulation runs.\n"
        )
        body = tomli_w.dumps(gateway_config(endpoints, gateway, broker, state_dir, clock))
        path.write_text(header + body, encoding="utf-8")
        written.append(path)
    return written
