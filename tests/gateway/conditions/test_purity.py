"""gateway.conditions is pure: no I/O, asyncio, clock reads or outbox / uplink / driver imports.

Only the command models (commands.py) import the uplink's ``Command`` base and registry.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.conditions

FORBIDDEN = (
    "asyncio",
    "time",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "serial",
    "bleak",
    "dbus_fast",
    "paho",
    "aiomqtt",
    "drivers",
    "gateway.outbox",
    "gateway.uplink",
    "gateway.pipeline",
    "os",
    "pathlib",
    "importlib",
)
ALLOWED = {"commands.py": {"gateway.uplink.commands"}}
CLOCK_READS = ("now", "utcnow", "today", "monotonic", "time")


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_conditions_package_is_pure() -> None:
    package = Path(gateway.conditions.__file__).parent
    files = sorted(package.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _imports(tree) - ALLOWED.get(path.name, set()):
            bad = [f for f in FORBIDDEN if name == f or name.startswith(f + ".")]
            assert not bad, f"{path.name} imports {name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in CLOCK_READS, (
                    f"{path.name}: clock read {node.func.attr}"
                )
