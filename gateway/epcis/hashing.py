"""The CBV 2.0 event hash: the ``eventID`` of an EPCIS event, derived from its content.

CBV 2.0 (section 8.9, "Event hash") defines an id that anyone can recompute from the event
itself: a pre-hash string of ``name=value`` pairs in a fixed property order, hashed with
SHA-256 and written ``ni:///sha-256;<hex>?ver=CBV2.0``. The same fact rendered again (after a
restart, or re-sent) has the same content and so the same id.

This is a port of the rule as GS1's reference implementation (the ``epcis-event-hash-generator``
package) computes it, for the shapes :mod:`gateway.epcis.render` emits; the tests compare the
two on every emitted event. The reference is not used at run time: it expands every document
with a JSON-LD processor (slow, and it fetches any context it does not ship over the network),
keeps module-global state, and drops an event it cannot hash with a log line instead of an
error. What the port reproduces, and the reference does the same way:

- ``eventTime`` and other times in UTC with milliseconds and ``Z``;
- CBV bare words expanded to their web vocabulary URIs (``bizStep``, ``disposition``, business
  transaction and source / destination types to ``https://ref.gs1.org/cbv/...``, sensor types
  and exceptions to ``https://gs1.org/voc/...``);
- numbers written without a trailing ``.0``; lists of EPCs and sensor reports sorted;
- business transactions, sources and destinations (which the reference does not find in its
  property order) and extension fields after the ordered part, sorted, extension names as
  ``{namespace}name``.

GS1 identifiers are hashed as they are written: the renderer only emits canonical Digital Link
URIs (``https://id.gs1.org/...``), which the reference's normaliser leaves unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from pydantic import JsonValue

from gateway.epcis.vocab import (
    CBV_BIZ_STEP_URI,
    CBV_BTT_URI,
    CBV_DISPOSITION_URI,
    CBV_SDT_URI,
    GS1_VOC_URI,
)

__all__ = ["HASH_VERSION", "JsonValue", "event_hash", "pre_hash"]

#: The suffix CBV 2.0 puts on a hash id: which canonicalisation rules it was made with.
HASH_VERSION: Final = "CBV2.0"


#: Fields that never enter the hash (CBV 2.0: the id itself, the record time, declarations).
_NOT_HASHED: Final = frozenset({"eventID", "recordTime", "type", "errorDeclaration", "@context"})

_SENSOR_METADATA_ORDER: Final = (
    "time",
    "startTime",
    "endTime",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
)
_SENSOR_REPORT_ORDER: Final = (
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "time",
    "microorganism",
    "chemicalSubstance",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
    "coordinateReferenceSystem",
)
#: Bare CBV / GS1 vocabulary words and the URI prefix they expand to.
_VOCAB_PREFIX: Final = {
    "bizStep": CBV_BIZ_STEP_URI,
    "disposition": CBV_DISPOSITION_URI,
}


def _time(text: str) -> str:
    value = datetime.fromisoformat(text).astimezone(UTC)
    return value.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def _number(value: float | int) -> str:
    # The reference writes str(value), reads it back as a float and drops an integral ".0".
    number = float(str(value))
    return str(int(number)) if number.is_integer() else str(number)


def _scalar(value: JsonValue) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        try:
            return _number(float(value.strip()))
        except (ValueError, OverflowError):
            return value.strip()
    raise TypeError(f"not a scalar: {type(value).__name__}")


def _vocab(prefix: str, word: str) -> str:
    # A bare word is a CBV term; a URI is already one (or a private vocabulary).
    return word if ":" in word else prefix + word


def _as_str(value: JsonValue) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _as_map(value: JsonValue) -> Mapping[str, JsonValue]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _as_list(value: JsonValue) -> Sequence[JsonValue]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _sensor_element(element: Mapping[str, JsonValue]) -> str:
    text = "sensorElement"
    metadata = element.get("sensorMetadata")
    if metadata is not None:
        meta = _as_map(metadata)
        parts = ""
        for name in _SENSOR_METADATA_ORDER:
            if name in meta:
                value = meta[name]
                # The reference reads every field whose name contains "time" as a time.
                is_time = "time" in name.lower()
                parts += f"{name}={_time(_as_str(value)) if is_time else _scalar(value)}"
        if parts:
            text += "sensorMetadata" + parts
    reports: list[str] = []
    for raw in _as_list(element.get("sensorReport", [])):
        report = _as_map(raw)
        parts = ""
        for name in _SENSOR_REPORT_ORDER:
            if name not in report:
                continue
            value = report[name]
            if name in ("type", "exception"):
                rendered = _vocab(GS1_VOC_URI, _as_str(value))
            elif name == "time":
                rendered = _time(_as_str(value))
            else:
                rendered = _scalar(value)
            parts += f"{name}={rendered}"
        if parts:
            reports.append("sensorReport" + parts)
    return text + "".join(sorted(reports))


def _typed_list(name: str, key: str, prefix: str, items: Sequence[JsonValue]) -> str:
    entries = []
    for raw in items:
        item = _as_map(raw)
        entries.append(
            f"type={_vocab(prefix, _as_str(item['type']))}{key}={_scalar(item[key])}"
            if "type" in item
            else f"{key}={_scalar(item[key])}"
        )
    return name + "".join(sorted(entries))


def pre_hash(event: Mapping[str, JsonValue], namespaces: Mapping[str, str]) -> str:
    """The CBV 2.0 pre-hash string of ``event`` (one EPCIS event as JSON).

    ``namespaces`` maps the prefixes of extension fields (``tagrelay`` in ``tagrelay:x``) to
    their namespace IRIs, as the document's ``@context`` declares them.
    """
    ordered = ""
    if "eventTime" in event:
        ordered += f"eventTime={_time(_as_str(event['eventTime']))}"
    if "eventTimeZoneOffset" in event:
        ordered += f"eventTimeZoneOffset={_as_str(event['eventTimeZoneOffset'])}"
    if "parentID" in event:
        ordered += f"parentID={_scalar(event['parentID'])}"
    for name in ("epcList", "childEPCs"):
        epcs = sorted(f"epc={_scalar(e)}" for e in _as_list(event.get(name, [])))
        if epcs:
            ordered += name + "".join(epcs)
    if "action" in event:
        ordered += f"action={_as_str(event['action'])}"
    for name, prefix in _VOCAB_PREFIX.items():
        if name in event:
            ordered += f"{name}={_vocab(prefix, _as_str(event[name]))}"
    for name in ("readPoint", "bizLocation"):
        if name in event:
            ordered += f"{name}id={_scalar(_as_map(event[name])['id'])}"
    elements = sorted(
        _sensor_element(_as_map(e)) for e in _as_list(event.get("sensorElementList", []))
    )
    if elements:
        ordered += "sensorElementList" + "".join(elements)

    rest: list[str] = []
    if event.get("bizTransactionList"):
        rest.append(
            _typed_list(
                "bizTransactionList",
                "bizTransaction",
                CBV_BTT_URI,
                _as_list(event["bizTransactionList"]),
            )
        )
    for name, key in (("sourceList", "source"), ("destinationList", "destination")):
        if event.get(name):
            rest.append(_typed_list(name, key, CBV_SDT_URI, _as_list(event[name])))
    for name, value in event.items():
        prefix, colon, local = name.partition(":")
        if not colon or name in _NOT_HASHED:
            continue
        if prefix not in namespaces or isinstance(value, dict | list):
            raise ValueError(f"extension field {name!r}: unknown prefix or not a scalar")
        rest.append(f"{{{namespaces[prefix]}}}{local}={_scalar(value)}")
    return f"eventType={_as_str(event['type'])}{ordered}{''.join(sorted(rest))}"


def event_hash(event: Mapping[str, JsonValue], namespaces: Mapping[str, str]) -> str:
    """The CBV 2.0 event hash id of ``event``: ``ni:///sha-256;<hex>?ver=CBV2.0``."""
    digest = hashlib.sha256(pre_hash(event, namespaces).encode()).hexdigest()
    return f"ni:///sha-256;{digest}?ver={HASH_VERSION}"
