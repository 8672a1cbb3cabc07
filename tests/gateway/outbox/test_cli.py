"""``tagrelay outbox``: stats, peek, export and requeue-dead on a real store file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.cli import main
from gateway.outbox import EventClass, Outbox, OutboxConfig, OutboxEvent
from tests.gateway.outbox.helpers import ROOMY, FakeClock, event, version_2_store

BINARY = OutboxEvent("bin", EventClass.STATUS, "device.status", b"\xff\x00not json")
#: Enough telemetry in one commit for a payload block: the commands read those too.
TELEMETRY = 20


async def _make_store(db: Path) -> None:
    clock = FakeClock()
    async with Outbox(db, ROOMY, clock) as outbox:
        await outbox.accept([event(f"t{i}") for i in range(TELEMETRY)])
        await outbox.accept([event("a0", EventClass.ALARM), event("h0", EventClass.HANDOFF)])
        await outbox.accept([BINARY])
        clock.advance(90.0)
        leased = await outbox.lease(1, classes={EventClass.HANDOFF})
        await outbox.reject([e.row_id for e in leased], "schema violation")


async def test_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "outbox.db"
    await _make_store(db)
    assert main(["outbox", "stats", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "telemetry" in text
    assert "dead letters  1" in text
    # In-memory figures are named as the daemon's, never shown as zeros read from the file.
    assert "Only the running daemon" in text
    assert "duplicates" in text
    assert "commits" in text
    assert main(["outbox", "stats", "--db", str(db), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["classes"]["telemetry"]["depth"] == TELEMETRY
    assert body["classes"]["alarm"]["depth"] == 1
    assert body["classes"]["handoff"]["depth"] == 0
    assert body["classes"]["telemetry"]["oldest_age_s"] == pytest.approx(90.0)
    assert body["depth"] == TELEMETRY + 2
    assert body["dead_letters"] == 1
    assert body["source"] == "file"
    assert {"leased", "duplicates", "refused", "commits"} <= set(body["daemon_only"])
    assert not {"leased", "duplicates", "refused", "commits"} & set(body)


async def test_peek_by_class_and_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "outbox.db"
    await _make_store(db)
    assert main(["outbox", "peek", "--db", str(db), "--class", "telemetry", "-n", "2"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert [r["event_id"] for r in rows] == ["t0", "t1"]
    assert rows[0]["payload"]["event_id"] == "t0"
    assert main(["outbox", "peek", "--db", str(db), "--dead"]) == 0
    dead = json.loads(capsys.readouterr().out)
    assert dead["event_id"] == "h0"
    assert dead["reason"] == "schema violation"


async def test_export_jsonl(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    await _make_store(db)
    out = tmp_path / "export.jsonl"
    assert main(["outbox", "export", "--db", str(db), "--format", "jsonl", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["event_id"] for r in rows] == ["a0", "bin", *(f"t{i}" for i in range(TELEMETRY))]
    # The telemetry payloads come out of their payload block whole.
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM payload_blocks").fetchone()[0] == 1
    finally:
        conn.close()
    assert [r["payload"]["event_id"] for r in rows[2:]] == [f"t{i}" for i in range(TELEMETRY)]
    (binary,) = [r for r in rows if r["event_id"] == "bin"]
    assert binary["payload"] == {"base64": "/wBub3QganNvbg=="}
    assert binary["class"] == "status"


async def test_requeue_dead_refuses_while_the_daemon_holds_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "outbox.db"
    await _make_store(db)
    async with Outbox(db, ROOMY, FakeClock()):
        assert main(["outbox", "requeue-dead", "--db", str(db)]) == 75
        assert "another process" in capsys.readouterr().err
    assert main(["outbox", "requeue-dead", "--db", str(db)]) == 0
    assert "re-queued 1 dead letters" in capsys.readouterr().out
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        leased = await outbox.lease(10, classes={EventClass.HANDOFF})
    assert [e.event_id for e in leased] == ["h0"]


async def test_config_locates_the_store_in_the_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    await _make_store(state / "outbox.db")
    config = tmp_path / "tagrelay.toml"
    config.write_text(
        'gateway_id = "truck-7"\nstate_dir = "state"\n\n[outbox]\nmax_bytes = 1000000\n'
        "ttl_s = { telemetry = 3600 }\n\n[uplink]\n"
    )
    assert main(["outbox", "stats", "--config", str(config), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["max_bytes"] == 1_000_000
    assert body["depth"] == TELEMETRY + 2


def test_missing_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "stats", "--db", str(tmp_path / "nope.db")]) == 1
    assert "no such outbox file" in capsys.readouterr().err


async def test_an_older_file_is_read_once_the_daemon_has_migrated_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands read only the current layout, and say what to do with an older file."""
    db = tmp_path / "outbox.db"
    version_2_store(db).close()
    assert main(["outbox", "peek", "--db", str(db)]) == 1
    assert "the daemon migrates it when it next starts" in capsys.readouterr().err
    async with Outbox(db, ROOMY, FakeClock()):
        pass  # what the daemon does at start
    assert main(["outbox", "stats", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["depth"] == 0


def test_config_rejects_a_bad_ttl() -> None:
    with pytest.raises(ValidationError):
        OutboxConfig.model_validate({"ttl_s": {"telemetry": float("nan")}})
    with pytest.raises(ValidationError):
        OutboxConfig.model_validate({"ttl_s": {"nonsense": 5}})
    config = OutboxConfig.model_validate({"ttl_s": {"Alarm": 60}, "class_weights": {"status": 9}})
    assert config.ttl_for(EventClass.ALARM) == 60
    assert config.ttl_for(EventClass.TELEMETRY) == 2 * 86400
    assert config.weight_for(EventClass.STATUS) == 9


async def test_stats_beside_a_running_daemon_ages_from_its_last_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "outbox.db"
    clock = FakeClock()
    async with Outbox(db, ROOMY, clock) as outbox:
        await outbox.accept([event("t0")])
        clock.advance(100.0)
        await outbox.accept([event("t1")])
        assert main(["outbox", "stats", "--db", str(db), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["classes"]["telemetry"]["depth"] == 2
    assert body["classes"]["telemetry"]["oldest_age_s"] == pytest.approx(100.0)


async def test_peek_and_export_show_a_row_that_is_not_utf8_and_carry_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Damage on the card (text that is not UTF-8: a kind, a payload stored as text) does not
    stop the operator's tools: the row is shown escaped and flagged, and the rest follow."""
    db = tmp_path / "outbox.db"
    async with Outbox(db, ROOMY, FakeClock()) as outbox:
        await outbox.accept([event(f"e{i}") for i in range(4)])
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(
            "UPDATE events_telemetry SET kind = CAST(x'74656cff6d' AS TEXT) WHERE event_id = 'e1'"
        )
        conn.execute(
            "UPDATE events_telemetry SET payload = CAST(x'7bff7d' AS TEXT) WHERE event_id = 'e2'"
        )
    finally:
        conn.close()
    assert main(["outbox", "peek", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(c) for c in captured.out.replace("}\n{", "}\x00{").split("\x00")]
    assert [r["event_id"] for r in rows] == ["e0", "e1", "e2", "e3"]
    assert rows[1]["kind"] == "tel\\xffm"
    assert rows[1]["damaged"] == ["kind is not valid UTF-8"]
    assert rows[2]["payload"] == {"base64": "e/99"}
    assert "damaged" not in rows[0]
    assert "damaged" not in rows[3]
    assert f"row {rows[1]['row_id']} is damaged" in captured.err

    out = tmp_path / "export.jsonl"
    assert main(["outbox", "export", "--db", str(db), "-o", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["event_id"] for r in exported] == ["e0", "e1", "e2", "e3"]
    assert exported[1]["kind"] == "tel\\xffm"
    assert exported[2]["payload"] == {"base64": "e/99"}
    assert "exported 4 events (1 damaged, flagged in the output)" in capsys.readouterr().err
