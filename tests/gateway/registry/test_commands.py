"""``tags.bind`` / ``tags.unbind`` through the real command processor on a real state file:
answers, validation reasons, idempotence, persistence before ok (also across kill -9), a
failing store, and a fuzz run of arbitrary JSON."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.registry import (
    TAG_COMMANDS_KEPT,
    TAG_COMMANDS_NAMESPACE,
    TAGS_NAMESPACE,
    TagBinding,
    TagRegistry,
    register_tag_commands,
)
from gateway.state import StateStore
from gateway.uplink.commands import (
    CommandErrorReason,
    CommandProcessor,
    CommandRegistry,
    CommandResponse,
)
from tests.gateway.outbox.helpers import FakeClock
from tests.gateway.registry.command_child import CANONICAL_ASSETS, command_for

TAG = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:42"
SSCC = "https://id.gs1.org/00/340123450000000017"
CONFIG_ASSET = "https://id.gs1.org/8004/0952123456ABC"
CONFIG_TAG = "ruuvi:C8:25:2D:8E:F1:04"


class Gateway:
    """The processor with the tag commands, on one store file (reopened by :meth:`restart`)."""

    def __init__(self, db: Path, commands_kept: int = TAG_COMMANDS_KEPT) -> None:
        self.db = db
        self.commands_kept = commands_kept
        self.clock = FakeClock()
        self.config = (TagBinding(tag=CONFIG_TAG, asset=CONFIG_ASSET),)
        self._start()

    def _start(self) -> None:
        self.store = StateStore(self.db, self.clock)
        self.store.open()
        self.tags = TagRegistry.load(self.store, self.config)
        registry = CommandRegistry()
        register_tag_commands(registry, self.tags, self.store, commands_kept=self.commands_kept)
        self.processor = CommandProcessor(registry, self.clock, max_bytes=4096, results_kept=16)

    def restart(self) -> None:
        self.store.close()
        self._start()

    async def send(self, name: str, body: Any) -> CommandResponse:
        return await self.processor.handle(name, json.dumps(body).encode())


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path / "state.db")
    yield gw
    gw.store.close()


def _on_disk(db: Path) -> dict[str, Any]:
    """The tag documents as another connection reads them from the file right now."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT key, value FROM documents WHERE namespace = ?", (TAGS_NAMESPACE,)
        ).fetchall()
    finally:
        conn.close()
    return {key: json.loads(value) for key, value in rows}


async def test_bind_is_on_disk_when_ok_and_survives_a_restart(gateway: Gateway) -> None:
    response = await gateway.send(
        "tags.bind", {"id": "c1", "tag": TAG.upper().replace("IBEACON", "ibeacon"), "asset": SSCC}
    )
    assert response.ok
    assert response.result == {
        "tag": TAG,
        "asset": SSCC,
        "previous": None,
        "changed": True,
        "source": "command",
    }
    assert _on_disk(gateway.db) == {TAG: {"asset": SSCC, "config_asset": None, "command": "c1"}}
    assert gateway.tags.asset_of(TAG) == SSCC
    gateway.restart()
    assert gateway.tags.asset_of(TAG) == SSCC


async def test_epc_urn_is_stored_as_its_digital_link(gateway: Gateway) -> None:
    response = await gateway.send(
        "tags.bind", {"id": "c1", "tag": TAG, "asset": "urn:epc:id:sscc:0614141.1234567890"}
    )
    assert response.ok
    assert gateway.tags.asset_of(TAG) == "https://id.gs1.org/00/106141412345678908"


async def test_rebinding_and_unbinding_a_config_tag(gateway: Gateway) -> None:
    assert gateway.tags.asset_of(CONFIG_TAG) == CONFIG_ASSET
    rebind = await gateway.send("tags.bind", {"id": "c1", "tag": CONFIG_TAG, "asset": SSCC})
    assert rebind.result == {
        "tag": CONFIG_TAG,
        "asset": SSCC,
        "previous": CONFIG_ASSET,
        "changed": True,
        "source": "command",
    }
    unbind = await gateway.send("tags.unbind", {"id": "c2", "tag": CONFIG_TAG})
    assert unbind.ok
    assert unbind.result == {
        "tag": CONFIG_TAG,
        "asset": None,
        "previous": SSCC,
        "changed": True,
        "source": None,
    }
    gateway.restart()
    assert gateway.tags.asset_of(CONFIG_TAG) is None


async def test_idempotent_by_id_and_by_content(gateway: Gateway) -> None:
    first = await gateway.send("tags.bind", {"id": "c1", "tag": TAG, "asset": SSCC})
    replay = await gateway.send("tags.bind", {"id": "c1", "tag": TAG, "asset": SSCC})
    assert replay == first
    assert gateway.processor.replayed == 1
    again = await gateway.send("tags.bind", {"id": "c2", "tag": TAG, "asset": SSCC})
    assert again.ok
    assert isinstance(again.result, dict)
    assert again.result["changed"] is False
    assert again.result["note"] == "the tag was already bound to this asset"
    # A repeat is not worth a write: the document still names the first command.
    assert _on_disk(gateway.db)[TAG]["command"] == "c1"
    unknown = await gateway.send("tags.unbind", {"id": "c3", "tag": "smartlabel:0000000000000001"})
    assert unknown.ok
    assert isinstance(unknown.result, dict)
    assert unknown.result["note"] == "the tag was not bound"
    assert unknown.result["changed"] is False


async def test_a_late_resend_after_a_restart_does_not_undo_a_newer_command(
    gateway: Gateway,
) -> None:
    first = await gateway.send("tags.bind", {"id": "c1", "tag": TAG, "asset": SSCC})
    newer = await gateway.send("tags.bind", {"id": "c2", "tag": TAG, "asset": CONFIG_ASSET})
    assert newer.ok
    gateway.restart()  # the processor's in-memory replay memory is gone
    late = await gateway.send("tags.bind", {"id": "c1", "tag": TAG, "asset": SSCC})
    assert late == first
    assert gateway.tags.asset_of(TAG) == CONFIG_ASSET
    unbind = await gateway.send("tags.unbind", {"id": "c3", "tag": TAG})
    gateway.restart()
    assert await gateway.send("tags.unbind", {"id": "c3", "tag": TAG}) == unbind
    assert await gateway.send("tags.bind", {"id": "c2", "tag": TAG, "asset": CONFIG_ASSET}) == (
        newer
    )
    assert gateway.tags.asset_of(TAG) is None


async def test_remembered_command_ids_are_capped(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "state.db", commands_kept=3)
    try:
        for n in range(5):
            assert (await gw.send("tags.bind", {"id": f"c{n}", "tag": TAG, "asset": SSCC})).ok
        assert sorted(gw.store.items(TAG_COMMANDS_NAMESPACE)) == [
            "tags.bind/c2",
            "tags.bind/c3",
            "tags.bind/c4",
        ]
        gw.restart()
        assert (await gw.send("tags.unbind", {"id": "c5", "tag": TAG})).ok
        assert sorted(gw.store.items(TAG_COMMANDS_NAMESPACE)) == [
            "tags.bind/c3",
            "tags.bind/c4",
            "tags.unbind/c5",
        ]
        # A forgotten id is a new command again.
        again = await gw.send("tags.bind", {"id": "c0", "tag": TAG, "asset": SSCC})
        assert again.result is not None
        assert gw.tags.asset_of(TAG) == SSCC
    finally:
        gw.store.close()


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        (
            "tags.bind",
            {"id": "c1", "tag": TAG, "asset": "https://id.gs1.org/00/340123450000000018"},
            "check digit is 8, expected 7",
        ),
        ("tags.bind", {"id": "c1", "tag": "ibeacon:1:2:3", "asset": SSCC}, "bad tag id"),
        (
            "tags.bind",
            {"id": "c1", "tag": TAG, "asset": "https://id.gs1.org/01/09521234543213"},
            "add its serial",
        ),
        ("tags.bind", {"id": "c1", "tag": TAG}, "asset: Field required"),
        ("tags.bind", {"id": "c1", "tag": TAG, "asset": SSCC, "zone": "x"}, "Extra inputs"),
        ("tags.bind", {"id": "c1", "tag": TAG, "asset": 17}, "string"),
        ("tags.unbind", {"id": "c1"}, "tag: Field required"),
        ("tags.unbind", {"id": "", "tag": TAG}, "id"),
    ],
)
async def test_invalid_commands_name_the_reason_and_change_nothing(
    gateway: Gateway, name: str, body: dict[str, Any], words: str
) -> None:
    response = await gateway.send(name, body)
    assert not response.ok
    assert response.error is not None
    assert response.error.reason is CommandErrorReason.INVALID
    assert words in response.error.detail
    assert gateway.processor.errors[CommandErrorReason.INVALID] == 1
    assert _on_disk(gateway.db) == {}
    assert dict(gateway.tags.bindings()) == {CONFIG_TAG: CONFIG_ASSET}


async def test_a_failing_store_fails_the_command_and_changes_nothing(gateway: Gateway) -> None:
    gateway.store.close()
    response = await gateway.send("tags.bind", {"id": "c1", "tag": TAG, "asset": SSCC})
    assert not response.ok
    assert response.error is not None
    assert response.error.reason is CommandErrorReason.FAILED
    assert "closed" in response.error.detail
    assert gateway.tags.asset_of(TAG) is None  # memory follows the disk, never leads it


_keys = st.sampled_from(["id", "tag", "asset", "zone"])
_good = st.sampled_from(
    [TAG, CONFIG_TAG, SSCC, CONFIG_ASSET, "urn:epc:id:sscc:0614141.1234567890", "c1", "c2"]
)
_tags = st.sampled_from([TAG, CONFIG_TAG, TAG.upper().replace("IBEACON", "ibeacon")])
_assets = st.sampled_from(
    [SSCC, CONFIG_ASSET, "urn:epc:id:sscc:0614141.1234567890", SSCC[:-1] + "8"]
)
_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    commands=st.lists(
        st.tuples(
            st.sampled_from(["tags.bind", "tags.unbind"]),
            st.fixed_dictionaries(
                {"id": st.sampled_from(["c1", "c2", "c3"]), "tag": _tags, "asset": _assets}
            )
            | st.fixed_dictionaries(
                {"id": st.sampled_from(["c1", "c2"]) | _json, "tag": _tags | _json},
                optional={"asset": _assets | _json, "zone": _json},
            )
            | st.dictionaries(_keys, _good | _json, max_size=4)
            | _json,
        ),
        min_size=1,
        max_size=8,
    )
)
async def test_fuzz_arbitrary_json(
    tmp_path_factory: pytest.TempPathFactory, commands: list[tuple[str, Any]]
) -> None:
    gw = Gateway(tmp_path_factory.mktemp("fuzz") / "state.db")
    try:
        for name, body in commands:
            response = await gw.send(name, body)
            event(f"{name} ok={response.ok}")
            if not response.ok:
                assert response.error is not None
                assert response.error.reason in (
                    CommandErrorReason.INVALID,
                    CommandErrorReason.NOT_AN_OBJECT,
                    # json.dumps writes NaN / Infinity, which is not JSON: refused as such.
                    CommandErrorReason.MALFORMED_JSON,
                )
        # Whatever happened, memory and disk agree.
        before = dict(gw.tags.bindings())
        gw.restart()
        assert dict(gw.tags.bindings()) == before
        assert gw.processor.errors[CommandErrorReason.FAILED] == 0
    finally:
        gw.store.close()


# -- kill -9 while commands are being acknowledged --------------------------------------------

CHILD = Path(__file__).with_name("command_child.py")
KILLS = 6
START_DEADLINE_S = 60.0


def test_sigkill_keeps_every_acknowledged_binding(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    rng = random.Random(20261203)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    next_n = 0
    acked: list[int] = []
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(next_n)], stdout=subprocess.PIPE, env=env
        )
        try:
            assert proc.stdout is not None
            want = rng.randrange(1, 80)
            got: list[int] = []
            deadline = time.monotonic() + START_DEADLINE_S
            while len(got) < want and (line := proc.stdout.readline()):
                got.append(int(line))
                assert time.monotonic() < deadline, "child too slow"
            time.sleep(rng.random() * 0.02)  # randomises the kill moment; not synchronisation
            proc.send_signal(signal.SIGKILL)
            rest, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        got += [int(x) for x in rest.split()]
        assert got, "the child acknowledged nothing before the kill"
        acked += got
        # The next run starts after the last acknowledged command (the one in flight at the
        # kill may or may not have been written: it was never acknowledged).
        next_n = got[-1] + 1

        store = StateStore(db, FakeClock())
        store.open()
        try:
            tags = TagRegistry.load(store)
        finally:
            store.close()
        # The latest acknowledged command per tag is what the tag is bound to, unless the
        # unacknowledged one after it landed (it binds the tag of next_n).
        latest: dict[str, int] = {}
        for n in acked:
            latest[command_for(n)[1]] = n
        in_flight_tag = command_for(next_n)[1]
        for tag, n in latest.items():
            allowed = {CANONICAL_ASSETS[n % len(CANONICAL_ASSETS)]}
            if tag == in_flight_tag:
                allowed.add(CANONICAL_ASSETS[next_n % len(CANONICAL_ASSETS)])
            assert tags.asset_of(tag) in allowed, (tag, n)
        assert set(latest) <= set(tags.bindings()) <= set(latest) | {in_flight_tag}
