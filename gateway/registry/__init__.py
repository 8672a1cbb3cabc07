"""Tag identity and the tag registry: which tag is which, and which asset it is fixed to.

``tag_id`` names a tag from a decoded advert, ``smartlabel_tag_id`` from a SmartLabel frame;
``TagRegistry.asset_of`` gives the asset bound to it (a GS1 Digital Link URI, verified by
``gs1``), from the config's ``[[tags]]`` and the ``tags.bind`` / ``tags.unbind`` commands,
persisted in the state store. See docs/registry.md.
"""

from gateway.registry.commands import (
    TAG_COMMANDS_KEPT,
    TAG_COMMANDS_NAMESPACE,
    TagBindCommand,
    TagUnbindCommand,
    register_tag_commands,
)
from gateway.registry.config import AssetUri, TagBinding, TagBindingList, TagIdText
from gateway.registry.errors import (
    Gs1Error,
    Gs1ErrorReason,
    RegistryError,
    TagIdError,
    TagIdErrorReason,
)
from gateway.registry.gs1 import (
    ASSET_KINDS,
    CANONICAL_DOMAIN,
    Gs1Key,
    Gs1KeyKind,
    canonical_asset_uri,
    check_digit,
    parse_gs1_key,
)
from gateway.registry.identity import (
    TAG_ID_MAX_CHARS,
    TagId,
    TagScheme,
    parse_tag_id,
    smartlabel_tag_id,
    tag_id,
)
from gateway.registry.registry import (
    TAGS_NAMESPACE,
    BindingSource,
    TagChange,
    TagRegistry,
    persist,
    write_change,
)

__all__ = [
    "ASSET_KINDS",
    "CANONICAL_DOMAIN",
    "TAGS_NAMESPACE",
    "TAG_COMMANDS_KEPT",
    "TAG_COMMANDS_NAMESPACE",
    "TAG_ID_MAX_CHARS",
    "AssetUri",
    "BindingSource",
    "Gs1Error",
    "Gs1ErrorReason",
    "Gs1Key",
    "Gs1KeyKind",
    "RegistryError",
    "TagBindCommand",
    "TagBinding",
    "TagBindingList",
    "TagChange",
    "TagId",
    "TagIdError",
    "TagIdErrorReason",
    "TagIdText",
    "TagRegistry",
    "TagScheme",
    "TagUnbindCommand",
    "canonical_asset_uri",
    "check_digit",
    "parse_gs1_key",
    "parse_tag_id",
    "persist",
    "register_tag_commands",
    "smartlabel_tag_id",
    "tag_id",
    "write_change",
]
