"""BLE advertisement decoders: what parcel and pallet tags broadcast, as typed adverts.

The BLE driver hands this package the manufacturer data and service data of each scan result
(as bleak reports them); it returns frozen advert dataclasses, each with a ``format`` name that
is also its JSON ``format``. Supported: iBeacon, AltBeacon, Eddystone UID / URL / TLM, RuuviTag
data formats 3, 5 and E1 (docs/ble-adverts.md), and our own SmartLabel advert (docs/protocol.md,
section 11).
"""

from protocols.ble.altbeacon import AltBeacon
from protocols.ble.eddystone import EddystoneTlm, EddystoneUid, EddystoneUrl
from protocols.ble.errors import SKIPPABLE_REASONS, AdvertError, AdvertErrorReason
from protocols.ble.ibeacon import IBeacon
from protocols.ble.registry import (
    Advert,
    decode_adv_payload,
    decode_advertisement,
    decode_manufacturer,
    decode_service_data,
    service_uuid16,
)
from protocols.ble.ruuvi import Ruuvi3, Ruuvi5, RuuviE1
from protocols.ble.smartlabel_adv import (
    SMARTLABEL_COMPANY_ID,
    SmartLabelAdv,
    SmartLabelAdvFlags,
    build_smartlabel_adv,
)

__all__ = [
    "SKIPPABLE_REASONS",
    "SMARTLABEL_COMPANY_ID",
    "Advert",
    "AdvertError",
    "AdvertErrorReason",
    "AltBeacon",
    "EddystoneTlm",
    "EddystoneUid",
    "EddystoneUrl",
    "IBeacon",
    "Ruuvi3",
    "Ruuvi5",
    "RuuviE1",
    "SmartLabelAdv",
    "SmartLabelAdvFlags",
    "build_smartlabel_adv",
    "decode_adv_payload",
    "decode_advertisement",
    "decode_manufacturer",
    "decode_service_data",
    "service_uuid16",
]
