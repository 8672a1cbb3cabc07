"""Sample advert payloads, one source for the demo, the decode bench and the tests.

Each is the data part of one advert, as bleak hands it over: manufacturer-specific data after
the company id (``*_MFR``), service data under the Eddystone UUID (``EDDYSTONE_*``), or a whole
advertising payload (``*_ADV``). Where a sample is a published vector its source is named (the
same vectors are in the test fixtures with their commits); the expected decoded values are in
those vectors and in tests/protocols/test_ble_formats.py.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALTBEACON_ADV",
    "ALTBEACON_COMPANY_ID",
    "ALTBEACON_MFR",
    "APPLE_COMPANY_ID",
    "EDDYSTONE_TLM",
    "EDDYSTONE_UID",
    "EDDYSTONE_URL",
    "IBEACON_MFR",
    "RUUVI3_MFR",
    "RUUVI5_MFR",
    "RUUVI5_TRUNCATED_MFR",
    "RUUVI_COMPANY_ID",
]

APPLE_COMPANY_ID: Final = 0x004C
RUUVI_COMPANY_ID: Final = 0x0499
#: Radius Networks, the company id the AltBeacon sample is sent under.
ALTBEACON_COMPANY_ID: Final = 0x0118

#: iBeacon, UUID 41424344-4546-4748-4940-414243444546, major 1, minor 2, -8 dBm
#: (citruz/beacontools tests/test_parser.py, test_ibeacon).
IBEACON_MFR: Final = bytes.fromhex("02154142434445464748494041424344454600010002f8")
#: Ruuvi data format 5 (RAWv2), "valid data": 24.3 °C, 53.49 %RH, 100044 Pa, MAC
#: CB:B8:33:4C:88:4F (ruuvi/docs, data-format-5-rawv2.md).
RUUVI5_MFR: Final = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
#: The same advert cut short after 15 bytes: a decoder must reject it (bad length).
RUUVI5_TRUNCATED_MFR: Final = RUUVI5_MFR[:15]
#: Ruuvi data format 3 (RAWv1), "valid data": 26.3 °C, 20.5 %RH (ruuvi/ruuvi-sensor-protocols,
#: dataformat_03.md).
RUUVI3_MFR: Final = bytes.fromhex("03291A1ECE1EFC18F94202CA0B53")
#: Eddystone-UID, namespace 12345678901234678901, instance 000000000001 (beacontools,
#: test_eddystone_uid).
EDDYSTONE_UID: Final = bytes.fromhex("00e3123456789012346789010000000000010000")
#: Eddystone-URL https://github.com/citruz (beacontools, test_eddystone_url).
EDDYSTONE_URL: Final = bytes.fromhex("10f8036769746875620063697472757a")
#: Eddystone-TLM, unencrypted (beacontools, test_eddystone_tlm).
EDDYSTONE_TLM: Final = bytes.fromhex("20000b1813000000146700002ac4")
#: AltBeacon, built to the AltBeacon specification's layout: beacon code BEAC, id
#: 2f234454-cf6d-4a0f-adf2-f4911ba9ffa6, 1, 2, reference RSSI -59 dBm, reserved 0x09.
ALTBEACON_MFR: Final = bytes.fromhex("beac2f234454cf6d4a0fadf2f4911ba9ffa600010002c509")
#: The AltBeacon as a whole advertising payload: flags (0x1a), then the manufacturer data
#: (length 0x1b, type 0xff, company id 0x0118 little-endian).
ALTBEACON_ADV: Final = bytes.fromhex("02011a1bff1801") + ALTBEACON_MFR
