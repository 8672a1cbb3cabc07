"""What a power cut must not break off: an open handoff session and an open temperature
excursion carry on after the daemon is SIGKILLed and started again on the same state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.registry import smartlabel_tag_id
from protocols.smartlabel import Environment
from simulator.serial import PtyPort, SmartLabelReaderSim
from tests.fixtures.mosquitto import Broker
from tests.reliability.conftest import Daemon, Recorder, write_config

GATEWAY = "gw-state"
LABEL = 0x5A4B200000000001
TAG = smartlabel_tag_id(LABEL)
#: The pallet label reports every FRAME_S (real seconds).
FRAME_S = 0.25


async def send_reading(reader: SmartLabelReaderSim, temperature_c: float) -> None:
    reader.send(
        Environment(
            label_id=LABEL,
            seq=reader.next_seq(LABEL),
            label_time=int(time.time()),
            temperature_c=temperature_c,
            humidity_pct=60.0,
        )
    )
    await asyncio.sleep(FRAME_S)


def excursions(rec: Recorder) -> list[dict[str, Any]]:
    return [e for e in rec.of_kind("condition.excursion") if e["source"]["device"] == TAG]


async def feed_until(
    reader: SmartLabelReaderSim,
    temperature_c: float,
    done: Callable[[], bool],
    timeout_s: float = 60.0,
) -> None:
    async with asyncio.timeout(timeout_s):
        while not done():
            await send_reading(reader, temperature_c)


@pytest.mark.timeout(240)
async def test_open_session_and_excursion_continue_after_power_cuts(
    mosquitto: Broker,
    recorder: Recorder,
    daemons: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """Parameters: one pallet label on a reader in door zone ``door-9``, one frame every 0.25 s;
    profile pharma-2-8 assigned, handoff session opened; the label warms to 12 °C (excursion
    opens), SIGKILL, restart, still warm, SIGKILL again, restart, cold at 5 °C (excursion
    returns), session closed. About 15-30 s.

    After both cuts the excursion closes as ``returned`` under the id it opened with and from
    the start it opened at (no second excursion); the session opened before the cuts is still
    open (a conflicting open is refused, the same one is not, closing it works once). The
    handoff report is not awaited: it follows the close by a 60 s settle."""
    config = write_config(
        tmp_path / "gw.toml",
        GATEWAY,
        mosquitto,
        '[custody]\ndoor_zones = ["door-9"]\n'
        f'[[smartlabel_readers]]\npath = "{tmp_path / "reader"}"\nzone = "door-9"\n',
    )
    daemon = daemons(config)
    end = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    session = {
        "id": "open-1",
        "session_id": "H-CUT",
        "door": "door-9",
        "from_party": "Northline Freight",
        "to_party": "4012345000009",
        "expected": [TAG, "urn:tagrelay:test:not-here"],
        "documents": [{"type": "ASN", "number": "ASN-9"}],
        "window_end": end,
    }
    async with (
        PtyPort(tmp_path / "reader") as port,
        SmartLabelReaderSim(port, resend_after_s=1.0) as reader,
    ):
        mark = recorder.mark()
        daemon.start()
        await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
        opened = await asyncio.to_thread(recorder.command, GATEWAY, "handoff.open", session)
        assert opened["ok"] is True, opened
        assign = {"id": "assign-1", "profile": "pharma-2-8", "subjects": [TAG]}
        assigned = await asyncio.to_thread(recorder.command, GATEWAY, "profiles.assign", assign)
        assert assigned["ok"] is True, assigned
        await feed_until(
            reader, 12.0, lambda: any(e["phase"] == "open" for e in excursions(recorder))
        )
        (first,) = [e for e in excursions(recorder) if e["phase"] == "open"]
        assert daemon.kill() == -9

        mark = recorder.mark()
        daemon.start()
        await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
        acked = len(reader.acked)
        await feed_until(reader, 12.5, lambda: len(reader.acked) >= acked + 8)
        assert daemon.kill() == -9

        mark = recorder.mark()
        daemon.start()
        await asyncio.to_thread(recorder.wait_online, GATEWAY, mark)
        await feed_until(
            reader,
            5.0,
            lambda: any(e.get("close_reason") == "returned" for e in excursions(recorder)),
        )
        # The session is still open: its id with other content is a conflict, the same
        # request again is not, and closing it works (an unknown session would be refused).
        again = await asyncio.to_thread(recorder.command, GATEWAY, "handoff.open", session)
        assert again["ok"] is True, again
        other = {**session, "id": "open-2", "expected": ["urn:tagrelay:test:other"]}
        conflict = await asyncio.to_thread(recorder.command, GATEWAY, "handoff.open", other)
        assert conflict["ok"] is False, conflict
        close = {"id": "close-1", "session_id": "H-CUT"}
        closed = await asyncio.to_thread(recorder.command, GATEWAY, "handoff.close", close)
        assert closed["ok"] is True, closed
        twice = await asyncio.to_thread(
            recorder.command, GATEWAY, "handoff.close", {**close, "id": "close-2"}
        )
        assert twice["ok"] is False, twice
        assert daemon.terminate() == 0

    ended = next(e for e in excursions(recorder) if e.get("close_reason") == "returned")
    assert ended["excursion_id"] == first["excursion_id"]
    assert ended["start"] == first["start"]
    # Readings that changed only the open excursion's statistics (no excursion event) are
    # saved with the monitor's state at the next excursion event or every 30 s, not before
    # their ACK: the 12.5 °C readings between the cuts may be missing from the close's max.
    assert ended["max"] >= 12.0
    assert {e["excursion_id"] for e in excursions(recorder)} == {first["excursion_id"]}
    log = daemon.text()
    assert "Traceback" not in log
    assert "could not be restored" not in log
