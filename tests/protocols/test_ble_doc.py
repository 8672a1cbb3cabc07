"""docs/ble-adverts.md stays true: its worked SmartLabel example decodes to its JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

from protocols.ble import SMARTLABEL_COMPANY_ID, decode_adv_payload, decode_manufacturer
from protocols.jsonform import to_jsonable

DOC = Path(__file__).resolve().parents[2] / "docs" / "ble-adverts.md"


def test_worked_example_decodes_to_the_documented_json() -> None:
    text = DOC.read_text(encoding="utf-8")
    hex_blocks = re.findall(r"```hex\n(.*?)\n```", text, re.S)
    json_blocks = re.findall(r"```json\n(.*?)\n```", text, re.S)
    assert len(hex_blocks) == len(json_blocks) == 1
    advert = decode_manufacturer(SMARTLABEL_COMPANY_ID, bytes.fromhex(hex_blocks[0]))
    assert to_jsonable(advert) == json.loads(json_blocks[0])
    assert f"--mfr ffff{hex_blocks[0]}" in text


def test_whole_documented_advertisement_fits_legacy_advertising_and_decodes() -> None:
    data = bytes.fromhex("534c0101020304050607080bb8f8c6030000002a")
    payload = bytes.fromhex("020106") + bytes([3 + len(data), 0xFF]) + b"\xff\xff" + data
    assert len(payload) == 27  # as the document says; legacy advertising allows 31
    (advert,) = decode_adv_payload(payload)
    assert advert == decode_manufacturer(SMARTLABEL_COMPANY_ID, data)
