"""Scenario files shipped with the simulator (``*.toml``), loaded by name with ``load_scenario``."""

__all__: list[str] = []
