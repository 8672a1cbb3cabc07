"""The tag registry: config bindings, command overrides persisted in a real state file, the
config-edited-since rule, malformed documents, config validation, and a model-based run of
random operations and restarts against a reference."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.registry import (
    TAGS_NAMESPACE,
    BindingSource,
    TagBinding,
    TagBindingList,
    TagRegistry,
)
from gateway.state import StateStore
from tests.gateway.outbox.helpers import FakeClock

TAG_A = "ruuvi:C8:25:2D:8E:F1:04"
TAG_B = "smartlabel:00000000deadbeef"
SSCC_1 = "https://id.gs1.org/00/340123450000000017"
SSCC_2 = "https://id.gs1.org/00/106141412345678908"
GIAI = "https://id.gs1.org/8004/0952123456ABC"


class _Config(BaseModel):
    """Stands for the gateway configuration's root: a ``tags`` field of this type."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tags: TagBindingList = ()


def _store(path: Path) -> StateStore:
    store = StateStore(path, FakeClock())
    store.open()
    return store


def test_toml_tags_tables_are_validated_and_normalised() -> None:
    config = _Config.model_validate(
        tomllib.loads(
            """
            [[tags]]
            tag = "ruuvi:c8:25:2d:8e:f1:04"
            asset = "urn:epc:id:sscc:0614141.1234567890"

            [[tags]]
            tag = "smartlabel:00000000DEADBEEF"
            asset = "HTTPS://example.com/00/340123450000000017"

            [[tags]]
            tag = "ruuvi:C8:25:2D:8E:F1:04"
            asset = "https://id.gs1.org/00/106141412345678908"
            """
        )
    )
    assert config.tags == (
        TagBinding(tag=TAG_A, asset=SSCC_2),
        TagBinding(tag=TAG_B, asset=SSCC_1),
        TagBinding(tag=TAG_A, asset=SSCC_2),
    )
    registry = TagRegistry(config.tags)
    assert registry.asset_of(TAG_A) == SSCC_2
    assert registry.asset_of("ruuvi:00:00:00:00:00:00") is None
    assert registry.source_of(TAG_B) is BindingSource.CONFIG


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ([{"tag": TAG_A, "asset": SSCC_1}, {"tag": TAG_A, "asset": SSCC_2}], "bound twice"),
        ([{"tag": TAG_A, "asset": "https://id.gs1.org/00/340123450000000018"}], "expected 7"),
        ([{"tag": "ruuvi:C8:25", "asset": SSCC_1}], "expected ruuvi:<MAC"),
        ([{"tag": TAG_A, "asset": "https://id.gs1.org/414/9521234543213"}], "party or a location"),
        ([{"tag": TAG_A, "asset": SSCC_1, "zone": "x"}], "Extra inputs"),
        ([{"tag": TAG_A}], "Field required"),
    ],
)
def test_bad_config_bindings_name_the_problem(tags: list[dict[str, str]], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Config.model_validate({"tags": tags})
    assert words in str(info.value)


def test_command_overrides_survive_a_restart(tmp_path: Path) -> None:
    config = (TagBinding(tag=TAG_A, asset=SSCC_1),)
    store = _store(tmp_path / "state.db")
    try:
        tags = TagRegistry.load(store, config)
        rebind = tags.bind(store, TAG_A, SSCC_2, "c1")
        assert (rebind.previous, rebind.asset, rebind.write, rebind.changed) == (
            SSCC_1,
            SSCC_2,
            True,
            True,
        )
        tags.bind(store, TAG_B, GIAI, "c2")
        assert tags.source_of(TAG_A) is BindingSource.COMMAND
    finally:
        store.close()
    store = _store(tmp_path / "state.db")
    try:
        tags = TagRegistry.load(store, config)
        assert dict(tags.bindings()) == {TAG_A: SSCC_2, TAG_B: GIAI}
        assert store.items(TAGS_NAMESPACE) == {
            TAG_A: {"asset": SSCC_2, "config_asset": SSCC_1, "command": "c1"},
            TAG_B: {"asset": GIAI, "config_asset": None, "command": "c2"},
        }
        # Unbinding a config-bound tag keeps a document saying so, so the restart keeps it
        # unbound; unbinding a command-only binding just deletes its document.
        tags.unbind(store, TAG_A, "c3")
        tags.unbind(store, TAG_B, "c4")
        assert store.items(TAGS_NAMESPACE) == {
            TAG_A: {"asset": None, "config_asset": SSCC_1, "command": "c3"}
        }
    finally:
        store.close()
    store = _store(tmp_path / "state.db")
    try:
        tags = TagRegistry.load(store, config)
        assert len(tags) == 0
        assert tags.asset_of(TAG_A) is None
        # Binding back to what the config says needs no document.
        tags.bind(store, TAG_A, SSCC_1, "c5")
        assert store.items(TAGS_NAMESPACE) == {}
        assert tags.source_of(TAG_A) is BindingSource.CONFIG
    finally:
        store.close()


def test_a_config_edited_after_the_command_wins(tmp_path: Path) -> None:
    store = _store(tmp_path / "state.db")
    try:
        tags = TagRegistry.load(store, (TagBinding(tag=TAG_A, asset=SSCC_1),))
        tags.bind(store, TAG_A, SSCC_2, "c1")
        tags.bind(store, TAG_B, SSCC_2, "c2")
    finally:
        store.close()
    store = _store(tmp_path / "state.db")
    try:
        edited = (TagBinding(tag=TAG_A, asset=GIAI), TagBinding(tag=TAG_B, asset=SSCC_1))
        tags = TagRegistry.load(store, edited)
        assert sorted(tags.dropped) == [TAG_A, TAG_B]
        assert dict(tags.bindings()) == {TAG_A: GIAI, TAG_B: SSCC_1}
        assert store.items(TAGS_NAMESPACE) == {}  # the superseded documents are gone
    finally:
        store.close()


def test_same_again_writes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path / "state.db")
    try:
        tags = TagRegistry.load(store)
        first = tags.bind(store, TAG_A, SSCC_1, "c1")
        again = tags.plan_bind(TAG_A, SSCC_1, "c2")
        assert first.write
        assert not again.write
        assert not again.changed
        unknown = tags.plan_unbind(TAG_B, "c3")
        assert (unknown.write, unknown.changed, unknown.previous) == (False, False, None)
    finally:
        store.close()


@pytest.mark.parametrize(
    "document",
    [
        "not an object",
        {"asset": SSCC_1},
        {"asset": SSCC_1, "config_asset": None, "command": "c", "more": 1},
        {"asset": 7, "config_asset": None, "command": "c"},
        {"asset": SSCC_1, "config_asset": None, "command": 7},
        {"asset": "https://id.gs1.org/00/340123450000000018", "config_asset": None, "command": "c"},
        {
            "asset": "https://example.com/00/340123450000000017",
            "config_asset": None,
            "command": "c",
        },
        {"asset": None, "config_asset": None, "command": "c"},
    ],
)
def test_malformed_documents_are_dropped(tmp_path: Path, document: object) -> None:
    store = _store(tmp_path / "state.db")
    try:
        store.put(TAGS_NAMESPACE, TAG_A, document)  # type: ignore[arg-type]
        store.put(
            TAGS_NAMESPACE,
            "RUUVI:c8:25:2d:8e:f1:05",
            {"asset": SSCC_1, "config_asset": None, "command": None},
        )
        store.put(TAGS_NAMESPACE, TAG_B, {"asset": GIAI, "config_asset": None, "command": None})
        tags = TagRegistry.load(store)
        assert sorted(tags.dropped) == sorted([TAG_A, "RUUVI:c8:25:2d:8e:f1:05"])
        assert dict(tags.bindings()) == {TAG_B: GIAI}
        assert list(store.items(TAGS_NAMESPACE)) == [TAG_B]
    finally:
        store.close()


# -- model-based: random operations and restarts against a reference --------------------------

_TAGS = [TAG_A, TAG_B, "eddystone:edd1ebeac04e5defa017:0123456789ab"]
_ASSETS = [SSCC_1, SSCC_2, GIAI]
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("bind"), st.sampled_from(_TAGS), st.sampled_from(_ASSETS)),
        st.tuples(st.just("unbind"), st.sampled_from(_TAGS), st.none()),
        st.tuples(st.just("restart"), st.none(), st.none()),
        st.tuples(st.just("edit"), st.sampled_from(_TAGS), st.sampled_from([*_ASSETS, None])),
    ),
    max_size=25,
)


class _Reference:
    """The rules, written plainly: per tag an override ``(asset or None, config value when
    the command was applied)``; a restart drops overrides whose config value changed."""

    def __init__(self, config: dict[str, str]) -> None:
        self.config = dict(config)
        self.overrides: dict[str, tuple[str | None, str | None]] = {}

    def bind(self, tag: str, asset: str) -> None:
        if asset == self.config.get(tag):
            self.overrides.pop(tag, None)
        else:
            self.overrides[tag] = (asset, self.config.get(tag))

    def unbind(self, tag: str) -> None:
        if self.config.get(tag) is None:
            self.overrides.pop(tag, None)
        else:
            self.overrides[tag] = (None, self.config.get(tag))

    def restart(self) -> None:
        self.overrides = {t: o for t, o in self.overrides.items() if o[1] == self.config.get(t)}

    def bindings(self) -> dict[str, str]:
        result = dict(self.config)
        for tag, (asset, _) in self.overrides.items():
            if asset is None:
                result.pop(tag, None)
            else:
                result[tag] = asset
        return result


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops, initial=st.dictionaries(st.sampled_from(_TAGS), st.sampled_from(_ASSETS)))
def test_random_operations_match_the_rules(
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple[str, str | None, str | None]],
    initial: dict[str, str],
) -> None:
    db = tmp_path_factory.mktemp("reg") / "state.db"
    reference = _Reference(initial)
    store = _store(db)
    try:
        tags = TagRegistry.load(store, _bindings(reference.config))
        for n, (op, tag, asset) in enumerate(ops):
            if op == "bind":
                assert tag is not None
                assert asset is not None
                tags.bind(store, tag, asset, f"c{n}")
                reference.bind(tag, asset)
            elif op == "unbind":
                assert tag is not None
                tags.unbind(store, tag, f"c{n}")
                reference.unbind(tag)
            else:
                if op == "edit":  # the engineer edits the file, then the daemon restarts
                    assert tag is not None
                    if asset is None:
                        reference.config.pop(tag, None)
                    else:
                        reference.config[tag] = asset
                store.close()
                store = _store(db)
                tags = TagRegistry.load(store, _bindings(reference.config))
                reference.restart()
            assert dict(tags.bindings()) == reference.bindings(), (n, op, tag, asset)
            # What is on disk alone rebuilds the same registry.
            rebuilt = TagRegistry(_bindings(reference.config), store.items(TAGS_NAMESPACE))
            assert dict(rebuilt.bindings()) == reference.bindings()
    finally:
        store.close()


def _bindings(config: dict[str, str]) -> tuple[TagBinding, ...]:
    return tuple(TagBinding(tag=t, asset=a) for t, a in sorted(config.items()))
