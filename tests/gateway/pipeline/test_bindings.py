"""``tag.binding``: applied ``tags.bind`` / ``tags.unbind`` commands, through the real command
processor on a real state file, become events (one per change, none for a repeat or a resend)
that validate as their kind and render as EPCIS AssociationEvents the reference hashes alike."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.epcis import document, render
from gateway.events import BindingAction, TagBindingChange, TimeSource, parse_event, to_outbox
from gateway.pipeline.bindings import binding_event
from gateway.pipeline.factory import EventFactory
from gateway.registry import TagChange, TagRegistry, register_tag_commands
from gateway.state import StateStore
from gateway.timekeeping import TimeKeeper
from gateway.uplink.commands import CommandProcessor, CommandRegistry
from tests.gateway.epcis.checks import CREATED, reference_hash, schema_errors
from tests.gateway.outbox.helpers import FakeClock

TAG = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:42"
SSCC = "https://id.gs1.org/00/340123450000000017"
OTHER = "https://id.gs1.org/00/340123450000000024"


async def test_applied_commands_become_binding_events(tmp_path: Path) -> None:
    clock = FakeClock()
    store = StateStore(tmp_path / "state.db", clock)
    store.open()
    try:
        tags = TagRegistry.load(store, ())
        keeper = TimeKeeper(clock, boot_id="b", ntp_synchronized=lambda: True)
        keeper.refresh(clock.monotonic())
        factory = EventFactory("dock-3", tags, keeper)
        events: list[TagBindingChange] = []

        def changed(change: TagChange, command_id: str) -> None:
            event = binding_event(factory, change, command_id, clock.monotonic())
            if event is not None:
                events.append(event)

        registry = CommandRegistry()
        register_tag_commands(registry, tags, store, on_change=changed)
        processor = CommandProcessor(registry, clock, max_bytes=4096, results_kept=16)

        async def send(name: str, body: dict[str, str]) -> None:
            response = await processor.handle(name, json.dumps(body).encode())
            assert response.ok, response

        await send("tags.bind", {"id": "c-1", "tag": TAG, "asset": SSCC})
        await send("tags.bind", {"id": "c-1", "tag": TAG, "asset": SSCC})  # a resend
        await send("tags.bind", {"id": "c-2", "tag": TAG, "asset": SSCC})  # the same again
        await send("tags.bind", {"id": "c-3", "tag": TAG, "asset": OTHER})  # a rebind
        await send("tags.unbind", {"id": "c-4", "tag": TAG})
        await send("tags.unbind", {"id": "c-5", "tag": TAG})  # not bound: nothing changes
    finally:
        store.close()
    assert [(e.action, e.previous_asset, e.asset, e.command_id) for e in events] == [
        (BindingAction.BIND, None, SSCC, "c-1"),
        (BindingAction.BIND, SSCC, OTHER, "c-3"),
        (BindingAction.UNBIND, OTHER, None, "c-4"),
    ]
    for event in events:
        # Built with model_construct: what goes out parses back as the same event.
        assert parse_event(to_outbox(event).payload) == event
        assert event.time_source is TimeSource.NTP
        assert event.event_id == TagBindingChange.make_id(
            "dock-3", command_id=event.command_id, tag=TAG
        )
    rendered = [e for event in events for e in render(event).events]
    assert [(e["type"], e["action"], e["parentID"]) for e in rendered] == [
        ("AssociationEvent", "ADD", SSCC),
        ("AssociationEvent", "DELETE", SSCC),
        ("AssociationEvent", "ADD", OTHER),
        ("AssociationEvent", "DELETE", OTHER),
    ]
    assert schema_errors(document(rendered, created=CREATED)) == []
    assert [e["eventID"] for e in rendered] == [reference_hash(e) for e in rendered]
