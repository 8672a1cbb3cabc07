"""The tag registry: which asset each tag is fixed to, from the config and from commands.

The normalise stage asks :meth:`TagRegistry.asset_of` for every observation (one dict lookup);
an unbound tag is tracked under its tag id alone. Bindings come from two places:

- the configuration's ``[[tags]]`` (what the site engineer installed), and
- the commands ``tags.bind`` / ``tags.unbind`` (what the platform says since), persisted in the
  state store under namespace ``tags``, one document per tag that a command changed::

      {"asset": "<uri>" | null, "config_asset": "<uri>" | null, "command": "<command id>"}

A command always wins over the configuration, also across restarts: binding a tag the config
binds elsewhere rebinds it, unbinding it unbinds it (the document keeps ``asset: null``). The
document records what the configuration said when the command was applied (``config_asset``);
when the configuration later says something else for that tag, the engineer edited the file
after the command, so the file wins and the document is dropped at start. A command that
makes a tag agree with its configuration simply deletes the document.

Changes are planned (:meth:`TagRegistry.plan_bind`), written to the store, and only then
applied in memory (:meth:`TagRegistry.apply`): what the pipeline sees is always on disk.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from pydantic import JsonValue

from gateway.registry.config import TagBinding
from gateway.registry.errors import Gs1Error, TagIdError
from gateway.registry.gs1 import canonical_asset_uri
from gateway.registry.identity import parse_tag_id
from gateway.state import StateStore, StateTransaction

__all__ = [
    "TAGS_NAMESPACE",
    "BindingSource",
    "TagChange",
    "TagRegistry",
    "persist",
    "write_change",
]

_log = logging.getLogger(__name__)

#: The state store namespace of the command-made bindings.
TAGS_NAMESPACE: Final = "tags"


class BindingSource(enum.StrEnum):
    """Where the binding in force for a tag came from."""

    CONFIG = "config"
    COMMAND = "command"


@dataclass(frozen=True, slots=True)
class _Override:
    asset: str | None
    config_asset: str | None
    command: str | None

    def document(self) -> dict[str, JsonValue]:
        return {"asset": self.asset, "config_asset": self.config_asset, "command": self.command}


@dataclass(frozen=True, slots=True)
class TagChange:
    """What a bind or unbind will do: the binding before and after, and the store write.

    ``write`` says whether the store must change; then ``document`` is what to put under
    ``tags/<tag>`` (None: delete it).
    """

    tag: str
    previous: str | None
    asset: str | None
    write: bool
    document: dict[str, JsonValue] | None

    @property
    def changed(self) -> bool:
        return self.previous != self.asset


class TagRegistry:
    """Tag id -> asset URI, in memory; see the module docstring for the rules."""

    def __init__(
        self,
        config: Iterable[TagBinding] = (),
        stored: Mapping[str, JsonValue] | None = None,
    ) -> None:
        """Merge the configuration with the stored command documents (``store.items("tags")``).

        Documents that are malformed, or that the configuration has superseded, are not used;
        their keys are in :attr:`dropped` for the caller to delete from the store.
        """
        self._config: dict[str, str] = {b.tag: b.asset for b in config}
        self._overrides: dict[str, _Override] = {}
        dropped: list[str] = []
        for key, document in (stored or {}).items():
            override = _parse_document(key, document)
            if override is None:
                _log.warning("tag registry: ignoring a malformed stored binding for %r", key)
                dropped.append(key)
            elif override.config_asset != self._config.get(key):
                _log.info(
                    "tag registry: the configuration now binds %s to %s; it replaces the "
                    "binding command %s made when the configuration said %s",
                    key,
                    self._config.get(key),
                    override.command,
                    override.config_asset,
                )
                dropped.append(key)
            else:
                self._overrides[key] = override
        self.dropped: tuple[str, ...] = tuple(dropped)
        self._assets: dict[str, str] = dict(self._config)
        for key, override in self._overrides.items():
            if override.asset is None:
                self._assets.pop(key, None)
            else:
                self._assets[key] = override.asset

    @classmethod
    def load(cls, store: StateStore, config: Iterable[TagBinding] = ()) -> TagRegistry:
        """Read the stored bindings, merge them with ``config``, and delete the dropped
        documents (sync: run it in a thread from asyncio). Raises ``StateError``."""
        registry = cls(config, store.items(TAGS_NAMESPACE))
        if registry.dropped:
            store.delete_many(TAGS_NAMESPACE, registry.dropped)
        return registry

    # -- the hot path -------------------------------------------------------------------------

    def asset_of(self, tag: str) -> str | None:
        """The asset URI the tag is bound to, or None."""
        return self._assets.get(tag)

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._assets)

    def bindings(self) -> Mapping[str, str]:
        """Every binding in force (a read-only view; it follows later changes)."""
        return MappingProxyType(self._assets)

    def source_of(self, tag: str) -> BindingSource | None:
        """Whether the binding in force came from the configuration or a command."""
        if tag not in self._assets:
            return None
        return BindingSource.COMMAND if tag in self._overrides else BindingSource.CONFIG

    def documents(self) -> dict[str, dict[str, JsonValue]]:
        """The command documents as they should be in the store (for checks and the CLI)."""
        return {key: override.document() for key, override in self._overrides.items()}

    # -- changing -----------------------------------------------------------------------------

    def plan_bind(self, tag: str, asset: str, command_id: str | None = None) -> TagChange:
        """Plan binding ``tag`` (canonical tag id) to ``asset`` (canonical URI)."""
        config_asset = self._config.get(tag)
        override = None if asset == config_asset else _Override(asset, config_asset, command_id)
        return self._plan(tag, asset, override)

    def plan_unbind(self, tag: str, command_id: str | None = None) -> TagChange:
        """Plan unbinding ``tag``; a tag the configuration binds keeps a document saying so."""
        config_asset = self._config.get(tag)
        override = None if config_asset is None else _Override(None, config_asset, command_id)
        return self._plan(tag, None, override)

    def _plan(self, tag: str, asset: str | None, override: _Override | None) -> TagChange:
        current = self._overrides.get(tag)
        # Only the binding matters for "same again": a repeat under a new command id is not
        # worth a write to flash.
        same = (current is None and override is None) or (
            current is not None
            and override is not None
            and (current.asset, current.config_asset) == (override.asset, override.config_asset)
        )
        return TagChange(
            tag=tag,
            previous=self._assets.get(tag),
            asset=asset,
            write=not same,
            document=None if override is None else override.document(),
        )

    def apply(self, change: TagChange) -> None:
        """Make a planned change visible (after it was written to the store, if ``write``)."""
        if change.write:
            if change.document is None:
                self._overrides.pop(change.tag, None)
            else:
                override = _parse_document(change.tag, change.document)
                if override is None:  # cannot happen for a planned change
                    raise ValueError(f"not a binding document: {change.document!r}")
                self._overrides[change.tag] = override
        if change.asset is None:
            self._assets.pop(change.tag, None)
        else:
            self._assets[change.tag] = change.asset

    def bind(
        self, store: StateStore, tag: str, asset: str, command_id: str | None = None
    ) -> TagChange:
        """Plan, persist and apply a binding in one synchronous call (not from the event
        loop: it writes to disk)."""
        change = self.plan_bind(tag, asset, command_id)
        persist(store, change)
        self.apply(change)
        return change

    def unbind(self, store: StateStore, tag: str, command_id: str | None = None) -> TagChange:
        """Plan, persist and apply an unbinding in one synchronous call."""
        change = self.plan_unbind(tag, command_id)
        persist(store, change)
        self.apply(change)
        return change


def persist(store: StateStore, change: TagChange) -> None:
    """Write a planned change to the store (nothing when ``change.write`` is false)."""
    if change.write:
        with store.transaction() as tx:
            write_change(tx, change)


def write_change(tx: StateTransaction, change: TagChange) -> None:
    """Write a planned change inside a caller's transaction (with other writes)."""
    if not change.write:
        return
    if change.document is None:
        tx.delete(TAGS_NAMESPACE, change.tag)
    else:
        tx.put(TAGS_NAMESPACE, change.tag, change.document)


def _parse_document(key: str, document: JsonValue) -> _Override | None:
    """A stored document as an override, or None when it is not one (checked like input:
    the file may have been edited, or written by a version with other rules)."""
    if not isinstance(document, dict) or set(document) != {"asset", "config_asset", "command"}:
        return None
    asset, config_asset, command = document["asset"], document["config_asset"], document["command"]
    if not (asset is None or isinstance(asset, str)):
        return None
    if not (config_asset is None or isinstance(config_asset, str)):
        return None
    if not (command is None or isinstance(command, str)):
        return None
    if asset is None and config_asset is None:
        return None  # "unbound, and the config has nothing": no document should say that
    try:
        if parse_tag_id(key).text != key:
            return None
        for uri in (asset, config_asset):
            if uri is not None and canonical_asset_uri(uri) != uri:
                return None
    except (TagIdError, Gs1Error):
        return None
    return _Override(asset, config_asset, command)
