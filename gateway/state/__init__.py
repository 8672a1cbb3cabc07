"""Durable domain state: what the gateway was told or decided and a restart must not forget
(tag bindings, handoff sessions, routes, profiles, open excursions), as namespaced JSON
documents in one small SQLite file under the state directory. See docs/registry.md."""

from gateway.state.errors import StateError, StateErrorReason
from gateway.state.store import (
    KEY_MAX_CHARS,
    NAMESPACE_PATTERN,
    SCHEMA_VERSION,
    STATE_FILE_NAME,
    Quarantine,
    StateStore,
    StateTransaction,
    check_integrity,
)

__all__ = [
    "KEY_MAX_CHARS",
    "NAMESPACE_PATTERN",
    "SCHEMA_VERSION",
    "STATE_FILE_NAME",
    "Quarantine",
    "StateError",
    "StateErrorReason",
    "StateStore",
    "StateTransaction",
    "check_integrity",
]
