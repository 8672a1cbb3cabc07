"""The main job in one command: a simulated world, real gateways, a broker, and the platform.

``tagrelay demo SCENARIO`` runs a scenario end to end with real processes (a private mosquitto,
``tagrelay simulate``, one ``tagrelay run`` per gateway), plays the platform's part from the
scenario's inputs, records everything the broker carried, and hands the log to
:mod:`gateway.report`. Loaded only by that command: the daemon never imports it.
"""

from __future__ import annotations

from gateway.demo.platform import PlatformCommand, item_asset, platform_commands, tag_ids
from gateway.demo.processes import BrokerError, PrivateBroker, private_broker, stop_child
from gateway.demo.recorder import Recorder, RecorderError, decode_payload, recording
from gateway.demo.run import DemoOptions, DemoOutcome, run_demo

__all__ = [
    "BrokerError",
    "DemoOptions",
    "DemoOutcome",
    "PlatformCommand",
    "PrivateBroker",
    "Recorder",
    "RecorderError",
    "decode_payload",
    "item_asset",
    "platform_commands",
    "private_broker",
    "recording",
    "run_demo",
    "stop_child",
    "tag_ids",
]
