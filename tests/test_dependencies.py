"""Dependencies earn their place, and constraints.txt is the lock of exactly them.

Every run-time dependency in pyproject.toml is imported by the code a gateway runs (gateway,
drivers, protocols, simulator), nothing the tests alone use is installed on a gateway, and
constraints.txt pins every package of the dependency closure (run time and dev) and nothing
else, each pin inside pyproject's range. Read from the installed package metadata, no network.
"""

from __future__ import annotations

import ast
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("gateway", "drivers", "protocols", "simulator")
#: Declared for run time but not imported yet, with the reason; keep this short.
NOT_YET_IMPORTED: dict[str, str] = {}


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _runtime() -> list[Requirement]:
    return [Requirement(r) for r in _project()["dependencies"]]


def _dev() -> list[Requirement]:
    return [Requirement(r) for r in _project()["optional-dependencies"]["dev"]]


def _imported_top_levels(packages: tuple[str, ...]) -> set[str]:
    names: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def _closure(roots: list[Requirement]) -> set[str]:
    """Canonical names of ``roots`` and everything they require (markers and extras honoured)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r, frozenset[str]()) for r in roots]
    while todo:
        req, parent_extras = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", *parent_extras)):
            continue
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        for dependency in metadata.distribution(req.name).requires or []:
            todo.append((Requirement(dependency), key[1]))
    return {name for name, _ in seen}


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_runtime_dependency_is_imported_by_the_gateway() -> None:
    imported = _imported_top_levels(RUNTIME_PACKAGES)
    providers = metadata.packages_distributions()
    used = {canonicalize_name(d) for name in imported for d in providers.get(name, [])}
    unused = {canonicalize_name(r.name) for r in _runtime()} - used
    assert unused == {canonicalize_name(n) for n in NOT_YET_IMPORTED}, unused


def test_nothing_the_gateway_imports_is_missing_from_the_runtime_dependencies() -> None:
    providers = metadata.packages_distributions()
    runtime = _closure(_runtime())
    dev_only = _closure(_dev()) - runtime
    imported = _imported_top_levels(RUNTIME_PACKAGES)
    leaked = {
        canonicalize_name(d)
        for name in imported
        for d in providers.get(name, [])
        if canonicalize_name(d) in dev_only
    }
    assert leaked == set(), f"run-time code imports dev-only packages: {leaked}"


def test_constraints_pin_exactly_the_dependency_closure_within_the_ranges() -> None:
    pins = _pins()
    closure = _closure(_runtime() + _dev())
    assert set(pins) == closure, (set(pins) - closure, closure - set(pins))
    for req in _runtime() + _dev():
        pinned = pins[canonicalize_name(req.name)]
        assert req.specifier.contains(pinned, prereleases=True), (req, pinned)
