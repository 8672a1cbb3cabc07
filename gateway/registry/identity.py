"""Tag identity: the one string that names a physical tag, whatever format it speaks.

The normalise stage calls :func:`tag_id` for every decoded advert and :func:`smartlabel_tag_id`
for every SmartLabel frame; presence, telemetry and the registry key everything on the result.
A tag id is ``<scheme>:<key>`` in one canonical spelling (docs/registry.md)::

    ibeacon:<uuid, lower case>:<major>:<minor>
    altbeacon:<id1, lower case>:<id2>:<id3>
    eddystone:<namespace, 20 hex digits>:<instance, 12 hex digits>
    ruuvi:<MAC, upper case, colons>
    smartlabel:<label id, 16 hex digits>

for example ``ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:42``, ``ruuvi:C8:25:2D:8E:F1:04``,
``smartlabel:00000000deadbeef``. Hex digits are lower case except in MACs; decimals have no
leading zeros.

Adverts that carry no identity of their own get no tag id (None): Eddystone-URL (a URL is
content, shared by every beacon of a campaign) and Eddystone-TLM (telemetry of whatever beacon
sends it, which a caller may attribute to that beacon's UID frame by BLE address). A Ruuvi tag
is named by the MAC in its payload (formats 5 and E1); format 3 carries none, so the BLE
address names it; Ruuvi tags use their MAC as a static address, so both give the same id. A
SmartLabel's advert and its serial frames give the same ``smartlabel:`` id.

:func:`tag_id` runs per advert: one dict lookup on the advert's class and one f-string
(about 0.3 µs). Callers that see the same payload bytes again may cache the result by them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from gateway.registry.errors import TagIdError, TagIdErrorReason
from protocols.ble import (
    Advert,
    AltBeacon,
    EddystoneUid,
    IBeacon,
    Ruuvi3,
    Ruuvi5,
    RuuviE1,
    SmartLabelAdv,
)

__all__ = [
    "TAG_ID_MAX_CHARS",
    "TagId",
    "TagScheme",
    "parse_tag_id",
    "smartlabel_tag_id",
    "tag_id",
]

#: The longest canonical tag id is an iBeacon's (61 characters); anything much longer is not
#: a tag id, and refusing it early keeps the regular expressions off megabyte inputs.
TAG_ID_MAX_CHARS: Final = 128

_LABEL_ID_LIMIT: Final = 1 << 64
_U16_LIMIT: Final = 1 << 16


class TagScheme(enum.StrEnum):
    """The part of a tag id before the first colon: which identity the tag uses."""

    IBEACON = "ibeacon"
    ALTBEACON = "altbeacon"
    EDDYSTONE = "eddystone"
    RUUVI = "ruuvi"
    SMARTLABEL = "smartlabel"


@dataclass(frozen=True, slots=True)
class TagId:
    """A parsed, canonical tag id; ``str()`` gives ``text``."""

    scheme: TagScheme
    text: str

    def __str__(self) -> str:
        return self.text


def _ibeacon(advert: IBeacon, address: str) -> str:
    return f"ibeacon:{advert.uuid.lower()}:{advert.major}:{advert.minor}"


def _altbeacon(advert: AltBeacon, address: str) -> str:
    return f"altbeacon:{advert.id1.lower()}:{advert.id2}:{advert.id3}"


def _eddystone(advert: EddystoneUid, address: str) -> str:
    return f"eddystone:{advert.namespace.hex()}:{advert.instance.hex()}"


_MAC_RE: Final = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


def _ruuvi(advert: Ruuvi3 | Ruuvi5 | RuuviE1, address: str) -> str | None:
    mac = advert.mac
    if mac is not None:
        return f"ruuvi:{mac}"
    # The BLE address; on Linux (BlueZ) always a MAC. Anything else (a platform's opaque
    # device handle) names no tag.
    return f"ruuvi:{address.upper()}" if _MAC_RE.fullmatch(address) else None


def _smartlabel(advert: SmartLabelAdv, address: str) -> str:
    return f"smartlabel:{advert.label_id:016x}"


_FORMATTERS: Final[dict[type, Callable[[Any, str], str | None]]] = {
    IBeacon: _ibeacon,
    AltBeacon: _altbeacon,
    EddystoneUid: _eddystone,
    Ruuvi3: _ruuvi,
    Ruuvi5: _ruuvi,
    RuuviE1: _ruuvi,
    SmartLabelAdv: _smartlabel,
}


def tag_id(advert: Advert, address: str) -> str | None:
    """The canonical tag id of a decoded advert heard from BLE ``address``, or None for
    formats that carry no identity (Eddystone-URL, Eddystone-TLM)."""
    formatter = _FORMATTERS.get(type(advert))
    return None if formatter is None else formatter(advert, address)


def smartlabel_tag_id(label_id: int) -> str:
    """``smartlabel:<16 lower-case hex digits>`` for a 64-bit label id (serial frames, adverts).

    Raises :class:`TagIdError` (OUT_OF_RANGE) for a negative or wider id.
    """
    if not 0 <= label_id < _LABEL_ID_LIMIT:
        raise TagIdError(TagIdErrorReason.OUT_OF_RANGE, f"label id {label_id} is not 64-bit")
    return f"smartlabel:{label_id:016x}"


_UUID: Final = r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
_U16: Final = r"(0|[1-9][0-9]{0,4})"
_SYNTAX: Final[dict[TagScheme, tuple[re.Pattern[str], str]]] = {
    TagScheme.IBEACON: (
        re.compile(f"{_UUID}:{_U16}:{_U16}"),
        "ibeacon:<uuid 8-4-4-4-12 hex>:<major 0-65535>:<minor 0-65535>",
    ),
    TagScheme.ALTBEACON: (
        re.compile(f"{_UUID}:{_U16}:{_U16}"),
        "altbeacon:<id1 uuid 8-4-4-4-12 hex>:<id2 0-65535>:<id3 0-65535>",
    ),
    TagScheme.EDDYSTONE: (
        re.compile(r"([0-9a-fA-F]{20}):([0-9a-fA-F]{12})"),
        "eddystone:<namespace, 20 hex digits>:<instance, 12 hex digits>",
    ),
    TagScheme.RUUVI: (re.compile(f"({_MAC_RE.pattern})"), "ruuvi:<MAC AA:BB:CC:DD:EE:FF>"),
    TagScheme.SMARTLABEL: (
        re.compile(r"([0-9a-fA-F]{16})"),
        "smartlabel:<label id, 16 hex digits>",
    ),
}


def parse_tag_id(text: str) -> TagId:
    """Validate a tag id and return it in canonical spelling.

    Hex digits may be given in either case and are normalised (lower case, MACs upper case),
    so that an id typed into a config file matches the one :func:`tag_id` derives. Decimal
    fields with leading zeros are refused (``007`` would be a second spelling of ``7``).
    Raises :class:`TagIdError` with the reason and the expected syntax.
    """
    if not isinstance(text, str):
        raise TagIdError(TagIdErrorReason.BAD_SYNTAX, f"not a string: {type(text).__name__}")
    if len(text) > TAG_ID_MAX_CHARS:
        raise TagIdError(
            TagIdErrorReason.BAD_SYNTAX, f"{len(text)} characters, at most {TAG_ID_MAX_CHARS}"
        )
    prefix, colon, rest = text.partition(":")
    try:
        scheme = TagScheme(prefix.lower())
    except ValueError:
        known = ", ".join(s.value for s in TagScheme)
        raise TagIdError(
            TagIdErrorReason.UNKNOWN_SCHEME,
            f"{text[:40]!r} does not start with one of {known} and a colon",
        ) from None
    pattern, syntax = _SYNTAX[scheme]
    match = pattern.fullmatch(rest) if colon else None
    if match is None:
        raise TagIdError(TagIdErrorReason.BAD_SYNTAX, f"{text!r}: expected {syntax}")
    groups = match.groups()
    if scheme in (TagScheme.IBEACON, TagScheme.ALTBEACON):
        uuid, major, minor = groups
        if int(major) >= _U16_LIMIT or int(minor) >= _U16_LIMIT:
            raise TagIdError(TagIdErrorReason.OUT_OF_RANGE, f"{text!r}: expected {syntax}")
        return TagId(scheme, f"{scheme.value}:{uuid.lower()}:{int(major)}:{int(minor)}")
    if scheme is TagScheme.EDDYSTONE:
        return TagId(scheme, f"eddystone:{groups[0].lower()}:{groups[1].lower()}")
    if scheme is TagScheme.RUUVI:
        return TagId(scheme, f"ruuvi:{groups[0].upper()}")
    return TagId(scheme, f"smartlabel:{groups[0].lower()}")
