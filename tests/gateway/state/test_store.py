"""The state store on real files: documents, transactions, validation, locking, schema
version, and the quarantine of a corrupt file."""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from gateway.state import (
    SCHEMA_VERSION,
    StateError,
    StateErrorReason,
    StateStore,
    check_integrity,
)
from gateway.state.errors import translate
from tests.gateway.outbox.helpers import FakeClock


def _open(path: Path) -> StateStore:
    store = StateStore(path, FakeClock())
    store.open()
    return store


def test_documents_survive_reopen(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "state.db"
    with StateStore(db, FakeClock()) as store:
        store.put("tags", "ibeacon:x", {"asset": "https://id.gs1.org/00/340123450000000017"})
        store.put("tags", "ruuvi:AA", {"asset": None, "n": [1, 2.5, True, "é"]})
        store.put("handoff", "s1", "open")
        assert store.delete("handoff", "s1")
        assert not store.delete("handoff", "s1")
        store.put("handoff", "s2", None)
    with StateStore(db, FakeClock()) as store:
        assert store.items("tags") == {
            "ibeacon:x": {"asset": "https://id.gs1.org/00/340123450000000017"},
            "ruuvi:AA": {"asset": None, "n": [1, 2.5, True, "é"]},
        }
        assert store.get("tags", "ruuvi:AA") == {"asset": None, "n": [1, 2.5, True, "é"]}
        assert store.get("tags", "nope") is None
        assert store.items("handoff") == {"s2": None}
        assert store.items("empty") == {}
        assert sorted(store.namespaces()) == ["handoff", "tags"]
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_put_replaces_and_namespaces_are_separate(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db", FakeClock()) as store:
        store.put("a", "k", 1)
        store.put("b", "k", 2)
        store.put("a", "k", 3)
        assert (store.get("a", "k"), store.get("b", "k")) == (3, 2)
        store.put_many("a", {"x": 1, "y": 2})
        assert store.items("a") == {"k": 3, "x": 1, "y": 2}
        assert store.delete_many("a", ["x", "nope", "k"]) == 2
        assert store.items("a") == {"y": 2}


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db", FakeClock()) as store:
        store.put("t", "keep", 1)

        def failing_transaction() -> None:
            with store.transaction() as tx:
                tx.put("t", "new", 2)
                assert tx.get("t", "new") == 2
                assert tx.delete("t", "keep")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            failing_transaction()
        assert store.items("t") == {"keep": 1}
        # A bad value in the middle of a put_many leaves none of it.
        with pytest.raises(StateError) as info:
            store.put_many("t", {"a": 1, "b": math.nan, "c": 3})
        assert info.value.reason is StateErrorReason.BAD_ARGUMENT
        assert store.items("t") == {"keep": 1}
        with store.transaction() as tx:
            tx.put("t", "a", 1)
            tx.put("t", "b", 2)
            assert tx.items("t") == {"a": 1, "b": 2, "keep": 1}
    with StateStore(tmp_path / "state.db", FakeClock()) as store:
        assert store.items("t") == {"a": 1, "b": 2, "keep": 1}


@pytest.mark.parametrize(
    ("namespace", "key", "value"),
    [
        ("Tags", "k", 1),
        ("", "k", 1),
        ("tags/x", "k", 1),
        ("t", "", 1),
        ("t", "k" * 1025, 1),
        ("t", "k", math.inf),
        ("t", "k", (1, 2)),
        ("t", "k", {1: "x"}),
        ("t", "k", b"bytes"),
        ("t", "k", {"set": {1}}),
    ],
)
def test_bad_arguments_are_typed_errors(
    tmp_path: Path, namespace: str, key: str, value: JsonValue
) -> None:
    with StateStore(tmp_path / "state.db", FakeClock()) as store:
        with pytest.raises(StateError) as info:
            store.put(namespace, key, value)
        assert info.value.reason is StateErrorReason.BAD_ARGUMENT
        assert store.namespaces() == ()


def test_too_deep_document_is_refused(tmp_path: Path) -> None:
    deep: JsonValue = 1
    for _ in range(100):
        deep = [deep]
    with StateStore(tmp_path / "state.db", FakeClock()) as store:
        with pytest.raises(StateError) as info:
            store.put("t", "k", deep)
        assert info.value.reason is StateErrorReason.BAD_ARGUMENT


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.text(min_size=1, max_size=40), value=_json)
def test_any_json_value_round_trips(tmp_path: Path, key: str, value: JsonValue) -> None:
    with StateStore(tmp_path / "state.db", FakeClock()) as store:
        store.put("fuzz", key, value)
        assert store.get("fuzz", key) == value
        assert store.items("fuzz")[key] == value


def test_closed_store_refuses(tmp_path: Path) -> None:
    store = _open(tmp_path / "state.db")
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StateError) as info:
        store.get("t", "k")
    assert info.value.reason is StateErrorReason.CLOSED


def test_second_opener_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = _open(db)
    try:
        with pytest.raises(StateError) as info:
            _open(db)
        assert info.value.reason is StateErrorReason.LOCKED
    finally:
        first.close()
    _open(db).close()


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE future (x)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StateError) as info:
        _open(db)
    assert info.value.reason is StateErrorReason.SCHEMA_TOO_NEW
    assert db.read_bytes() == before
    assert not Path(f"{db}-wal").exists()


def test_garbage_file_is_moved_aside_with_wal_and_shm(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not a database file at all" * 200)
    Path(f"{db}-wal").write_bytes(b"old wal")
    Path(f"{db}-shm").write_bytes(b"old shm")
    with StateStore(db, FakeClock()) as store:
        q = store.quarantine
        assert q is not None
        assert "not a database" in q.problem
        stamp = "state.db.corrupt-20260301T120000Z"
        assert q.moved == tuple(str(tmp_path / f"{stamp}{s}") for s in ("", "-wal", "-shm"))
        assert Path(q.moved[1]).read_bytes() == b"old wal"
        assert Path(q.moved[0]).read_bytes().startswith(b"this is not")
        store.put("tags", "k", 1)
    # A second corrupt file the same second gets its own name.
    db.write_bytes(b"garbage again" * 300)
    with StateStore(db, FakeClock()) as store:
        assert store.quarantine is not None
        assert store.quarantine.moved == (str(tmp_path / "state.db.corrupt-20260301T120000Z.1"),)
        assert store.items("tags") == {}
    with StateStore(db, FakeClock()) as store:
        assert store.quarantine is None


def test_scribbled_page_is_found_and_quarantined(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with StateStore(db, FakeClock()) as store:
        store.put_many("bulk", {f"k{i:05d}": {"v": "y" * 100} for i in range(400)})
    assert check_integrity(db) is None
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 6 * page
    raw[3 * page + 16 : 3 * page + 400] = b"\xa5" * 384  # a b-tree page's cells, scribbled
    db.write_bytes(bytes(raw))
    problem = check_integrity(db)
    assert problem is not None
    with StateStore(db, FakeClock()) as store:
        assert store.quarantine is not None
        assert store.quarantine.problem == problem
        assert store.items("bulk") == {}


def test_threads_writing_at_once_all_land(tmp_path: Path) -> None:
    """Callers run the store from worker threads (asyncio.to_thread): one lock serialises
    them, and no write or transaction is interleaved with another."""
    with StateStore(tmp_path / "state.db", FakeClock()) as store:

        def writer(w: int) -> None:
            for i in range(25):
                store.put("threads", f"{w}-{i}", i)
                with store.transaction() as tx:
                    tx.put("pairs", f"{w}-{i}-a", i)
                    tx.put("pairs", f"{w}-{i}-b", i)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store.items("threads")) == 150
        assert len(store.items("pairs")) == 300


def test_sqlite_errors_are_translated_to_reasons(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    conn = sqlite3.connect(garbage)
    try:
        with pytest.raises(sqlite3.DatabaseError) as info:
            conn.execute("SELECT * FROM sqlite_master").fetchall()
    finally:
        conn.close()
    assert translate(info.value).reason is StateErrorReason.CORRUPT
    ro = sqlite3.connect(f"{(tmp_path / 'ro.db').as_uri()}?mode=rwc", uri=True)
    ro.execute("CREATE TABLE t (x)")
    ro.commit()
    ro.close()
    reader = sqlite3.connect(f"{(tmp_path / 'ro.db').as_uri()}?mode=ro", uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError) as write_info:
            reader.execute("INSERT INTO t VALUES (1)")
    finally:
        reader.close()
    assert translate(write_info.value).reason is StateErrorReason.READ_ONLY
