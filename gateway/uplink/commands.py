"""Downlink commands from the platform: validation, dispatch, idempotence, error responses.

A command arrives as JSON on ``.../cmd/<name>``; the registry maps the name to a pydantic
model (which carries the command ``id``) and a handler. Whatever the bytes,
:meth:`CommandProcessor.handle` returns a response, never raises: bad input is counted per
reason, logged once per burst, and answered with the reason. A command id seen before returns
the earlier response (the platform may resend after a lost response). This module knows
nothing about MQTT.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from drivers.clock import Clock

__all__ = [
    "Command",
    "CommandError",
    "CommandErrorReason",
    "CommandProcessor",
    "CommandRegistry",
    "CommandRejected",
    "CommandResponse",
    "ConfigGetCommand",
    "OutboxStatsCommand",
    "PingCommand",
]

_log = logging.getLogger(__name__)

#: One log line per reason per this many seconds; the rest is counted (a misbehaving platform
#: must not flood the gateway's log on flash).
LOG_BURST_INTERVAL_S: Final = 60.0


class Command(BaseModel):
    """Base of every command: an id chosen by the platform, unique per command it means."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=128)


class PingCommand(Command):
    """Liveness check; answers with the gateway's time."""


class ConfigGetCommand(Command):
    """The running configuration, secrets redacted."""


class OutboxStatsCommand(Command):
    """Depth, bytes and age per class, dead letters, losses."""


class CommandRejected(Exception):
    """Raised by a handler that refuses a valid-looking command (an unknown door, a conflicting
    id): answered as ``invalid`` with ``detail``, not counted as a handler failure, and not
    remembered, so the same command id may be sent again once the conflict is gone."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CommandErrorReason(Enum):
    OVERSIZE = "oversize"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_COMMAND = "unknown_command"
    INVALID = "invalid"  # wrong / missing / extra fields
    FAILED = "failed"  # the handler raised


class CommandError(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: CommandErrorReason
    detail: str


class CommandResponse(BaseModel):
    """What goes back to the platform for every command message."""

    model_config = ConfigDict(frozen=True)

    command: str
    id: str | None
    ok: bool
    result: JsonValue = None
    error: CommandError | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


C = TypeVar("C", bound=Command)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[C]):
    model: type[C]
    handler: Callable[[C], Awaitable[JsonValue]]


class CommandRegistry:
    """Command names to (model, handler). Later features register manifests, profiles, ..."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry[Any]] = {}

    def register(
        self, name: str, model: type[C], handler: Callable[[C], Awaitable[JsonValue]]
    ) -> None:
        if not name or "/" in name or "+" in name or "#" in name:
            raise ValueError(f"bad command name {name!r}")
        if name in self._entries:
            raise ValueError(f"command {name!r} registered twice")
        self._entries[name] = _Entry(model, handler)

    def get(self, name: str) -> _Entry[Any] | None:
        return self._entries.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))


class CommandProcessor:
    """Turns (name, payload bytes) into a response, with the bounded idempotence memory."""

    def __init__(
        self, registry: CommandRegistry, clock: Clock, *, max_bytes: int, results_kept: int
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._max_bytes = max_bytes
        self._results_kept = results_kept
        self._results: OrderedDict[tuple[str, str], CommandResponse] = OrderedDict()
        self.errors: Counter[CommandErrorReason] = Counter()
        self.handled: Counter[str] = Counter()
        self.replayed = 0
        self._last_log_s: dict[CommandErrorReason, float] = {}
        self._suppressed: Counter[CommandErrorReason] = Counter()

    async def handle(self, name: str, payload: bytes) -> CommandResponse:
        if len(payload) > self._max_bytes:
            return self._error(
                name,
                None,
                CommandErrorReason.OVERSIZE,
                f"{len(payload)} bytes, limit {self._max_bytes}",
            )
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            return self._error(name, None, CommandErrorReason.MALFORMED_JSON, str(exc)[:200])
        if not isinstance(data, dict):
            return self._error(
                name, None, CommandErrorReason.NOT_AN_OBJECT, "the command must be a JSON object"
            )
        raw_id = data.get("id")
        cid = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 128 else None
        entry = self._registry.get(name)
        if entry is None:
            known = ", ".join(self._registry.names)
            return self._error(
                name, cid, CommandErrorReason.UNKNOWN_COMMAND, f"known commands: {known}"
            )
        try:
            command = entry.model.model_validate(data)
        except ValidationError as exc:
            return self._error(name, cid, CommandErrorReason.INVALID, _describe(exc))
        key = (name, command.id)
        earlier = self._results.get(key)
        if earlier is not None:
            self._results.move_to_end(key)
            self.replayed += 1
            return earlier
        try:
            result = await entry.handler(command)
        except CommandRejected as exc:
            return self._error(name, command.id, CommandErrorReason.INVALID, exc.detail)
        except Exception as exc:  # a handler bug must not take the daemon down
            _log.exception("command %s id=%s failed", name, command.id)
            response = self._error(name, command.id, CommandErrorReason.FAILED, repr(exc)[:200])
        else:
            response = CommandResponse(command=name, id=command.id, ok=True, result=result)
            self.handled[name] += 1
        self._remember(key, response)
        return response

    def _remember(self, key: tuple[str, str], response: CommandResponse) -> None:
        self._results[key] = response
        while len(self._results) > self._results_kept:
            self._results.popitem(last=False)

    def _error(
        self, name: str, cid: str | None, reason: CommandErrorReason, detail: str
    ) -> CommandResponse:
        self.errors[reason] += 1
        now = self._clock.monotonic()
        last = self._last_log_s.get(reason)
        if last is None or now - last >= LOG_BURST_INTERVAL_S:
            self._last_log_s[reason] = now
            more = self._suppressed.pop(reason, 0)
            _log.warning(
                "bad command %r: %s (%s); %d more of this kind since the last line",
                name[:64],
                reason.value,
                detail[:120],
                more,
            )
        else:
            self._suppressed[reason] += 1
        return CommandResponse(
            command=name, id=cid, ok=False, error=CommandError(reason=reason, detail=detail)
        )


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def default_registry(
    clock: Clock,
    config_view: Mapping[str, JsonValue],
    outbox_stats: Callable[[], Awaitable[JsonValue]],
) -> CommandRegistry:
    """The commands every gateway answers: ``ping``, ``config.get``, ``outbox.stats``."""
    registry = CommandRegistry()

    async def ping(cmd: PingCommand) -> JsonValue:
        return {"pong": True, "time": clock.now().isoformat()}

    async def config_get(cmd: ConfigGetCommand) -> JsonValue:
        return dict(config_view)

    async def stats(cmd: OutboxStatsCommand) -> JsonValue:
        return await outbox_stats()

    registry.register("ping", PingCommand, ping)
    registry.register("config.get", ConfigGetCommand, config_get)
    registry.register("outbox.stats", OutboxStatsCommand, stats)
    return registry
