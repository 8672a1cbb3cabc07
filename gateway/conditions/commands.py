"""Downlink commands for condition profiles: ``profiles.set`` and ``profiles.assign``.

The models validate everything a command carries (a profile is a full :class:`Profile`; an
assignment names a profile the monitor knows), so a bad command is answered ``invalid`` with
the reason by the command processor and never reaches the monitor. The handlers change the
monitor, then await ``persist`` with the results the change produced (excursions closed because
their subject changed profile): the pipeline saves :meth:`ConditionMonitor.snapshot` and turns
the results into events there, before the command is answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Final

from pydantic import Field, JsonValue, StringConstraints, field_validator

from gateway.conditions.monitor import ConditionMonitor
from gateway.conditions.profiles import PROFILE_NAME_PATTERN, Profile
from gateway.conditions.results import ConditionResult
from gateway.uplink.commands import Command, CommandRegistry

__all__ = [
    "MAX_SUBJECTS_PER_COMMAND",
    "ManifestProfileSink",
    "Persist",
    "ProfilesAssignCommand",
    "ProfilesSetCommand",
    "register_condition_commands",
]

#: One command assigns at most this many subjects (a full trailer is ~30 pallets or a few
#: hundred parcels; the command processor's byte limit bounds it too).
MAX_SUBJECTS_PER_COMMAND: Final = 1000

#: An asset (GS1 Digital Link URI) or a tag id.
Subject = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=False)]

#: Saves the monitor's state and hands results to the outbox; awaited before the response.
Persist = Callable[[Sequence[ConditionResult]], Awaitable[None]]


class ProfilesSetCommand(Command):
    """Define a profile, or replace the one of the same name (presets included)."""

    profile: Profile


class ProfilesAssignCommand(Command):
    """Assign ``profile`` to ``subjects``; ``null`` returns them to the default profile."""

    profile: str | None = Field(pattern=PROFILE_NAME_PATTERN)
    subjects: tuple[Subject, ...] = Field(min_length=1, max_length=MAX_SUBJECTS_PER_COMMAND)


def register_condition_commands(
    registry: CommandRegistry, monitor: ConditionMonitor, persist: Persist
) -> None:
    """Register ``profiles.set`` and ``profiles.assign`` for ``monitor`` on ``registry``."""

    class _KnownProfileAssign(ProfilesAssignCommand):
        @field_validator("profile")
        @classmethod
        def _known(cls, name: str | None) -> str | None:
            if name is not None and name not in monitor.profiles:
                known = ", ".join(sorted(monitor.profiles))
                raise ValueError(f"unknown profile {name!r} (known: {known})")
            return name

    _KnownProfileAssign.__name__ = ProfilesAssignCommand.__name__

    async def set_profile(cmd: ProfilesSetCommand) -> JsonValue:
        replaced = cmd.profile.name in monitor.profiles
        results = monitor.define(cmd.profile)
        await persist(results)
        return {"profile": cmd.profile.name, "replaced": replaced, "closed": len(results)}

    async def assign(cmd: ProfilesAssignCommand) -> JsonValue:
        results: list[ConditionResult] = []
        for subject in cmd.subjects:
            results += monitor.assign(subject, cmd.profile)
        await persist(results)
        return {"profile": cmd.profile, "subjects": len(cmd.subjects), "closed": len(results)}

    registry.register("profiles.set", ProfilesSetCommand, set_profile)
    registry.register("profiles.assign", _KnownProfileAssign, assign)


class ManifestProfileSink:
    """The condition side of a custody manifest (``handoff.open``, ``route.load``) whose items
    name their profile: checks the names before the manifest is accepted, assigns them after
    (like ``profiles.assign``, persisted before the command is answered)."""

    def __init__(self, monitor: ConditionMonitor, persist: Persist) -> None:
        self._monitor = monitor
        self._persist = persist

    def check(self, profiles: Mapping[str, str]) -> None:
        unknown = sorted(set(profiles.values()) - set(self._monitor.profiles))
        if unknown:
            known = ", ".join(sorted(self._monitor.profiles))
            raise ValueError(f"unknown profile(s) {unknown} (known: {known})")

    async def assign(self, profiles: Mapping[str, str]) -> None:
        results: list[ConditionResult] = []
        for subject, name in profiles.items():
            results += self._monitor.assign(subject, name)
        await self._persist(results)
