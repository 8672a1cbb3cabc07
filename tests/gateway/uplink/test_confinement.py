"""paho-mqtt is confined to one module of the gateway: whichever library carries delivery, only
``gateway.uplink._mqtt`` may import it (the rest of the uplink speaks ``MqttSession``).

The one other importer is the demo's recorder, which plays the platform: a subscriber that
records what the broker carried, not part of the gateway's delivery path."""

from __future__ import annotations

import ast
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[3] / "gateway"
MQTT_LIBRARIES = ("paho", "aiomqtt")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_session_module_imports_an_mqtt_library() -> None:
    importers = sorted(
        str(path.relative_to(GATEWAY.parent))
        for path in GATEWAY.rglob("*.py")
        if _imports(path) & set(MQTT_LIBRARIES)
    )
    assert importers == ["gateway/demo/recorder.py", "gateway/uplink/_mqtt.py"]
