"""The ``tag.binding`` event of a ``tags.bind`` / ``tags.unbind`` command the gateway applied."""

from __future__ import annotations

from gateway.events import BindingAction, EventSource, TagBindingChange
from gateway.pipeline.factory import EventFactory
from gateway.registry import TagChange

__all__ = ["binding_event"]


def binding_event(
    factory: EventFactory, change: TagChange, command_id: str, monotonic: float
) -> TagBindingChange | None:
    """The event stating ``change`` (applied at ``monotonic``), None when it changed nothing."""
    if not change.changed:
        return None
    stamp = factory.stamp(monotonic)
    return TagBindingChange.model_construct(
        event_id=TagBindingChange.make_id(
            factory.gateway_id, command_id=command_id, tag=change.tag
        ),
        gateway_id=factory.gateway_id,
        time=stamp.time,
        time_source=stamp.source,
        clock_ref=stamp.clock_ref,
        time_corrected=False,
        position=factory.position(monotonic),
        source=EventSource(device=change.tag),
        asset=change.asset,
        action=BindingAction.UNBIND if change.asset is None else BindingAction.BIND,
        tag=change.tag,
        previous_asset=change.previous,
        command_id=command_id,
    )
