"""Events stamped while the clock was unsynced leave the gateway corrected once a trusted time
source exists: through the real uplink, outbox and mosquitto, with the real clock component."""

from __future__ import annotations

import json
from pathlib import Path

from foundation.clock import SystemClock
from gateway.events import EventSource, TelemetryReading, parse_event, to_outbox
from gateway.events.common import Observation
from gateway.events.telemetry import Quantities
from gateway.timekeeping import TimeKeeper
from tests.fixtures.mosquitto import Broker
from tests.gateway.uplink.helpers import (
    GATEWAY_ID,
    open_outbox,
    open_uplink,
    plain_config,
    subscribe,
)


async def test_unsynced_events_in_the_outbox_are_sent_corrected(
    mosquitto: Broker, tmp_path: Path
) -> None:
    clock = SystemClock()
    synced = False
    keeper = TimeKeeper(clock, boot_id="boot-a", ntp_synchronized=lambda: synced)
    keeper.refresh(clock.monotonic())
    events = []
    for i in range(3):
        mono = clock.monotonic() - 100 + i
        stamp = keeper.stamp(mono)
        assert stamp.clock_ref is not None  # unsynced: the reference travels with the event
        events.append(
            TelemetryReading(
                event_id=TelemetryReading.make_id(
                    GATEWAY_ID, Observation(f"tag-{i}", stamp.clock_ref)
                ),
                gateway_id=GATEWAY_ID,
                time=stamp.time,
                time_source=stamp.source,
                clock_ref=stamp.clock_ref,
                source=EventSource(device=f"tag-{i}"),
                values=Quantities(temperature_c=4.0),
            )
        )
    other_boot = events[0].model_copy(
        update={
            "event_id": "other-boot",
            "clock_ref": events[0].clock_ref.model_copy(update={"boot_id": "boot-z"}),  # type: ignore[union-attr]
        }
    )
    synced = True  # NTP says the clock is right from now on
    keeper.refresh(clock.monotonic())
    async with (
        open_outbox(tmp_path) as outbox,
        subscribe(mosquitto, f"tagrelay/v1/{GATEWAY_ID}/events/#") as sub,
    ):
        await outbox.accept([to_outbox(e) for e in [*events, other_boot]])
        async with open_uplink(plain_config(mosquitto), outbox, rewrite=keeper.correct_payload):
            await sub.wait_until(lambda m: len(sub.events()) >= 4)
    got = {e["event_id"]: e for e in sub.events()}
    for sent in events:
        out = got[sent.event_id]
        assert out["time_source"] == "ntp"
        assert out["time_corrected"] is True
        assert out["clock_ref"] is None
        parse_event(json.dumps(out))  # still a valid event, same id
    # Another boot's monotonic clock says nothing about this one's: sent as it was.
    assert got["other-boot"]["time_source"] == "unsynced"
    assert got["other-boot"]["time_corrected"] is False
