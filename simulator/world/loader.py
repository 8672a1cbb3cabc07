"""Finding and reading scenario files: shipped scenarios by name, or any TOML file by path."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from simulator.world.model import Scenario

__all__ = ["ScenarioError", "load_scenario", "parse_scenario", "shipped_scenarios"]

_PACKAGE = "simulator.scenarios"


class ScenarioError(ValueError):
    """A scenario could not be found, is not TOML, or does not validate; ``source`` says which."""

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source = source
        self.detail = detail


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package (file names without ``.toml``)."""
    root = resources.files(_PACKAGE)
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, f"not valid TOML: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, str(exc)) from exc


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (``cross-dock``) or a scenario file by path."""
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in shipped_scenarios():
        data = resources.files(_PACKAGE).joinpath(f"{text}.toml").read_text(encoding="utf-8")
        return parse_scenario(data, text)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(shipped_scenarios())
        raise ScenarioError(text, f"no such scenario file or shipped scenario (shipped: {known})")
    return parse_scenario(path.read_text(encoding="utf-8"), text)
