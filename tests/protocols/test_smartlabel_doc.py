"""docs/protocol.md stays true: every worked example decodes to what the document says.

The document is the contract for firmware engineers, so this test parses it: each example is a
field-by-field dump of the frame body, the wire bytes, and the decoded JSON (or a reject). The
message type table and the limits quoted in the text are checked against the code too.
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cobs import cobs

from protocols import to_jsonable
from protocols.smartlabel import (
    HISTORY_MAX_READINGS,
    LABEL_TO_GATEWAY,
    Environment,
    FrameRejected,
    GpsFix,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    LabelConfig,
    NackReason,
    RejectReason,
    Shock,
    Status,
    StreamDecoder,
    TimeSource,
    TimeSync,
    build_body,
)
from protocols.smartlabel.codec import decode
from protocols.smartlabel.errors import BuildError, FrameError
from protocols.smartlabel.messages import GATEWAY_TO_LABEL
from protocols.smartlabel.wire import (
    BROADCAST_LABEL_ID,
    CRC_CHECK_VALUE,
    MAX_BODY_BYTES,
    MAX_ENCODED_BYTES,
    MessageType,
    crc16,
)
from tests.fixtures.clock import FakeClock
from tests.gateway.pipeline.test_labels import frame as reader_frame
from tests.gateway.pipeline.test_labels import make as make_label_processor

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
        if after_info == "text" and after.startswith("error: "):
            # A reject, as `tagrelay decode serial` prints it: error: <reason> (<detail>)
            line = after.strip()
            reason = line.removeprefix("error: ").split(" ", 1)[0]
            out.append(Example(before, bytes.fromhex(text), {"reject": reason, "printed": line}))
            continue
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


def test_reject_example_is_what_the_cli_prints() -> None:
    rejects = [e for e in EXAMPLES if "reject" in e.expected]
    assert rejects
    for example in rejects:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "decode", "serial", example.wire.hex()],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.strip() == example.expected["printed"]


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


# -- what the document says the gateway enforces, and in which order ---------------------------

LABEL = 0x5A01020304050607
T0 = 1_767_225_600
CONFIG_OK = {"report": 300, "heartbeat": 3600, "low": 200, "high": 800, "humidity": 0xFFFF}


def _frame(msg_type: int, payload: bytes, label_id: int = LABEL, version: int = 1) -> bytes:
    body = struct.pack("<BBQII", version, msg_type, label_id, 7, T0) + payload
    return body + crc16(body).to_bytes(2, "little")


def _gps(lat_e7: int = 0, lon_e7: int = 0, heading_cdeg: int = 0) -> bytes:
    payload = struct.pack("<iiiHHHBI", lat_e7, lon_e7, 0, 0, heading_cdeg, 90, 9, T0)
    return _frame(MessageType.GPS_FIX, payload)


def _env(humidity_cpct: int) -> bytes:
    return _frame(MessageType.ENVIRONMENT, struct.pack("<hH", 425, humidity_cpct))


def _config(report: int, heartbeat: int, low: int, high: int, humidity: int) -> bytes:
    payload = struct.pack("<HHHhhHH", 4, report, heartbeat, low, high, humidity, 2000)
    return _frame(MessageType.LABEL_CONFIG, payload)


#: Per documented range: a frame just outside it, and the same field just inside.
RANGE_PROBES: dict[str, tuple[bytes, bytes]] = {
    "lat_e7": (_gps(lat_e7=900_000_001), _gps(lat_e7=900_000_000)),
    "lon_e7": (_gps(lon_e7=-1_800_000_001), _gps(lon_e7=-1_800_000_000)),
    "heading_cdeg": (_gps(heading_cdeg=36_000), _gps(heading_cdeg=35_999)),
    "humidity_cpct": (_env(10_001), _env(10_000)),
    "count": (
        _frame(MessageType.HISTORY_BATCH, bytes([0])),
        _frame(MessageType.HISTORY_BATCH, bytes([1]) + struct.pack("<IhH", T0, 425, 8150)),
    ),
    "report_interval_s": (
        _config(**{**CONFIG_OK, "report": 0}),
        _config(**{**CONFIG_OK, "report": 1}),
    ),
    "heartbeat_interval_s": (
        _config(**{**CONFIG_OK, "heartbeat": 0}),
        _config(**{**CONFIG_OK, "heartbeat": 1}),
    ),
    "temp_low_cc": (
        _config(**{**CONFIG_OK, "low": 801}),
        _config(**{**CONFIG_OK, "low": 800}),
    ),
    "humidity_high_cpct": (
        _config(**{**CONFIG_OK, "humidity": 10_001}),
        _config(**{**CONFIG_OK, "humidity": 10_000}),
    ),
}
RANGE_ROW = re.compile(r"^\| \d+ \| \d \| `(\w+)` \|.*\((enforced|advisory|whole type)\)", re.M)


def _section_text(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    assert text.count(heading) == 1, heading
    return text.split(heading)[1].split("\n## ")[0]


def test_every_range_says_whether_it_is_enforced_and_the_code_agrees() -> None:
    serial_part, _, _ = DOC.read_text(encoding="utf-8").partition(ADVERT_HEADING)
    marked = dict(RANGE_ROW.findall(serial_part))
    assert marked == {
        "lat_e7": "enforced",
        "lon_e7": "enforced",
        "alt_cm": "whole type",
        "speed_cmps": "whole type",
        "heading_cdeg": "enforced",
        "hdop_c": "whole type",
        "num_sats": "whole type",
        "temperature_cc": "whole type",
        "humidity_cpct": "advisory",
        "peak_x_mg": "whole type",
        "peak_y_mg": "whole type",
        "peak_z_mg": "whole type",
        "duration_ms": "whole type",
        "threshold_mg": "whole type",
        "count": "enforced",
        "report_interval_s": "enforced",
        "heartbeat_interval_s": "enforced",
        "temp_low_cc": "enforced",
        "humidity_high_cpct": "enforced",
    }
    for name, (outside, inside) in RANGE_PROBES.items():
        assert _reason(inside) is None, name
        expected = RejectReason.BAD_VALUE if marked[name] == "enforced" else None
        assert _reason(outside) is expected, name
    # Advisory: passed on as received, not clipped.
    assert to_jsonable(decode(_env(10_001)))["humidity_pct"] == 100.01


def test_the_builder_refuses_what_the_decoder_enforces() -> None:
    ok = LabelConfig(LABEL, 1, T0, 4, 300, 3600, 2.0, 8.0, None, 2000)
    assert decode(build_body(ok)) == ok
    equal = dataclasses.replace(ok, temp_low_c=8.0)  # equal alarms are allowed
    assert decode(build_body(equal)) == equal
    for bad in (
        dataclasses.replace(ok, report_interval_s=0),
        dataclasses.replace(ok, heartbeat_interval_s=0),
        dataclasses.replace(ok, temp_low_c=8.01),
        dataclasses.replace(ok, humidity_high_pct=100.01),
    ):
        with pytest.raises(BuildError):
            build_body(bad)
    # Advisory on the label side: a humidity above 100 %RH is built and read back as is.
    env = Environment(LABEL, 2, T0, 4.25, 100.5)
    assert decode(build_body(env)) == env


def test_a_label_to_gateway_frame_from_no_labels_id_is_nacked_unknown_label() -> None:
    """Section 1 and 8: broadcast (and 0) is no label's id. Such a frame decodes, the gateway
    answers it NACK UNKNOWN_LABEL (the reader drops it), and the builder never makes one."""
    text = DOC.read_text(encoding="utf-8")
    assert "the gateway\n  refuses it with a `NACK` `UNKNOWN_LABEL`" in text
    section_8 = _section_text("## 8. Delivery: ACK, resend, de-duplication")
    assert "from `label_id` 0 or the broadcast id" in section_8
    assert "is answered\n   `NACK` `UNKNOWN_LABEL`" in section_8
    messages = (
        GpsFix(LABEL, 1, T0, 52.5, 13.4, 34.5, 12.34, 271.5, 0.9, 9, T0 - 1),
        Environment(LABEL, 2, T0, 4.25, 81.5),
        Shock(LABEL, 3, T0, 2400, -300, 61_000, 35, 2000),
        Status(LABEL, 4, T0, 2950, "1.4.2", 1, 3, 86_400),
        HistoryBatch(LABEL, 5, T0, (HistoryReading(T0 - 300, 5.5, None),)),
        Heartbeat(LABEL, 6, T0),
    )
    assert {type(m) for m in messages} == set(LABEL_TO_GATEWAY)
    clock = FakeClock()
    labels = make_label_processor(clock)
    for message in messages:
        for label_id in (BROADCAST_LABEL_ID, 0):
            body = build_body(message)
            patched = body[:2] + label_id.to_bytes(8, "little") + body[10:-2]
            patched += crc16(patched).to_bytes(2, "little")
            decoded = decode(patched)
            assert decoded == dataclasses.replace(message, label_id=label_id)
            outcome = labels.process(reader_frame(clock, decoded), None)
            assert outcome.nack is NackReason.UNKNOWN_LABEL, message.format
            assert outcome.events == []
        with pytest.raises(BuildError):
            build_body(dataclasses.replace(message, label_id=BROADCAST_LABEL_ID))
    # The direction it is defined for.
    sync = TimeSync(BROADCAST_LABEL_ID, 3, T0, T0 * 1000, TimeSource.GPS)
    assert decode(build_body(sync)) == sync


def test_rounding_ties_go_to_the_even_step_as_documented() -> None:
    assert "0.125 °C is sent as 12, 0.375 °C as 38,\n  −0.125 °C as −12" in DOC.read_text()
    for value, raw in ((0.125, 12), (0.375, 38), (-0.125, -12), (0.625, 62)):
        body = build_body(Environment(LABEL, 1, T0, value, None))
        assert struct.unpack_from("<h", body, 18)[0] == raw, value
        assert decode(body) == Environment(LABEL, 1, T0, raw / 100, None)


def test_reserved_status_flags_are_passed_on_unchanged() -> None:
    assert "passes them on unchanged in `flags`" in _section_text("### 6.4 Status (`0x04`)")
    status = Status(LABEL, 4, T0, 2950, "1.4.2", 0xFFE1, 3, 86_400)
    decoded = decode(build_body(status))
    assert decoded == status
    assert to_jsonable(decoded)["flags"] == 0xFFE1


def test_the_reject_table_is_in_the_order_the_checks_run() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ", _section_text("## 9. Rejects"), re.M)
    assert rows == [
        "too_long",
        "bad_cobs",
        "truncated",
        "bad_crc",
        "unknown_version",
        "unknown_type",
        "bad_length",
        "bad_value",
    ]
    # For each reason, bytes that fail its check and every check after it: the first wins.
    bad_crc_v2 = _frame(0x7F, bytes(7), version=2)[:-2] + b"\x00\x00"
    wires = {
        # Over-long and not valid COBS either (a code byte pointing past the end).
        "too_long": b"\xff" * (MAX_ENCODED_BYTES + 1) + b"\x00",
        # Invalid COBS whose bytes, read as a body, would also be truncated.
        "bad_cobs": b"\x05\x01\x00",
        "truncated": bytes(cobs.encode(b"\x02\x7f" + bytes(10))) + b"\x00",
        "bad_crc": bytes(cobs.encode(bad_crc_v2)) + b"\x00",
        "unknown_version": bytes(cobs.encode(_frame(0x7F, bytes(7), version=2))) + b"\x00",
        "unknown_type": bytes(cobs.encode(_frame(0x7F, bytes(7)))) + b"\x00",
        "bad_value": bytes(cobs.encode(_gps(lat_e7=2_000_000_000))) + b"\x00",
    }
    # A GPS fix one byte short (CRC recomputed) whose latitude is also out of range.
    short_fix = _gps(lat_e7=2_000_000_000)[:-3]
    wires["bad_length"] = bytes(cobs.encode(short_fix + crc16(short_fix).to_bytes(2, "little")))
    wires["bad_length"] += b"\x00"
    for reason, wire in wires.items():
        [item] = StreamDecoder().feed(wire)
        assert isinstance(item, FrameRejected), reason
        assert item.reason is RejectReason(reason), (reason, item)
    # The second too_long check: a body over 1024 bytes that COBS kept within 1029 (zeros
    # cost no extra bytes), after the truncated check.
    body = bytes(MAX_BODY_BYTES + 1)
    assert len(cobs.encode(body)) <= MAX_ENCODED_BYTES
    [item] = StreamDecoder().feed(bytes(cobs.encode(body)) + b"\x00")
    assert isinstance(item, FrameRejected)
    assert item.reason is RejectReason.TOO_LONG
