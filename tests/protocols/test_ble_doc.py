"""docs/protocol.md, section 11 stays true: the SmartLabel advert layout, flags and worked example.

Firmware engineers implement the label's advert from that section alone, so its tables are
checked against the code and its worked example must decode to its JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from protocols import to_jsonable
from protocols.ble import (
    SMARTLABEL_COMPANY_ID,
    AdvertError,
    AdvertErrorReason,
    SmartLabelAdv,
    SmartLabelAdvFlags,
    build_smartlabel_adv,
    decode_adv_payload,
    decode_advertisement,
    decode_manufacturer,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
HEADING = "## 11. SmartLabel BLE advertisement"
TABLE_ROW = re.compile(r"^\| (\d+) \| (\d+) \| (\w+) \| (\w+) \|", re.MULTILINE)
FLAG_ROW = re.compile(r"^\| (\d) \| ([a-z ]+) \|", re.MULTILINE)


def _section() -> str:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    assert text.count(HEADING) == 1
    return text.split(HEADING)[1].split("\n## ")[0]


def _worked_example() -> tuple[bytes, dict[str, object]]:
    section = _section()
    hex_blocks = re.findall(r"```hex\n(.*?)\n```", section, re.S)
    json_blocks = re.findall(r"```json\n(.*?)\n```", section, re.S)
    assert len(hex_blocks) == len(json_blocks) == 1
    assert f"--mfr ffff{hex_blocks[0]}" in section
    return bytes.fromhex(hex_blocks[0]), json.loads(json_blocks[0])


def test_worked_example_decodes_to_the_documented_json() -> None:
    data, expected = _worked_example()
    advert = decode_manufacturer(SMARTLABEL_COMPANY_ID, data)
    assert isinstance(advert, SmartLabelAdv)
    assert to_jsonable(advert) == expected
    assert (
        build_smartlabel_adv(
            advert.label_id, advert.battery_mv, advert.temperature_c, advert.flags, advert.sequence
        )
        == data
    )


def test_layout_table_is_contiguous_and_as_long_as_the_advert() -> None:
    rows = [(int(off), int(size), name) for off, size, name, _ in TABLE_ROW.findall(_section())]
    assert [name for _, _, name in rows] == [
        "magic",
        "version",
        "label_id",
        "battery_mv",
        "temperature",
        "flags",
        "sequence",
    ]
    end = 0
    for offset, size, name in rows:
        assert offset == end, name
        end += size
    data, _ = _worked_example()
    assert end == len(data) == 20
    assert "(manufacturer data after the company id; 20 bytes)" in _section()


def test_flag_bits_match_the_code() -> None:
    documented = {int(bit): name for bit, name in FLAG_ROW.findall(_section())}
    assert documented == {
        flag.value.bit_length() - 1: str(flag.name).lower().replace("_", " ")
        for flag in SmartLabelAdvFlags
        if flag.value
    }


def test_whole_documented_advertisement_fits_legacy_advertising_and_decodes() -> None:
    data, _ = _worked_example()
    payload = bytes.fromhex("020106") + bytes([3 + len(data), 0xFF]) + b"\xff\xff" + data
    assert len(payload) == 27
    assert "is 3 + 24 = 27 bytes, within the\n31-byte legacy advertising limit" in _section()
    (advert,) = decode_adv_payload(payload)
    assert advert == decode_manufacturer(SMARTLABEL_COMPANY_ID, data)


def test_ble_adverts_md_points_to_the_section() -> None:
    text = (DOCS / "ble-adverts.md").read_text(encoding="utf-8")
    assert "protocol.md#11-smartlabel-ble-advertisement" in text


def test_the_advert_reject_table_is_what_the_decoder_does() -> None:
    section = _section()
    rows = re.findall(r"^\| `(\w+)` \| ", section.split("**Rejects.**")[1], re.M)
    assert rows == ["too_short", "unsupported_version", "bad_length"]
    data, _ = _worked_example()
    cases = {
        b"SL": AdvertErrorReason.TOO_SHORT,
        data[:-1]: AdvertErrorReason.TOO_SHORT,
        # A later version is refused for its version whatever its length.
        b"SL\x02": AdvertErrorReason.UNSUPPORTED_VERSION,
        b"SL\x02" + bytes(40): AdvertErrorReason.UNSUPPORTED_VERSION,
        data + b"\x00": AdvertErrorReason.BAD_LENGTH,
    }
    for raw, reason in cases.items():
        with pytest.raises(AdvertError) as exc:
            decode_manufacturer(SMARTLABEL_COMPANY_ID, raw)
        assert exc.value.reason is reason, raw.hex()
        # Ours and malformed: counted by the scanner, never skipped.
        with pytest.raises(AdvertError):
            decode_advertisement({SMARTLABEL_COMPANY_ID: raw}, {})


def test_reserved_flag_bits_are_passed_on_unchanged() -> None:
    assert "passes them on unchanged in `flags`" in _section()
    data, _ = _worked_example()
    flagged = data[:15] + bytes([0xF3]) + data[16:]
    advert = decode_manufacturer(SMARTLABEL_COMPANY_ID, flagged)
    assert isinstance(advert, SmartLabelAdv)
    assert to_jsonable(advert)["flags"] == 0xF3


def test_data_without_the_magic_is_skipped_by_the_scanner_and_an_error_for_the_cli() -> None:
    """Section 11 says both, and both hold: the scanner's decoder skips it silently, the CLI
    asked to decode that record reports unknown_format with exit status 1."""
    section = _section()
    assert "the gateway's scanner skips it without counting it" in section
    assert "answers\n`error: unknown_format (...)` and exit status 1" in section
    assert decode_advertisement({SMARTLABEL_COMPANY_ID: b"\x01\x02\x03"}, {}) == []
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "decode", "ble", "--mfr", "ffff010203"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown_format (")
