"""The simulated world: a scenario file, its state as a pure function of time, and a fast clock.

Data path role: this is the source of everything the simulator's devices say. The runner asks the
world for a snapshot each tick (positions, tags in range with RSSI, sensor values, shocks, faults)
and turns it into fake BlueZ objects and pty bytes that the gateway's drivers read for real.

Exported here is what the runner, the CLI and the tools use; the model's parts (tags, routes,
doors, ground truth), geometry and seeded randomness are in their submodules (``model``,
``geo``, ``radio``, ``loader``, ``adverts``).
"""

from simulator.world.adverts import advert_for
from simulator.world.clock import SimClock
from simulator.world.loader import ScenarioError, load_scenario, parse_scenario, shipped_scenarios
from simulator.world.model import (
    AdapterRemoved,
    BluetoothdRestart,
    BrokerOutage,
    CorruptCrc,
    DiscoveryRefused,
    DropBytes,
    EddystoneUidTag,
    Fault,
    Garbage,
    GpsJump,
    GpsNoFix,
    IBeaconTag,
    Item,
    PowerCut,
    RuuviTag,
    Scenario,
    SmartLabelTag,
    Unplug,
)
from simulator.world.state import Snapshot, TagRef, World

__all__ = [
    "AdapterRemoved",
    "BluetoothdRestart",
    "BrokerOutage",
    "CorruptCrc",
    "DiscoveryRefused",
    "DropBytes",
    "EddystoneUidTag",
    "Fault",
    "Garbage",
    "GpsJump",
    "GpsNoFix",
    "IBeaconTag",
    "Item",
    "PowerCut",
    "RuuviTag",
    "Scenario",
    "ScenarioError",
    "SimClock",
    "SmartLabelTag",
    "Snapshot",
    "TagRef",
    "Unplug",
    "World",
    "advert_for",
    "load_scenario",
    "parse_scenario",
    "shipped_scenarios",
]
