"""Native events as GS1 EPCIS 2.0 events (JSON-LD): the EPCIS output profile.

:func:`render` maps one native event to the EPCIS events that state the same fact (none for a
kind with no EPCIS meaning), each with its CBV 2.0 hash ``eventID``; :func:`document` wraps
events in an ``EPCISDocument``. Pure: no I/O, no clock (the document's creation time is passed
in). The mapping, field by field, is in docs/epcis.md.

Items are EPCs only when they are GS1 keys that name one thing (SSCC, SGTIN, GIAI, serialised
GRAI), written as canonical Digital Link URIs. An item named by a tag id (an unbound tag) is no
EPC: it is left out of the EPCIS event and listed in :attr:`Rendering.skipped` with the reason,
so the caller can count it; an event left with no EPC is not emitted at all.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote

from gateway.epcis.hashing import JsonValue, event_hash
from gateway.epcis.vocab import (
    EPCIS_CONTEXT_URI,
    SENSOR_TYPES,
    Action,
    BizStep,
    BizTransactionType,
    Disposition,
    EpcisEventType,
    SensorException,
    SourceDestType,
)
from gateway.errors import GatewayError
from gateway.events import (
    AlertType,
    BindingAction,
    BusinessDocument,
    ConditionExcursion,
    ConditionShock,
    DeliveryAlert,
    DeliveryEvidence,
    Event,
    HandoffItem,
    HandoffReport,
    Party,
    PresenceEnter,
    PresenceExit,
    Quantity,
    RouteDeparture,
    TagBindingChange,
    TelemetryReading,
    TimeSource,
)
from gateway.registry.errors import Gs1Error
from gateway.registry.gs1 import Gs1KeyKind, check_digit, parse_gs1_key

__all__ = [
    "EXTENSION_NAMESPACE",
    "EXTENSION_PREFIX",
    "EpcisError",
    "Rendering",
    "Skip",
    "SkipReason",
    "document",
    "epc_uri",
    "epc_urn",
    "location_uri",
    "party_uri",
    "render",
    "sgln_uri",
]

#: The JSON-LD prefix of tagrelay's extension fields, and the namespace it stands for. Part of
#: every event hash (extension names are hashed as ``{namespace}name``): never change it.
EXTENSION_PREFIX: Final = "tagrelay"
EXTENSION_NAMESPACE: Final = "urn:tagrelay:epcis:"
_NAMESPACES: Final = {EXTENSION_PREFIX: EXTENSION_NAMESPACE}
#: Where tagrelay's own names (gateways, devices, profiles, events) become URIs.
_PRIVATE_URN: Final = "urn:tagrelay:"
#: The business transaction type the CBV uses for an advance shipping notice.
_BTT_ALIASES: Final = {"asn": BizTransactionType.DESADV}
_BTT_WORDS: Final = frozenset(t.value for t in BizTransactionType)
#: Decimal places of a ``geo:`` read point: 6 is about 0.1 m, below any fix's accuracy.
_GEO_DECIMALS: Final = 6
#: What a configured URI may contain: an RFC 3986 scheme, then unreserved, reserved and
#: percent-encoded characters only (no spaces, no brackets outside the host).
_URI: Final = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})+"
)
#: A path that GS1's hash normaliser would read as a Digital Link key (and rewrite): such a
#: URI must be a valid key, or the eventID of another implementation would differ from ours.
_DL_LOOKALIKE: Final = re.compile(
    r"/(?:00|01|253|255|401|402|414|417|8003|8004|8006|8010|8017|8018|gtin|sscc|gln|party|giai"
    r"|grai|gsrn|gsrnp|gdti|gcn|ginc|gsin|itip|cpid)/\d{4}"
)
#: Characters left as they are in the name part of a private URN (RFC 8141 NSS).
_NSS_SAFE: Final = "-._~!$&'()*+,;=:@"


class EpcisError(GatewayError, ValueError):
    """A configured URI (read point, business location, vehicle) that cannot be used; a
    ``ValueError`` too, so that a pydantic validator can raise it as it is."""


class SkipReason(enum.StrEnum):
    """Why part of a native event is not in its EPCIS rendering."""

    #: The kind states nothing EPCIS can carry (a prediction, a status, a position).
    NO_EPCIS_MEANING = "no_epcis_meaning"
    #: The event's time is not trusted yet (``unsynced``): render it once it is corrected.
    UNSYNCED_TIME = "unsynced_time"
    #: An item (or the event's asset) is not a GS1 key naming one thing: no EPC.
    NOT_AN_EPC = "not_an_epc"
    #: A party has no valid GLN: it is left out of the source / destination list.
    PARTY_WITHOUT_GLN = "party_without_gln"
    #: A quantity with no GS1 measurement type (an index without a unit).
    NO_SENSOR_TYPE = "no_sensor_type"


@dataclass(frozen=True, slots=True)
class Skip:
    """One thing left out, and why: ``subject`` is the item, party, quantity or kind."""

    subject: str
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class Rendering:
    """The EPCIS events of one native event (possibly none) and what was left out."""

    events: tuple[dict[str, JsonValue], ...]
    skipped: tuple[Skip, ...] = ()


# -- identifiers -------------------------------------------------------------------------------


def epc_uri(item: str) -> str | None:
    """The canonical Digital Link URI of ``item`` when it is a GS1 key naming one thing."""
    try:
        key = parse_gs1_key(item)
    except Gs1Error:
        return None
    return key.uri if key.is_individual else None


#: Characters the EPC Tag Data Standard escapes in a URN component (and ``%`` itself).
_TDS_ESCAPES: Final = {c: f"%{ord(c):02X}" for c in '"%&/<>?'}
_EPC_PREFIX_DIGITS: Final = range(6, 13)


def _tds(text: str) -> str:
    return "".join(_TDS_ESCAPES.get(c, c) for c in text)


def epc_urn(item: str, company_prefix_digits: int) -> str:
    """The EPC pure-identity URN (GS1 EPC Tag Data Standard) of a GS1 key given as a Digital
    Link URI or URN, for the parties that still need URNs: SSCC, SGTIN, GIAI, GRAI, SGLN.

    A URN splits the key at the end of the GS1 Company Prefix, which the key itself does not
    tell: ``company_prefix_digits`` (6-12) is its length. The check digit is dropped, as the
    standard says (it is recomputed from the rest). Raises :class:`EpcisError`.
    """
    try:
        key = parse_gs1_key(item)
    except Gs1Error as exc:
        raise EpcisError(f"not a GS1 key: {exc}") from exc
    n = company_prefix_digits
    if n not in _EPC_PREFIX_DIGITS:
        raise EpcisError(f"a company prefix has 6 to 12 digits in an EPC URN, not {n}")
    v = key.value
    if key.kind is Gs1KeyKind.SSCC:
        return f"urn:epc:id:sscc:{v[1 : 1 + n]}.{v[0]}{v[1 + n : 17]}"
    if key.kind is Gs1KeyKind.SGTIN and key.qualifier is not None:
        return f"urn:epc:id:sgtin:{v[1 : 1 + n]}.{v[0]}{v[1 + n : 13]}.{_tds(key.qualifier)}"
    if key.kind is Gs1KeyKind.GIAI:
        if len(v) <= n or not v[:n].isdigit():
            raise EpcisError(f"GIAI {v!r} has no asset reference after a {n}-digit prefix")
        return f"urn:epc:id:giai:{v[:n]}.{_tds(v[n:])}"
    if key.kind is Gs1KeyKind.GRAI:
        grai13, serial = v[1:14], v[14:]
        return f"urn:epc:id:grai:{grai13[:n]}.{grai13[n:12]}.{_tds(serial)}"
    if key.kind is Gs1KeyKind.GLN:
        extension = "0" if key.qualifier is None else _tds(key.qualifier)
        return f"urn:epc:id:sgln:{v[:n]}.{v[n:12]}.{extension}"
    raise EpcisError(f"a {key.kind} has no EPC URN (a GTIN without a serial names a product)")


def _valid_gln(gln: str) -> bool:
    return (
        len(gln) == 13 and gln.isascii() and gln.isdigit() and check_digit(gln[:-1]) == int(gln[-1])
    )


def party_uri(party: Party) -> str | None:
    """The party's GLN as a Digital Link URI (AI 417, party GLN), None without a valid one."""
    if party.gln is None or not _valid_gln(party.gln):
        return None
    return f"https://id.gs1.org/417/{party.gln}"


def sgln_uri(gln: str, extension: str | None = None) -> str:
    """A location's GLN (with an optional extension, e.g. the door) as the canonical Digital
    Link URI ``https://id.gs1.org/414/{gln}/254/{extension}``. Raises :class:`EpcisError`."""
    text = f"https://id.gs1.org/414/{quote(gln, safe='')}"
    if extension is not None:
        text += f"/254/{quote(extension, safe='')}"
    try:
        key = parse_gs1_key(text)
    except Gs1Error as exc:
        raise EpcisError(f"not a GLN location: {exc}") from exc
    return key.uri


def location_uri(text: str) -> str:
    """A configured read point, business location or vehicle as the URI to emit: a GS1 key in
    its canonical Digital Link form, any other absolute URI as it is. Raises
    :class:`EpcisError` for text that is not an absolute URI (check configuration with it)."""
    try:
        key = parse_gs1_key(text)
    except Gs1Error:
        key = None
    if key is None:
        if not _URI.fullmatch(text):
            raise EpcisError(f"{text[:80]!r} is not an absolute URI")
        if _DL_LOOKALIKE.search(text):
            raise EpcisError(f"{text[:80]!r} looks like a GS1 Digital Link URI but is not one")
        return text
    if key.kind is Gs1KeyKind.GTIN:
        raise EpcisError(f"{text[:80]!r}: a GTIN names a product, not a place or a vehicle")
    return key.uri


def _urn(kind: str, name: str) -> str:
    return f"{_PRIVATE_URN}{kind}:{quote(name, safe=_NSS_SAFE)}"


def _time(value: datetime) -> str:
    utc = value.astimezone(UTC)
    utc = utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    return utc.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


# -- building events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    read_point: str
    biz_location: str | None


def _read_point(event: Event, configured: str | None) -> str:
    if configured is not None:
        return configured
    if event.position is not None:
        p = event.position
        return f"geo:{p.lat:.{_GEO_DECIMALS}f},{p.lon:.{_GEO_DECIMALS}f}"
    return _urn("gateway", event.gateway_id)


def _finish(event: Event, body: dict[str, JsonValue], where: _Where) -> dict[str, JsonValue]:
    """Add the fields every event has, in the order the standard lists them, and the hash id."""
    when = event.left_at if isinstance(event, DeliveryEvidence) else event.time
    out: dict[str, JsonValue] = {
        "type": body.pop("type"),
        # A parcel leaves the vehicle at its exit decision; every other fact happens at ``time``.
        "eventTime": _time(when),
        # Gateways keep UTC; the local offset of the site is not known here.
        "eventTimeZoneOffset": "+00:00",
    }
    for name in ("parentID", "epcList", "childEPCs", "action", "bizStep", "disposition"):
        if name in body:
            out[name] = body.pop(name)
    out["readPoint"] = {"id": where.read_point}
    if where.biz_location is not None:
        out["bizLocation"] = {"id": where.biz_location}
    out.update(body)
    out[f"{EXTENSION_PREFIX}:nativeEventID"] = _urn("event", event.event_id)
    return {"type": out["type"], "eventID": event_hash(out, _NAMESPACES), **out}


def _object(
    epcs: Sequence[str], step: BizStep, disposition: Disposition | None = None
) -> dict[str, JsonValue]:
    body: dict[str, JsonValue] = {
        "type": EpcisEventType.OBJECT.value,
        "epcList": list(epcs),
        "action": Action.OBSERVE.value,
        "bizStep": step.value,
    }
    if disposition is not None:
        body["disposition"] = disposition.value
    return body


def _epcs(items: Iterable[str], skipped: list[Skip]) -> list[str]:
    out: list[str] = []
    for item in items:
        uri = epc_uri(item)
        if uri is None:
            skipped.append(Skip(item, SkipReason.NOT_AN_EPC))
        elif uri not in out:
            out.append(uri)
    return out


def _biz_transactions(documents: Sequence[BusinessDocument], issuer: Party) -> list[JsonValue]:
    gln = issuer.gln if issuer.gln is not None and _valid_gln(issuer.gln) else None
    out: list[JsonValue] = []
    for doc in documents:
        known = _BTT_ALIASES.get(doc.type) or (
            BizTransactionType(doc.type) if doc.type in _BTT_WORDS else None
        )
        btt = known.value if known is not None else _urn("btt", doc.type)
        ident = (
            f"urn:epcglobal:cbv:bt:{gln}:{quote(doc.id, safe=_NSS_SAFE)}"
            if gln is not None
            else _urn("bt", doc.id)
        )
        entry: dict[str, JsonValue] = {"type": btt, "bizTransaction": ident}
        if entry not in out:
            out.append(entry)
    return out


def _party(party: Party, key: str, skipped: list[Skip]) -> list[JsonValue]:
    uri = party_uri(party)
    if uri is None:
        skipped.append(Skip(party.name or party.gln or "", SkipReason.PARTY_WITHOUT_GLN))
        return []
    return [{"type": SourceDestType.POSSESSING_PARTY.value, key: uri}]


def _sensor_metadata(event: Event, profile: str | None, **times: datetime) -> dict[str, JsonValue]:
    meta: dict[str, JsonValue] = {name: _time(value) for name, value in times.items()}
    meta["deviceID"] = _urn("device", event.source.device)
    if profile is not None:
        meta["bizRules"] = _urn("profile", profile)
    return meta


def _report(quantity: Quantity, **values: float | str | None) -> dict[str, JsonValue]:
    """A ``sensorReport``: non-finite numbers and None are left out (JSON has no NaN)."""
    sensor = SENSOR_TYPES[quantity]
    report: dict[str, JsonValue] = {"type": sensor.type}
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if value is not None:
            report[name] = value
    if sensor.uom is not None:
        report["uom"] = sensor.uom
    return report


def _bodies(event: Event, skipped: list[Skip], vehicle: str | None) -> list[dict[str, JsonValue]]:
    """The EPCIS events of ``event`` without the common fields (see :func:`_finish`)."""
    if isinstance(event, PresenceEnter | PresenceExit):
        epcs = _epcs([event.asset or event.tag], skipped)
        step = BizStep.ARRIVING if isinstance(event, PresenceEnter) else BizStep.DEPARTING
        return [_object(epcs, step)] if epcs else []
    if isinstance(event, HandoffItem):
        epcs = _epcs([event.item], skipped)
        return [_object(epcs, BizStep.ARRIVING)] if epcs else []
    if isinstance(event, HandoffReport):
        return _handoff_report(event, skipped)
    if isinstance(event, DeliveryEvidence) or (
        isinstance(event, DeliveryAlert) and event.alert is AlertType.MISDELIVERY
    ):
        epcs = _epcs([event.item], skipped)
        if not epcs:
            return []
        if vehicle is None:
            return [_object(epcs, BizStep.UNLOADING)]
        return [
            {
                "type": EpcisEventType.AGGREGATION.value,
                "parentID": vehicle,
                "childEPCs": list[JsonValue](epcs),
                "action": Action.DELETE.value,
                "bizStep": BizStep.UNLOADING.value,
            }
        ]
    if isinstance(event, RouteDeparture):
        return _departure(event, skipped, vehicle)
    if isinstance(event, TagBindingChange):
        return _association(event, skipped)
    if isinstance(event, ConditionExcursion):
        return _sensor_event(event, skipped, _excursion_element(event, skipped))
    if isinstance(event, ConditionShock):
        element: dict[str, JsonValue] = {
            "sensorMetadata": _sensor_metadata(event, event.profile),
            "sensorReport": [
                _report(
                    Quantity.SHOCK_G,
                    exception=SensorException.ALARM_CONDITION.value if event.alarm else None,
                    time=_time(event.time),
                    value=event.peak_g,
                )
            ],
        }
        return _sensor_event(event, skipped, element)
    if isinstance(event, TelemetryReading):
        return _sensor_event(event, skipped, _telemetry_element(event, skipped))
    skipped.append(Skip(event.kind, SkipReason.NO_EPCIS_MEANING))
    return []


def _handoff_report(event: HandoffReport, skipped: list[Skip]) -> list[dict[str, JsonValue]]:
    bodies: list[dict[str, JsonValue]] = []
    confirmed = _epcs(event.confirmed, skipped)
    if confirmed:
        body = _object(confirmed, BizStep.ACCEPTING, Disposition.IN_TRANSIT)
        transactions = _biz_transactions(event.documents, event.from_party)
        if transactions:
            body["bizTransactionList"] = transactions
        sources = _party(event.from_party, "source", skipped)
        if sources:
            body["sourceList"] = sources
        destinations = _party(event.to_party, "destination", skipped)
        if destinations:
            body["destinationList"] = destinations
        bodies.append(body)
    unexpected = [e for e in _epcs(event.unexpected, skipped) if e not in confirmed]
    if unexpected:
        bodies.append(_object(unexpected, BizStep.ARRIVING))
    return bodies


def _departure(
    event: RouteDeparture, skipped: list[Skip], vehicle: str | None
) -> list[dict[str, JsonValue]]:
    """The load as it left the depot: with a vehicle, an aggregation onto it (ADD, ``loading``)
    and the vehicle departing; without one, the parcels departing."""
    epcs = _epcs(event.on_board, skipped)
    if vehicle is None:
        return [_object(epcs, BizStep.DEPARTING, Disposition.IN_TRANSIT)] if epcs else []
    bodies: list[dict[str, JsonValue]] = []
    if epcs:
        bodies.append(
            {
                "type": EpcisEventType.AGGREGATION.value,
                "parentID": vehicle,
                "childEPCs": list[JsonValue](epcs),
                "action": Action.ADD.value,
                "bizStep": BizStep.LOADING.value,
                "disposition": Disposition.IN_TRANSIT.value,
            }
        )
    if epc_uri(vehicle) is not None:
        bodies.append(_object([vehicle], BizStep.DEPARTING, Disposition.IN_TRANSIT))
    else:
        skipped.append(Skip(vehicle, SkipReason.NOT_AN_EPC))
    return bodies


def _association(event: TagBindingChange, skipped: list[Skip]) -> list[dict[str, JsonValue]]:
    """A tag taken off its previous asset (DELETE, ``disassembling``), then attached to the new
    one (ADD, ``assembling``). The tag is the child, named by its device URN: the same URI as
    the ``deviceID`` of its sensor reports, so that a consumer can join them."""
    child: list[JsonValue] = [_urn("device", event.tag)]
    steps: list[tuple[str | None, Action, BizStep]] = []
    if event.previous_asset is not None and event.previous_asset != event.asset:
        steps.append((event.previous_asset, Action.DELETE, BizStep.DISASSEMBLING))
    if event.action is BindingAction.BIND:
        steps.append((event.asset, Action.ADD, BizStep.ASSEMBLING))
    bodies: list[dict[str, JsonValue]] = []
    for asset, action, step in steps:
        if asset is None:
            continue
        parent = epc_uri(asset)
        if parent is None:
            skipped.append(Skip(asset, SkipReason.NOT_AN_EPC))
            continue
        bodies.append(
            {
                "type": EpcisEventType.ASSOCIATION.value,
                "parentID": parent,
                "childEPCs": list(child),
                "action": action.value,
                "bizStep": step.value,
            }
        )
    return bodies


def _excursion_element(
    event: ConditionExcursion, skipped: list[Skip]
) -> dict[str, JsonValue] | None:
    if event.limit.quantity not in SENSOR_TYPES:
        skipped.append(Skip(event.limit.quantity.value, SkipReason.NO_SENSOR_TYPE))
        return None
    times = {"startTime": event.start} | ({"endTime": event.end} if event.end else {})
    return {
        "sensorMetadata": _sensor_metadata(event, event.profile, **times),
        "sensorReport": [
            _report(
                event.limit.quantity,
                exception=SensorException.ALARM_CONDITION.value,
                minValue=event.min,
                maxValue=event.max,
                meanValue=event.mean,
            )
        ],
    }


def _telemetry_element(event: TelemetryReading, skipped: list[Skip]) -> dict[str, JsonValue] | None:
    reports: list[JsonValue] = []
    for name, value in event.values:
        if value is None:
            continue
        quantity = Quantity(name)
        if quantity not in SENSOR_TYPES:
            skipped.append(Skip(name, SkipReason.NO_SENSOR_TYPE))
            continue
        reports.append(_report(quantity, value=value))
    if not reports:
        return None
    return {
        "sensorMetadata": _sensor_metadata(event, None, time=event.time),
        "sensorReport": reports,
    }


def _sensor_event(
    event: Event, skipped: list[Skip], element: dict[str, JsonValue] | None
) -> list[dict[str, JsonValue]]:
    if element is None:
        return []
    epcs = _epcs([event.asset or event.source.device], skipped)
    if not epcs:
        return []
    body = _object(epcs, BizStep.SENSOR_REPORTING)
    body["sensorElementList"] = [element]
    return [body]


# -- the public surface ------------------------------------------------------------------------


def render(
    event: Event,
    *,
    read_point: str | None = None,
    biz_location: str | None = None,
    vehicle: str | None = None,
) -> Rendering:
    """The EPCIS 2.0 events stating the fact ``event`` states (docs/epcis.md has the mapping).

    ``read_point`` and ``biz_location`` are the gateway's configured locations (an SGLN from
    :func:`sgln_uri` when the site has a GLN, any absolute URI otherwise); without a read point
    the event's position (``geo:``) or the gateway's private URN is used. ``vehicle`` is the GS1
    key (GIAI, GRAI) of the vehicle the gateway rides in: with it, a parcel leaving the vehicle
    is an AggregationEvent (DELETE) on the vehicle. Raises :class:`EpcisError` only for a
    configured URI that is not one (validate configuration with :func:`location_uri`).
    """
    where_read = location_uri(read_point) if read_point is not None else None
    where = _Where(
        _read_point(event, where_read),
        location_uri(biz_location) if biz_location is not None else None,
    )
    parent = location_uri(vehicle) if vehicle is not None else None
    if event.time_source is TimeSource.UNSYNCED:
        return Rendering((), (Skip(event.kind, SkipReason.UNSYNCED_TIME),))
    skipped: list[Skip] = []
    bodies = _bodies(event, skipped, parent)
    return Rendering(tuple(_finish(event, body, where) for body in bodies), tuple(skipped))


def document(events: Sequence[dict[str, JsonValue]], *, created: datetime) -> dict[str, JsonValue]:
    """An ``EPCISDocument`` holding ``events``; ``created`` is its ``creationDate``."""
    context: list[JsonValue] = [EPCIS_CONTEXT_URI, {EXTENSION_PREFIX: EXTENSION_NAMESPACE}]
    return {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _time(created),
        "epcisBody": {"eventList": list(events)},
    }
