"""The state store: domain state that a restart must not forget, in one small SQLite file.

Tag bindings, open handoff sessions, loaded routes, condition profiles and open excursions
are what the gateway was *told* or has *decided*; unlike smoothed RSSI they cannot be
re-learned after a restart. Each owner keeps its state as JSON documents under its own
namespace (``tags``, ``handoff``, ...) and writes them through this store before it reports
a change as done: a write has returned only once it is on disk (WAL, ``synchronous=FULL``),
so an acknowledged command survives a power cut or ``kill -9``.

The API is synchronous and thread-safe (one lock per store): asyncio callers run it in a
thread (``asyncio.to_thread``). Writes are rare (commands, session changes), so every write
commits on its own or in one explicit :meth:`StateStore.transaction`.

The file is checked when it is opened; a corrupt file is moved aside with its -wal and -shm
files and a new one is started. That is never silent: :attr:`StateStore.quarantine` says what
was wrong and where the old files went, and an error line is logged.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from pydantic import JsonValue

from foundation.clock import Clock
from gateway.sqlite_file import check_integrity, quarantine
from gateway.state.errors import StateError, StateErrorReason, translate

__all__ = [
    "BUSY_TIMEOUT_MS",
    "KEY_MAX_CHARS",
    "NAMESPACE_PATTERN",
    "SCHEMA_VERSION",
    "STATE_FILE_NAME",
    "Quarantine",
    "StateStore",
    "StateTransaction",
    "check_integrity",
]

_log = logging.getLogger(__name__)

#: The file's name under the state directory (beside the outbox's file).
STATE_FILE_NAME: Final = "state.db"
#: The schema version this code writes (``PRAGMA user_version``); a newer file is refused.
SCHEMA_VERSION: Final = 1
#: A writer waits this long for another connection (an inspecting CLI) before failing.
BUSY_TIMEOUT_MS: Final = 5000
#: The WAL is truncated back to this after a checkpoint: state writes are small and rare, so
#: a larger WAL would only hold stale pages on the card.
JOURNAL_SIZE_LIMIT_BYTES: Final = 1024 * 1024
#: Namespaces are short lower-case names (``tags``, ``handoff.sessions``): they appear in logs
#: and in the file, and a typo'd namespace should fail loudly, not create a stray table row.
NAMESPACE_PATTERN: Final = r"[a-z][a-z0-9_.-]{0,63}"
#: Keys are ids (tag ids, session ids, URIs); a longer key is a bug, not data.
KEY_MAX_CHARS: Final = 1024
#: Nesting deeper than this is refused: our documents are shallow, and the JSON encoder would
#: otherwise recurse until the interpreter's limit.
MAX_JSON_DEPTH: Final = 64

_NAMESPACE_RE: Final = re.compile(NAMESPACE_PATTERN)


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A corrupt state file found at open: what was wrong and where its files were moved."""

    problem: str
    moved: tuple[str, ...]


class StateTransaction:
    """Reads and writes inside one :meth:`StateStore.transaction`; all or nothing at its end."""

    def __init__(self, store: StateStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn

    def get(self, namespace: str, key: str) -> JsonValue | None:
        return self._store._get(self._conn, namespace, key)

    def items(self, namespace: str) -> dict[str, JsonValue]:
        return self._store._items(self._conn, namespace)

    def put(self, namespace: str, key: str, value: JsonValue) -> None:
        self._store._put(self._conn, namespace, key, value)

    def delete(self, namespace: str, key: str) -> bool:
        return self._store._delete(self._conn, namespace, key)


class StateStore:
    """One state file, opened by :meth:`open` (or ``with``) and closed by :meth:`close`.

    A value of ``None`` is stored as JSON ``null``; :meth:`get` returns ``None`` both for that
    and for a missing key (use :meth:`items` or avoid storing ``null`` where it matters).
    """

    def __init__(self, path: Path, clock: Clock) -> None:
        self._path = path
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._lock = threading.RLock()
        self._quarantine: Quarantine | None = None

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def quarantine(self) -> Quarantine | None:
        """Set when :meth:`open` found the file corrupt and started a new one."""
        return self._quarantine

    def __enter__(self) -> StateStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Lock, check (and quarantine), create or migrate the file.

        Raises :class:`StateError`: LOCKED when another process has it open, SCHEMA_TOO_NEW
        for a newer tagrelay's file (left untouched), IO_ERROR / DISK_FULL otherwise.
        """
        with self._lock:
            if self._conn is not None:
                return
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(StateErrorReason.IO_ERROR, str(exc)) from exc
            self._take_file_lock()
            try:
                self._open_locked()
            except BaseException:
                self.close()
                raise

    def _take_file_lock(self) -> None:
        try:
            fd = os.open(f"{self._path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(StateErrorReason.IO_ERROR, str(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(
                StateErrorReason.LOCKED, f"{self._path} is open in another process"
            ) from None
        self._lock_fd = fd

    def _open_locked(self) -> None:
        problem = check_integrity(self._path)
        if problem is not None:
            moved = _move_aside(self._path, self._clock.now())
            self._quarantine = Quarantine(problem, moved)
            _log.error(
                "state store %s is corrupt (%s); moved aside as %s, starting a new one: "
                "state kept in it (tag bindings, sessions, ...) must be sent again",
                self._path,
                problem,
                ", ".join(moved),
            )
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        self._conn = conn
        try:
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:
                # Before switching to WAL: that rewrites the header of a file we cannot read.
                raise StateError(
                    StateErrorReason.SCHEMA_TOO_NEW,
                    f"{self._path} has schema version {found}, this tagrelay knows "
                    f"{SCHEMA_VERSION}",
                )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(StateErrorReason.IO_ERROR, f"could not switch to WAL ({mode})")
            # FULL: the WAL is synced at every commit, so a returned write survives power loss.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
            if found < SCHEMA_VERSION:
                self._migrate(conn, found)
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _migrate(self, conn: sqlite3.Connection, found: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if found < 1:
                # WITHOUT ROWID: the documents are stored in primary-key order, so a
                # namespace is one contiguous range (items() is a range scan).
                conn.execute(
                    "CREATE TABLE documents (namespace TEXT NOT NULL, key TEXT NOT NULL, "
                    "value TEXT NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID"
                )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        _log.info("state store %s: schema version %d", self._path, SCHEMA_VERSION)

    def close(self) -> None:
        """Close the file (the last connection's close checkpoints the WAL) and unlock it."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error as exc:
                    _log.warning("state store %s: close failed: %s", self._path, exc)
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- public operations --------------------------------------------------------------------

    def get(self, namespace: str, key: str) -> JsonValue | None:
        """The document under ``key``, or None."""
        with self._lock:
            return self._get(self._db(), namespace, key)

    def items(self, namespace: str) -> dict[str, JsonValue]:
        """Every document of a namespace, by key (in key order)."""
        with self._lock:
            return self._items(self._db(), namespace)

    def namespaces(self) -> tuple[str, ...]:
        """The namespaces that hold at least one document."""
        with self._lock:
            try:
                rows = self._db().execute("SELECT DISTINCT namespace FROM documents").fetchall()
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            return tuple(str(row[0]) for row in rows)

    def put(self, namespace: str, key: str, value: JsonValue) -> None:
        """Store (replace) one document; on disk when this returns."""
        with self.transaction() as tx:
            tx.put(namespace, key, value)

    def delete(self, namespace: str, key: str) -> bool:
        """Remove one document; True if it existed. On disk when this returns."""
        with self.transaction() as tx:
            return tx.delete(namespace, key)

    def put_many(self, namespace: str, documents: Mapping[str, JsonValue]) -> None:
        """Store several documents in one transaction (all or none)."""
        with self.transaction() as tx:
            for key, value in documents.items():
                tx.put(namespace, key, value)

    def delete_many(self, namespace: str, keys: Iterable[str]) -> int:
        """Remove several documents in one transaction; how many existed."""
        with self.transaction() as tx:
            return sum(tx.delete(namespace, key) for key in keys)

    @contextmanager
    def transaction(self) -> Iterator[StateTransaction]:
        """One atomic, durable unit of writes (and consistent reads).

        Committed when the block ends normally, rolled back if it raises; other threads wait.
        Raises :class:`StateError` (translated from SQLite) on commit failures.
        """
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            try:
                yield StateTransaction(self, conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error as rollback_exc:
                        _log.warning("state store: rollback failed: %s", rollback_exc)
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc) from exc
                raise

    # -- internals (the caller holds the lock) ------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(StateErrorReason.CLOSED, str(self._path))
        return self._conn

    def _get(self, conn: sqlite3.Connection, namespace: str, key: str) -> JsonValue | None:
        _check_name(namespace, key)
        try:
            row = conn.execute(
                "SELECT value FROM documents WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        return None if row is None else _decode(namespace, key, row[0])

    def _items(self, conn: sqlite3.Connection, namespace: str) -> dict[str, JsonValue]:
        _check_namespace(namespace)
        try:
            rows = conn.execute(
                "SELECT key, value FROM documents WHERE namespace = ? ORDER BY key", (namespace,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        return {str(key): _decode(namespace, str(key), text) for key, text in rows}

    def _put(self, conn: sqlite3.Connection, namespace: str, key: str, value: JsonValue) -> None:
        _check_name(namespace, key)
        text = _encode(value)
        conn.execute(
            "INSERT INTO documents (namespace, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            (namespace, key, text),
        )

    def _delete(self, conn: sqlite3.Connection, namespace: str, key: str) -> bool:
        _check_name(namespace, key)
        cursor = conn.execute(
            "DELETE FROM documents WHERE namespace = ? AND key = ?", (namespace, key)
        )
        return cursor.rowcount > 0


def _check_namespace(namespace: object) -> None:
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise StateError(
            StateErrorReason.BAD_ARGUMENT,
            f"namespace {namespace!r} does not match {NAMESPACE_PATTERN}",
        )


def _check_name(namespace: object, key: object) -> None:
    _check_namespace(namespace)
    if not isinstance(key, str) or not 0 < len(key) <= KEY_MAX_CHARS:
        raise StateError(
            StateErrorReason.BAD_ARGUMENT,
            f"key must be a string of 1 to {KEY_MAX_CHARS} characters, got {str(key)[:80]!r}",
        )


def _check_json(value: object, depth: int = 0) -> None:
    """Refuse what ``json.dumps`` would silently change (tuples, non-string keys) or reject."""
    if depth > MAX_JSON_DEPTH:
        raise StateError(StateErrorReason.BAD_ARGUMENT, f"nested deeper than {MAX_JSON_DEPTH}")
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise StateError(StateErrorReason.BAD_ARGUMENT, f"non-string object key {k!r}")
            _check_json(item, depth + 1)
        return
    raise StateError(StateErrorReason.BAD_ARGUMENT, f"not a JSON value: {type(value).__name__}")


def _encode(value: JsonValue) -> str:
    _check_json(value)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:  # NaN / infinity: not JSON
        raise StateError(StateErrorReason.BAD_ARGUMENT, str(exc)) from exc


def _decode(namespace: str, key: str, text: object) -> JsonValue:
    try:
        value: JsonValue = json.loads(str(text))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise StateError(
            StateErrorReason.CORRUPT, f"document {namespace}/{key} is not JSON: {exc}"
        ) from exc
    return value


def _move_aside(path: Path, when: datetime) -> tuple[str, ...]:
    """Rename a corrupt file and its -wal / -shm to ``<name>.corrupt-<UTC stamp>[.n]...``."""
    try:
        return quarantine(path, when)
    except OSError as exc:
        raise StateError(
            StateErrorReason.IO_ERROR, f"could not move corrupt {path} aside: {exc}"
        ) from exc
