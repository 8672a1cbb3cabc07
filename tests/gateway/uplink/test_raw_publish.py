"""Reading an MQTT 5 PUBLISH past properties paho refuses: golden bytes, whole and cut short."""

from __future__ import annotations

import pytest

from gateway.uplink._mqtt import _read_publish_skipping_properties

# PUBLISH, QoS 1, retain: topic "t/c", packet id 0x1234, properties = one user property
# ("k", U+FEFF) which paho refuses, payload b'{"id": "x"}'.
PROPS = b"\x26" + b"\x00\x01k" + b"\x00\x03\xef\xbb\xbf"
PACKET = b"\x00\x03t/c" + b"\x12\x34" + bytes([len(PROPS)]) + PROPS + b'{"id": "x"}'
COMMAND = 0x30 | 0x02 | 0x01


def test_reads_topic_id_retain_and_payload() -> None:
    raw = _read_publish_skipping_properties(COMMAND, PACKET)
    assert (raw.qos, raw.mid, raw.retain, raw.topic) == (1, 0x1234, True, b"t/c")
    assert raw.payload == b'{"id": "x"}'


def test_qos_0_has_no_packet_id_and_empty_payload_is_fine() -> None:
    packet = b"\x00\x01t" + b"\x00"
    raw = _read_publish_skipping_properties(0x30, packet)
    assert (raw.qos, raw.mid, raw.retain, raw.topic, raw.payload) == (0, 0, False, b"t", b"")


def test_a_long_property_length_is_a_variable_byte_integer() -> None:
    props = b"\x26" + b"\x00\x01k" + b"\x00\x80" + b"v" * 128
    assert len(props) == 134  # over 127: a two-byte variable byte integer, 0x86 0x01
    packet = b"\x00\x01t" + b"\x00\x07" + b"\x86\x01" + props + b"P"
    raw = _read_publish_skipping_properties(0x32, packet)
    assert raw.mid == 7
    assert raw.payload == b"P"


@pytest.mark.parametrize("cut", range(len(PACKET) - len(b'{"id": "x"}')))
def test_a_packet_cut_short_is_an_error_not_a_guess(cut: int) -> None:
    with pytest.raises(ValueError, match=r"shorter|property length"):
        _read_publish_skipping_properties(COMMAND, PACKET[:cut])


def test_a_property_length_of_five_bytes_is_refused() -> None:
    packet = b"\x00\x01t" + b"\x00\x01" + b"\xff\xff\xff\xff\x7f"
    with pytest.raises(ValueError, match="four bytes"):
        _read_publish_skipping_properties(0x32, packet)
