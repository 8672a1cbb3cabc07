"""The downlink commands ``tags.bind`` and ``tags.unbind``.

::

    tags.bind    {"id": "c-17", "tag": "ibeacon:...:1:42", "asset": "https://id.gs1.org/00/..."}
    tags.unbind  {"id": "c-18", "tag": "ibeacon:...:1:42"}

The tag id and the GS1 key are validated by the command model, so a bad check digit or tag id
is answered ``invalid`` with the reason before anything changes. A change is written to the
state store (in a worker thread) before the registry applies it and before the response says
``ok``: an acknowledged binding survives a power cut. Both commands are idempotent: binding
the same again and unbinding a tag that is not bound succeed, with a ``note`` and no write.
The command processor replays the response of a command id it has seen; after a restart a
resent command applies again, which for the same binding is the same no-op.
"""

from __future__ import annotations

import asyncio

from pydantic import JsonValue

from gateway.registry.config import AssetUri, TagIdText
from gateway.registry.registry import TagChange, TagRegistry, persist
from gateway.state import StateStore
from gateway.uplink import Command, CommandRegistry

__all__ = ["TagBindCommand", "TagUnbindCommand", "register_tag_commands"]


class TagBindCommand(Command):
    """Bind a tag to an asset (rebinding it if it was bound to another)."""

    tag: TagIdText
    asset: AssetUri


class TagUnbindCommand(Command):
    """Unbind a tag: its observations are tracked under the tag id alone."""

    tag: TagIdText


def register_tag_commands(commands: CommandRegistry, tags: TagRegistry, store: StateStore) -> None:
    """Register ``tags.bind`` and ``tags.unbind`` on ``commands``, acting on ``tags`` and
    persisting to ``store`` (which must be open for as long as commands are handled)."""
    # One change at a time: plan, write and apply must not interleave for the same tag.
    lock = asyncio.Lock()

    async def change(planned: TagChange) -> None:
        if planned.write:
            await asyncio.to_thread(persist, store, planned)
        tags.apply(planned)

    async def bind(cmd: TagBindCommand) -> JsonValue:
        async with lock:
            planned = tags.plan_bind(cmd.tag, cmd.asset, cmd.id)
            await change(planned)
        result = _result(tags, planned)
        if not planned.changed:
            result["note"] = "the tag was already bound to this asset"
        return result

    async def unbind(cmd: TagUnbindCommand) -> JsonValue:
        async with lock:
            planned = tags.plan_unbind(cmd.tag, cmd.id)
            await change(planned)
        result = _result(tags, planned)
        if not planned.changed:
            result["note"] = "the tag was not bound"
        return result

    commands.register("tags.bind", TagBindCommand, bind)
    commands.register("tags.unbind", TagUnbindCommand, unbind)


def _result(tags: TagRegistry, change: TagChange) -> dict[str, JsonValue]:
    source = tags.source_of(change.tag)
    return {
        "tag": change.tag,
        "asset": change.asset,
        "previous": change.previous,
        "changed": change.changed,
        "source": None if source is None else source.value,
    }
