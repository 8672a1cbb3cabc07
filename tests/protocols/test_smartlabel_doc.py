"""docs/protocol.md stays true: every worked example decodes to what the document says.

The document is the contract for firmware engineers, so this test parses it: each example is a
field-by-field dump of the frame body, the wire bytes, and the decoded JSON (or a reject). The
message type table and the limits quoted in the text are checked against the code too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cobs import cobs

from protocols import to_jsonable
from protocols.smartlabel import (
    HISTORY_MAX_READINGS,
    LABEL_TO_GATEWAY,
    FrameRejected,
    RejectReason,
    StreamDecoder,
    build_body,
)
from protocols.smartlabel.codec import decode
from protocols.smartlabel.errors import FrameError
from protocols.smartlabel.messages import GATEWAY_TO_LABEL
from protocols.smartlabel.wire import (
    CRC_CHECK_VALUE,
    MAX_BODY_BYTES,
    MAX_ENCODED_BYTES,
    MessageType,
    crc16,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
ADVERT_HEADING = "## 11. SmartLabel BLE advertisement"
"""Where the serial link ends; the advert section after it is checked by test_ble_doc.py."""
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BODY_LINE = re.compile(r"^\s*(\d+): ((?:[0-9a-f]{2} ?)+)\s*\| (\S+) = ")


@dataclass(frozen=True)
class Example:
    body_dump: str
    wire: bytes
    expected: dict[str, Any]


def _examples() -> list[Example]:
    serial_part, _, _ = DOC.read_text(encoding="utf-8").partition(ADVERT_HEADING)
    blocks = FENCE.findall(serial_part)
    out = []
    for i, (info, text) in enumerate(blocks):
        if info != "hex":
            continue
        before_info, before = blocks[i - 1]
        after_info, after = blocks[i + 1]
        assert before_info == "text", text
        assert before.startswith("# frame body"), text
        assert after_info == "json", text
        out.append(Example(before, bytes.fromhex(text), json.loads(after)))
    return out


EXAMPLES = _examples()


def _dumped_body(dump: str) -> tuple[bytes, list[str]]:
    """The bytes of a field-per-line body dump, checking that the offsets add up."""
    body = bytearray()
    names = []
    for line in dump.splitlines()[1:]:
        match = BODY_LINE.match(line)
        assert match, line
        assert int(match[1]) == len(body), line
        body += bytes.fromhex(match[2])
        names.append(match[3])
    return bytes(body), names


def test_every_message_type_has_an_example() -> None:
    formats = {e.expected.get("format") for e in EXAMPLES}
    assert formats >= {cls.format for cls in LABEL_TO_GATEWAY + GATEWAY_TO_LABEL}
    assert any("reject" in e.expected for e in EXAMPLES)


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[e.expected.get("format", "reject") for e in EXAMPLES]
)
def test_worked_example(example: Example) -> None:
    body, names = _dumped_body(example.body_dump)
    assert example.wire.endswith(b"\x00")
    assert bytes(cobs.decode(example.wire[:-1])) == body
    assert names[:5] == ["version", "msg_type", "label_id", "seq", "label_time"]
    assert names[-1] == "crc"
    decoder = StreamDecoder()
    [item] = decoder.feed(example.wire)
    if "reject" in example.expected:
        assert isinstance(item, FrameRejected)
        assert item.reason is RejectReason(example.expected["reject"])
    else:
        assert not isinstance(item, FrameRejected)
        assert to_jsonable(item) == example.expected
        assert build_body(item) == body


def _signed_frame(msg_type: int, size: int) -> bytes:
    body = bytes([1, msg_type]) + bytes(size - 4)
    return body + crc16(body).to_bytes(2, "little")


def _reason(frame: bytes) -> RejectReason | None:
    try:
        decode(frame)
    except FrameError as exc:
        return exc.reason
    return None


def test_message_type_table_matches_the_code() -> None:
    row = re.compile(r"^\| `0x([0-9A-F]{2})` \| .*? \| (\d+|[^|]+) \| `(smartlabel-[a-z-]+)` \|$")
    classes = {cls.msg_type: cls for cls in LABEL_TO_GATEWAY + GATEWAY_TO_LABEL}
    seen = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = row.match(line)
        if not match:
            continue
        msg_type = MessageType(int(match[1], 16))
        assert classes[msg_type].format == match[3]
        if match[2].isdecimal():
            # A signed frame of exactly that size passes the length check; one byte more fails.
            size = int(match[2])
            assert _reason(_signed_frame(msg_type, size)) in {None, RejectReason.BAD_VALUE}
            assert _reason(_signed_frame(msg_type, size + 1)) is RejectReason.BAD_LENGTH
        seen.add(msg_type)
    assert seen == set(MessageType)


def test_limits_quoted_in_the_text_match_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"at most **{MAX_BODY_BYTES} bytes**" in text
    assert f"at most **{MAX_ENCODED_BYTES} bytes**" in text
    assert f"**`0x{CRC_CHECK_VALUE:04X}`**" in text
    assert f"the number of readings, **1 … {HISTORY_MAX_READINGS}**" in text
