"""The downlink commands ``tags.bind`` and ``tags.unbind``.

::

    tags.bind    {"id": "c-17", "tag": "ibeacon:...:1:42", "asset": "https://id.gs1.org/00/..."}
    tags.unbind  {"id": "c-18", "tag": "ibeacon:...:1:42"}

The tag id and the GS1 key are validated by the command model, so a bad check digit or tag id
is answered ``invalid`` with the reason before anything changes. A change is written to the
state store (in a worker thread) before the registry applies it and before the response says
``ok``: an acknowledged binding survives a power cut.

Idempotent by command id, also across restarts: with the change, the same transaction records
the command id and its result (namespace ``tags.commands``, the last
:data:`TAG_COMMANDS_KEPT`), and a command id found there is answered with its recorded result
without applying it again. So an old ``tags.bind`` that the platform resends late, after a
newer one for the same tag and after a restart, cannot undo the newer one. Binding the same
again under a new id, or unbinding a tag that is not bound, succeeds with a ``note``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from pydantic import JsonValue

from gateway.registry.config import AssetUri, TagIdText
from gateway.registry.registry import BindingSource, TagChange, TagRegistry, write_change
from gateway.state import StateStore
from gateway.uplink import Command, CommandRegistry

__all__ = [
    "TAG_COMMANDS_KEPT",
    "TAG_COMMANDS_NAMESPACE",
    "TagBindCommand",
    "TagUnbindCommand",
    "register_tag_commands",
]

_log = logging.getLogger(__name__)

#: The state store namespace of the recorded command ids and results.
TAG_COMMANDS_NAMESPACE: Final = "tags.commands"
#: Command ids remembered across restarts: far more than a platform resends within its retry
#: window (minutes), at about 300 bytes each (300 KB at most in the state file).
TAG_COMMANDS_KEPT: Final = 1000


class TagBindCommand(Command):
    """Bind a tag to an asset (rebinding it if it was bound to another)."""

    tag: TagIdText
    asset: AssetUri


class TagUnbindCommand(Command):
    """Unbind a tag: its observations are tracked under the tag id alone."""

    tag: TagIdText


class _CommandLog:
    """The recorded results by ``<command name>/<id>``, oldest first (mirrors the store)."""

    def __init__(self, records: dict[str, JsonValue]) -> None:
        valid: list[tuple[int, str, JsonValue]] = []
        for key, record in records.items():
            n = record.get("n") if isinstance(record, dict) else None
            if isinstance(n, int) and not isinstance(n, bool) and isinstance(record, dict):
                valid.append((n, key, record.get("result")))
        valid.sort()
        self.results: OrderedDict[str, JsonValue] = OrderedDict(
            (key, result) for _, key, result in valid
        )
        self.malformed = len(records) - len(valid)
        self.next_n = valid[-1][0] + 1 if valid else 0


def register_tag_commands(
    commands: CommandRegistry,
    tags: TagRegistry,
    store: StateStore,
    *,
    commands_kept: int = TAG_COMMANDS_KEPT,
    on_change: Callable[[TagChange, str], None] | None = None,
) -> None:
    """Register ``tags.bind`` and ``tags.unbind`` on ``commands``, acting on ``tags`` and
    persisting to ``store`` (which must be open for as long as commands are handled).
    ``commands_kept``: how many command ids are remembered across restarts. ``on_change`` is
    called with each applied change and its command id (the ``tag.binding`` event); not for a
    command answered from its recorded result."""
    # One command at a time: plan, write and apply must not interleave.
    lock = asyncio.Lock()
    log: _CommandLog | None = None

    def load() -> _CommandLog:
        loaded = _CommandLog(store.items(TAG_COMMANDS_NAMESPACE))
        if loaded.malformed:
            _log.warning("tag commands: %d malformed command records ignored", loaded.malformed)
        return loaded

    def commit(key: str, n: int, change: TagChange, result: JsonValue, prune: list[str]) -> None:
        with store.transaction() as tx:
            write_change(tx, change)
            tx.put(TAG_COMMANDS_NAMESPACE, key, {"n": n, "result": result})
            for old in prune:
                tx.delete(TAG_COMMANDS_NAMESPACE, old)

    async def run(name: str, command_id: str, change_for: Callable[[], TagChange]) -> JsonValue:
        nonlocal log
        async with lock:
            if log is None:
                log = await asyncio.to_thread(load)
            key = f"{name}/{command_id}"
            if key in log.results:
                return log.results[key]  # seen before (a restart): answered, not applied again
            planned = change_for()
            result = _result(planned)
            prune = list(log.results)[: max(0, len(log.results) + 1 - commands_kept)]
            await asyncio.to_thread(commit, key, log.next_n, planned, result, prune)
            tags.apply(planned)
            if on_change is not None:
                on_change(planned, command_id)
            log.results[key] = result
            log.next_n += 1
            for old in prune:
                del log.results[old]
            return result

    async def bind(cmd: TagBindCommand) -> JsonValue:
        return await run("tags.bind", cmd.id, lambda: tags.plan_bind(cmd.tag, cmd.asset, cmd.id))

    async def unbind(cmd: TagUnbindCommand) -> JsonValue:
        return await run("tags.unbind", cmd.id, lambda: tags.plan_unbind(cmd.tag, cmd.id))

    commands.register("tags.bind", TagBindCommand, bind)
    commands.register("tags.unbind", TagUnbindCommand, unbind)


def _result(change: TagChange) -> dict[str, JsonValue]:
    """The command's result: the binding in force once ``change`` is applied."""
    if change.asset is None:
        source = None
    elif change.document is not None:
        source = BindingSource.COMMAND.value
    else:
        source = BindingSource.CONFIG.value
    result: dict[str, JsonValue] = {
        "tag": change.tag,
        "asset": change.asset,
        "previous": change.previous,
        "changed": change.changed,
        "source": source,
    }
    if not change.changed:
        result["note"] = (
            "the tag was not bound"
            if change.asset is None
            else "the tag was already bound to this asset"
        )
    return result
