"""``tag.binding``: a tag was bound to an asset, rebound to another, or unbound, by a
``tags.bind`` / ``tags.unbind`` command the gateway applied."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field

from gateway.events.base import Event, make_event_id

__all__ = ["BindingAction", "TagBindingChange"]


class BindingAction(enum.StrEnum):
    """What a ``tag.binding`` did."""

    #: The tag is now bound to ``asset`` (``previous_asset``: the one it was bound to, if any).
    BIND = "bind"
    #: The tag is no longer bound (``previous_asset``: the asset it was bound to).
    UNBIND = "unbind"


class TagBindingChange(Event):
    """Emitted when a ``tags.bind`` or ``tags.unbind`` command changed a tag's binding (a
    command that changes nothing emits nothing). ``time`` is when the gateway applied it;
    ``asset`` (the envelope's) is the binding in force after it, null after an unbind."""

    kind: Literal["tag.binding"] = "tag.binding"
    action: BindingAction
    tag: str = Field(min_length=1)
    """The tag id; the same as ``source.device``."""
    previous_asset: str | None = None
    """The asset the tag was bound to before (null: it was not bound)."""
    command_id: str = Field(min_length=1, max_length=128)
    """The id of the command that made the change."""

    @classmethod
    def make_id(cls, gateway_id: str, *, command_id: str, tag: str) -> str:
        """One per (command, tag): a command is applied once, so its change has one id."""
        return make_event_id("tag.binding", gateway_id, command_id, tag)
