"""The SmartLabel serial link on the wire: constants and construct tables.

This module is the protocol as data, named exactly as in docs/protocol.md: the frame header,
one payload table per message type, the CRC and the limits. The codec (``codec.py``) is the
machinery that turns these tables into typed messages and back; the simulator builds its
frames from the same tables through ``build``.
"""

from __future__ import annotations

import binascii
import enum
from typing import Any, Final

from construct import (
    Array,
    Int8ul,
    Int16sl,
    Int16ul,
    Int32sl,
    Int32ul,
    Int64ul,
    Struct,
    this,
)

__all__ = [
    "ACK",
    "BROADCAST_LABEL_ID",
    "CRC_BYTES",
    "CRC_CHECK_VALUE",
    "CRC_INIT",
    "DELIMITER",
    "ENVIRONMENT",
    "GPS_FIX",
    "HEADER",
    "HEADER_BYTES",
    "HEARTBEAT",
    "HISTORY_BATCH",
    "HISTORY_MAX_READINGS",
    "HISTORY_READING",
    "HISTORY_READING_BYTES",
    "LABEL_CONFIG",
    "MAX_BODY_BYTES",
    "MAX_ENCODED_BYTES",
    "MIN_BODY_BYTES",
    "NACK",
    "NA_I16",
    "NA_I32",
    "NA_U8",
    "NA_U16",
    "PAYLOADS",
    "PROTOCOL_VERSION",
    "SHOCK",
    "STATUS",
    "SYNCED_TIME_MIN_S",
    "TIME_SYNC",
    "MessageType",
    "crc16",
]

PROTOCOL_VERSION: Final = 1
"""Byte 0 of every frame. A reader that speaks a newer version is refused, never guessed at."""

BROADCAST_LABEL_ID: Final = 0xFFFF_FFFF_FFFF_FFFF
"""``label_id`` of a gateway -> label message for every label of the reader. Defined for that
direction only: :func:`build` refuses a label -> gateway message with it, and the gateway answers
such a frame NACK ``UNKNOWN_LABEL`` (docs/protocol.md, sections 1 and 8)."""

DELIMITER: Final = b"\x00"
"""COBS removes every 0x00 from a frame, so 0x00 can only mean "frame boundary"."""

HEADER_BYTES: Final = 18
CRC_BYTES: Final = 2
MIN_BODY_BYTES: Final = HEADER_BYTES + CRC_BYTES

MAX_BODY_BYTES: Final = 1024
"""Largest decoded frame (header + payload + CRC). 1 KiB fits the RAM of small reader MCUs and
still carries a history batch of :data:`HISTORY_MAX_READINGS` readings."""

MAX_ENCODED_BYTES: Final = MAX_BODY_BYTES + (MAX_BODY_BYTES + 253) // 254
"""COBS adds at most one byte per 254 bytes of body; more than this between two delimiters
cannot be a valid frame, so the splitter drops it instead of buffering without bound."""

HISTORY_READING_BYTES: Final = 8
HISTORY_MAX_READINGS: Final = (MAX_BODY_BYTES - MIN_BODY_BYTES - 1) // HISTORY_READING_BYTES
"""125 readings: a label logging every 5 minutes replays ten hours out of range in one frame."""

SYNCED_TIME_MIN_S: Final = 1_000_000_000
"""A ``label_time`` below this (2001-09-09) is seconds since the label booted: its clock has
not been set by a time sync yet. At or above it, seconds since the Unix epoch, UTC."""

# Sentinels: the field's value is not available ("n/a"); they decode to None.
NA_U8: Final = 0xFF
NA_U16: Final = 0xFFFF
NA_I16: Final = -0x8000
NA_I32: Final = -0x8000_0000

CRC_INIT: Final = 0xFFFF
CRC_CHECK_VALUE: Final = 0x29B1
"""CRC-16/IBM-3740 (alias CRC-16/CCITT-FALSE) of ASCII "123456789"."""


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/IBM-3740 a.k.a. CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection,
    no final xor. ``binascii.crc_hqx`` is exactly this CRC when seeded with 0xFFFF (C speed)."""
    return binascii.crc_hqx(data, CRC_INIT)


class MessageType(enum.IntEnum):
    """Byte 1 of a frame. The high bit says the direction: set means gateway -> reader."""

    GPS_FIX = 0x01
    ENVIRONMENT = 0x02
    SHOCK = 0x03
    STATUS = 0x04
    HISTORY_BATCH = 0x05
    HEARTBEAT = 0x06
    ACK = 0x81
    NACK = 0x82
    TIME_SYNC = 0x83
    LABEL_CONFIG = 0x84


HEADER: Final[Any] = Struct(
    "version" / Int8ul,
    "msg_type" / Int8ul,
    "label_id" / Int64ul,
    "seq" / Int32ul,
    "label_time" / Int32ul,
)

GPS_FIX: Final[Any] = Struct(
    "lat_e7" / Int32sl,
    "lon_e7" / Int32sl,
    "alt_cm" / Int32sl,
    "speed_cmps" / Int16ul,
    "heading_cdeg" / Int16ul,
    "hdop_c" / Int16ul,
    "num_sats" / Int8ul,
    "fix_time" / Int32ul,
)

ENVIRONMENT: Final[Any] = Struct(
    "temperature_cc" / Int16sl,
    "humidity_cpct" / Int16ul,
)

SHOCK: Final[Any] = Struct(
    # 32-bit: parcel drops reach 50 to 100 g and shock sensors are built for ±200 g; 16 bits of
    # mg would saturate at 32.767 g and hide exactly the drops that cause claims.
    "peak_x_mg" / Int32sl,
    "peak_y_mg" / Int32sl,
    "peak_z_mg" / Int32sl,
    "duration_ms" / Int16ul,
    "threshold_mg" / Int16ul,
)

STATUS: Final[Any] = Struct(
    "battery_mv" / Int16ul,
    "fw_major" / Int8ul,
    "fw_minor" / Int8ul,
    "fw_patch" / Int8ul,
    "flags" / Int16ul,
    "config_id" / Int16ul,
    "uptime_s" / Int32ul,
)

HISTORY_READING: Final[Any] = Struct(
    "time" / Int32ul,
    "temperature_cc" / Int16sl,
    "humidity_cpct" / Int16ul,
)

HISTORY_BATCH: Final[Any] = Struct(
    "count" / Int8ul,
    "readings" / Array(this.count, HISTORY_READING),
)

HEARTBEAT: Final[Any] = Struct()

ACK: Final[Any] = Struct(
    "acked_seq" / Int32ul,
)

NACK: Final[Any] = Struct(
    "nacked_seq" / Int32ul,
    "reason" / Int8ul,
)

TIME_SYNC: Final[Any] = Struct(
    "utc_time_ms" / Int64ul,
    "time_source" / Int8ul,
)

LABEL_CONFIG: Final[Any] = Struct(
    "config_id" / Int16ul,
    "report_interval_s" / Int16ul,
    "heartbeat_interval_s" / Int16ul,
    "temp_low_cc" / Int16sl,
    "temp_high_cc" / Int16sl,
    "humidity_high_cpct" / Int16ul,
    "shock_threshold_mg" / Int16ul,
)

PAYLOADS: Final[dict[MessageType, Any]] = {
    MessageType.GPS_FIX: GPS_FIX,
    MessageType.ENVIRONMENT: ENVIRONMENT,
    MessageType.SHOCK: SHOCK,
    MessageType.STATUS: STATUS,
    MessageType.HISTORY_BATCH: HISTORY_BATCH,
    MessageType.HEARTBEAT: HEARTBEAT,
    MessageType.ACK: ACK,
    MessageType.NACK: NACK,
    MessageType.TIME_SYNC: TIME_SYNC,
    MessageType.LABEL_CONFIG: LABEL_CONFIG,
}
"""Payload table per message type; a frame is HEADER + payload + CRC (little-endian u16)."""
