"""Dispatch of BLE advertisement records to the format decoders.

Manufacturer data is matched on (company id, prefix), with AltBeacon's beacon code accepted
under any company id; service data is matched on its 16-bit service UUID. The tables below are
the whole registry: adding a format is one row.
"""

from __future__ import annotations

import re
import uuid as uuid_module
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias, TypeVar

from protocols.ble.altbeacon import ALTBEACON_PREFIX, AltBeacon, decode_altbeacon
from protocols.ble.eddystone import (
    EDDYSTONE_UUID16,
    EddystoneTlm,
    EddystoneUid,
    EddystoneUrl,
    decode_eddystone,
)
from protocols.ble.errors import SKIPPABLE_REASONS, AdvertError, AdvertErrorReason
from protocols.ble.ibeacon import APPLE_COMPANY_ID, IBEACON_PREFIX, IBeacon, decode_ibeacon
from protocols.ble.ruuvi import RUUVI_COMPANY_ID, Ruuvi3, Ruuvi5, RuuviE1, decode_ruuvi
from protocols.ble.smartlabel_adv import (
    SMARTLABEL_ADV_MAGIC,
    SMARTLABEL_COMPANY_ID,
    SmartLabelAdv,
    decode_smartlabel_adv,
)

__all__ = [
    "Advert",
    "decode_adv_payload",
    "decode_advertisement",
    "decode_manufacturer",
    "decode_service_data",
    "service_uuid16",
]

Advert: TypeAlias = (
    IBeacon
    | AltBeacon
    | EddystoneUid
    | EddystoneUrl
    | EddystoneTlm
    | Ruuvi3
    | Ruuvi5
    | RuuviE1
    | SmartLabelAdv
)

_K = TypeVar("_K", int, str)
_ManufacturerDecoder: TypeAlias = Callable[[int, bytes], Advert]
_ServiceDecoder: TypeAlias = Callable[[bytes], Advert]

#: company id -> (prefix, decoder) rows tried in order.
_MANUFACTURER: Final[Mapping[int, tuple[tuple[bytes, _ManufacturerDecoder], ...]]] = {
    APPLE_COMPANY_ID: ((IBEACON_PREFIX, decode_ibeacon),),
    RUUVI_COMPANY_ID: ((b"", decode_ruuvi),),
    SMARTLABEL_COMPANY_ID: ((SMARTLABEL_ADV_MAGIC, decode_smartlabel_adv),),
}
#: Rows tried for every company id after its own rows: AltBeacon belongs to no one company.
_ANY_MANUFACTURER: Final[tuple[tuple[bytes, _ManufacturerDecoder], ...]] = (
    (ALTBEACON_PREFIX, decode_altbeacon),
)
_SERVICE: Final[Mapping[int, _ServiceDecoder]] = {EDDYSTONE_UUID16: decode_eddystone}

_BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"
_UUID16_RE: Final = re.compile(r"(?:0x)?([0-9a-f]{4})")
_UUID128_RE: Final = re.compile(r"0000([0-9a-f]{4})" + re.escape(_BASE_UUID_SUFFIX))
_FULL_UUID_RE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# AD structure types (Bluetooth Assigned Numbers, "Common Data Types").
_AD_UUID16_INCOMPLETE: Final = 0x02
_AD_UUID16_COMPLETE: Final = 0x03
#: Service data AD types and the size of the (little-endian) UUID that starts their value.
_SERVICE_DATA_UUID_BYTES: Final = {0x16: 2, 0x20: 4, 0x21: 16}
_AD_MANUFACTURER: Final = 0xFF


def decode_manufacturer(company_id: int, data: bytes) -> Advert:
    """Decode manufacturer-specific data; ``data`` is what follows the company id.

    Raises :class:`AdvertError`; UNKNOWN_FORMAT when no registered format claims the record.
    """
    for prefix, decoder in _MANUFACTURER.get(company_id, ()):
        if data.startswith(prefix):
            return decoder(company_id, data)
    for prefix, decoder in _ANY_MANUFACTURER:
        if data.startswith(prefix):
            return decoder(company_id, data)
    raise AdvertError(
        AdvertErrorReason.UNKNOWN_FORMAT,
        f"company id 0x{company_id:04x} with data {data[:4].hex()}...",
    )


def service_uuid16(uuid: str) -> int | None:
    """The 16-bit form of a service UUID string, or None for a 128-bit UUID outside the base.

    Accepts bleak's full lowercase form ("0000feaa-0000-1000-8000-00805f9b34fb") and short
    forms ("feaa", "0xFEAA"). Raises :class:`AdvertError` (BAD_VALUE) for anything else.
    """
    text = uuid.strip().lower()
    match = _UUID128_RE.fullmatch(text) or _UUID16_RE.fullmatch(text)
    if match:
        return int(match.group(1), 16)
    if _FULL_UUID_RE.fullmatch(text):
        return None
    raise AdvertError(AdvertErrorReason.BAD_VALUE, f"not a service UUID: {uuid!r}")


def decode_service_data(uuid: str, data: bytes) -> Advert:
    """Decode service data for ``uuid`` (bleak's 128-bit string or a 16-bit short form)."""
    uuid16 = service_uuid16(uuid)
    decoder = None if uuid16 is None else _SERVICE.get(uuid16)
    if decoder is None:
        raise AdvertError(AdvertErrorReason.UNKNOWN_FORMAT, f"service UUID {uuid}")
    return decoder(data)


def decode_advertisement(
    manufacturer_data: Mapping[int, bytes], service_data: Mapping[str, bytes]
) -> list[Advert]:
    """Every recognised advert in one scan result, as a bleak callback sees it.

    Records of formats we do not decode are skipped silently; a malformed record of a
    recognised format raises :class:`AdvertError`.
    """
    adverts: list[Advert] = []
    for company_id, data in manufacturer_data.items():
        _collect(adverts, decode_manufacturer, company_id, data)
    for uuid, data in service_data.items():
        _collect(adverts, decode_service_data, uuid, data)
    return adverts


def decode_adv_payload(payload: bytes) -> list[Advert]:
    """Every recognised advert in a raw advertising payload (AD structures, as btmon shows).

    A zero length byte, or a structure that runs past the end, ends the significant part (the
    rest is padding). Service data for a
    16-bit UUID is only decoded when the payload either lists no 16-bit UUIDs or lists that one:
    Eddystone requires the list, and a mismatch means the service data is not what it seems.
    """
    manufacturer: dict[int, bytes] = {}
    service: list[tuple[str, bytes]] = []
    listed: set[int] | None = None
    offset = 0
    while offset < len(payload):
        length = payload[offset]
        if length == 0:
            break
        end = offset + 1 + length
        if end > len(payload):
            # A structure running past the end is trailing junk, not a record: controllers and
            # capture tools leave such bytes after the significant part.
            break
        ad_type = payload[offset + 1]
        value = payload[offset + 2 : end]
        if ad_type == _AD_MANUFACTURER:
            if len(value) < 2:
                raise AdvertError(AdvertErrorReason.TOO_SHORT, "manufacturer data without id")
            manufacturer[int.from_bytes(value[:2], "little")] = value[2:]
        elif ad_type in _SERVICE_DATA_UUID_BYTES:
            size = _SERVICE_DATA_UUID_BYTES[ad_type]
            if len(value) < size:
                raise AdvertError(AdvertErrorReason.TOO_SHORT, "service data without UUID")
            service.append((_uuid_string(value[:size]), value[size:]))
        elif ad_type in (_AD_UUID16_COMPLETE, _AD_UUID16_INCOMPLETE):
            if len(value) % 2:
                raise AdvertError(AdvertErrorReason.BAD_LENGTH, "odd 16-bit UUID list")
            listed = (listed or set()) | {
                int.from_bytes(value[i : i + 2], "little") for i in range(0, len(value), 2)
            }
        offset = end
    adverts: list[Advert] = []
    for company_id, data in manufacturer.items():
        _collect(adverts, decode_manufacturer, company_id, data)
    for uuid, data in service:
        uuid16 = service_uuid16(uuid)
        if listed is None or uuid16 is None or uuid16 in listed:
            _collect(adverts, decode_service_data, uuid, data)
    return adverts


def _uuid_string(little_endian: bytes) -> str:
    """The 128-bit string form (as bleak reports it) of a 16-, 32- or 128-bit UUID on air."""
    if len(little_endian) == 16:
        return str(uuid_module.UUID(bytes=little_endian[::-1]))
    return f"{int.from_bytes(little_endian, 'little'):08x}{_BASE_UUID_SUFFIX}"


def _collect(
    adverts: list[Advert], decoder: Callable[[_K, bytes], Advert], key: _K, data: bytes
) -> None:
    try:
        adverts.append(decoder(key, data))
    except AdvertError as exc:
        if exc.reason not in SKIPPABLE_REASONS:
            raise
