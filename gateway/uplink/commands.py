"""Downlink commands from the platform: validation, dispatch, idempotence, error responses.

A command arrives as JSON on ``.../cmd/<name>``; the registry maps the name to a pydantic
model (which carries the command ``id``) and a handler. Whatever the bytes,
:meth:`CommandProcessor.handle` returns a response, never raises: bad input is counted per
reason, logged once per burst, and answered with the reason. A command id seen before returns
the earlier response (the platform may resend after a lost response). This module knows
nothing about MQTT: the uplink checks what the transport carries (retain flag, response topic,
correlation data) and reports what it refuses through :meth:`CommandProcessor.refuse` and
:meth:`CommandProcessor.drop`, so every rejection is counted in one place.

Every response serialises: strings that are not Unicode text (a lone UTF-16 surrogate written
as ``\ud800`` in JSON) are refused before they can reach a response.
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

from foundation.clock import Clock

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
#: Longest detail text in a response or a log line: enough for a parser's message, bounded
#: whatever the input.
DETAIL_MAX_CHARS: Final = 200


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
    MALFORMED_JSON = "malformed_json"  # not JSON (NaN and Infinity included), or not UTF-8
    # JSON the gateway does not take: an integer over 4300 digits (Python's limit), a string
    # holding a lone surrogate (``"\ud800"``), which is not Unicode text.
    UNSUPPORTED_JSON = "unsupported_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_COMMAND = "unknown_command"
    INVALID = "invalid"  # wrong / missing / extra fields
    FAILED = "failed"  # the handler raised, or its result cannot be serialised
    # Refused by the uplink before the command runs (answered on the result topic):
    BAD_RESPONSE_TOPIC = "bad_response_topic"  # not a topic name we may publish to
    BAD_CORRELATION_DATA = "bad_correlation_data"
    MALFORMED_PACKET = "malformed_packet"  # MQTT properties the client library cannot read
    # Dropped by the uplink, not answered:
    RETAINED = "retained"  # a retained message on a command topic is never executed
    NOT_A_COMMAND_TOPIC = "not_a_command_topic"  # e.g. an empty level: ``cmd/a//b``
    OVERLOADED = "overloaded"  # more commands queued than the uplink buffers (256)
    INTERNAL = "internal"  # the command loop's guard caught an error (a bug); never fatal


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
        if not name or "/" in name or "+" in name or "#" in name or not _is_text(name):
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
        parsed = self._parse(name, payload)
        if isinstance(parsed, CommandResponse):
            return parsed
        data = parsed
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
            response = CommandResponse(command=name, id=command.id, ok=True, result=result)
            response.to_bytes()  # a result that cannot be sent is the handler's failure
        except CommandRejected as exc:
            # Refused on the gateway's state (a conflict), not its form: not remembered, so
            # the same command id can be sent again once the conflict is gone.
            return self._error(name, command.id, CommandErrorReason.INVALID, exc.detail)
        except Exception as exc:  # a handler bug must not take the daemon down
            _log.exception("command %s id=%s failed", name, command.id)
            detail = repr(exc)[:DETAIL_MAX_CHARS]
            response = self._error(name, command.id, CommandErrorReason.FAILED, detail)
        else:
            self.handled[name] += 1
        self._remember(key, response)
        return response

    def refuse(
        self, name: str, payload: bytes, reason: CommandErrorReason, detail: str
    ) -> CommandResponse:
        """Count and answer a command refused without running it (for the transport: a bad
        response topic, say). The answer carries the command's id when it has a valid one."""
        parsed = self._parse(name, payload, count=False)
        raw_id = parsed.get("id") if isinstance(parsed, dict) else None
        cid = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 128 else None
        return self._error(name, cid, reason, detail)

    def drop(self, name: str, reason: CommandErrorReason, detail: str) -> None:
        """Count a message that gets no answer (a retained command, say), logged per burst."""
        self._count(name, reason, detail)

    def _parse(
        self, name: str, payload: bytes, *, count: bool = True
    ) -> dict[str, Any] | CommandResponse:
        """The payload as a JSON object of Unicode text, or the error response (counted
        only with ``count``)."""

        def error(reason: CommandErrorReason, detail: str) -> CommandResponse:
            if count:
                return self._error(name, None, reason, detail)
            return _response(name, None, reason, detail)

        if len(payload) > self._max_bytes:
            return error(
                CommandErrorReason.OVERSIZE, f"{len(payload)} bytes, limit {self._max_bytes}"
            )
        try:
            data = json.loads(payload, parse_constant=_refuse_constant)
        except RecursionError:
            return error(CommandErrorReason.MALFORMED_JSON, "nested too deeply")
        except (UnicodeDecodeError, json.JSONDecodeError, _NotJson) as exc:
            return error(CommandErrorReason.MALFORMED_JSON, str(exc))
        except ValueError as exc:  # an integer over Python's 4300-digit limit
            return error(CommandErrorReason.UNSUPPORTED_JSON, str(exc))
        if not isinstance(data, dict):
            return error(CommandErrorReason.NOT_AN_OBJECT, "the command must be a JSON object")
        bad = _first_non_text(data)
        if bad is not None:
            return error(CommandErrorReason.UNSUPPORTED_JSON, bad)
        return data

    def _remember(self, key: tuple[str, str], response: CommandResponse) -> None:
        self._results[key] = response
        while len(self._results) > self._results_kept:
            self._results.popitem(last=False)

    def _error(
        self, name: str, cid: str | None, reason: CommandErrorReason, detail: str
    ) -> CommandResponse:
        self._count(name, reason, detail)
        return _response(name, cid, reason, detail)

    def _count(self, name: str, reason: CommandErrorReason, detail: str) -> None:
        self.errors[reason] += 1
        now = self._clock.monotonic()
        last = self._last_log_s.get(reason)
        if last is None or now - last >= LOG_BURST_INTERVAL_S:
            self._last_log_s[reason] = now
            more = self._suppressed.pop(reason, 0)
            _log.warning(
                "bad command %s: %s (%s); %d more of this kind since the last line",
                ascii(name[:64]),
                reason.value,
                ascii(detail[:120]),
                more,
            )
        else:
            self._suppressed[reason] += 1


class _NotJson(ValueError):
    """``NaN``, ``Infinity`` and ``-Infinity``: Python's json reads them, JSON has none."""


def _refuse_constant(text: str) -> Any:
    raise _NotJson(f"{text} is not JSON")


def _is_text(value: str) -> bool:
    """True unless the string holds a lone surrogate (JSON can write one as ``\\ud800``)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _safe_text(value: str) -> str:
    """The string, lone surrogates written as ``\\ud800`` escapes: always serialisable."""
    return value if _is_text(value) else value.encode("utf-8", "backslashreplace").decode()


def _first_non_text(data: dict[str, Any]) -> str | None:
    """Where the parsed JSON holds a string that is not Unicode text, or None. Iterative:
    the nesting is as deep as the parser allowed."""
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not _is_text(key):
                    return "a key holds a lone UTF-16 surrogate"
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and not _is_text(value):
            return "a string holds a lone UTF-16 surrogate"
    return None


def _response(
    name: str, cid: str | None, reason: CommandErrorReason, detail: str
) -> CommandResponse:
    return CommandResponse(
        command=_safe_text(name),
        id=cid,
        ok=False,
        error=CommandError(reason=reason, detail=_safe_text(detail[:DETAIL_MAX_CHARS])),
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
