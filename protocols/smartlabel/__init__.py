"""The SmartLabel serial link protocol: reader <-> gateway, both directions.

A SmartLabel reader relays many labels to the gateway over a serial line (USB CDC, UART,
``socket://``). This package is the pure part of that link: COBS framing with 0x00 delimiters
(:class:`Splitter`), frame bodies to typed messages and back (:func:`decode`, :func:`build`),
and both in one for drivers (:class:`StreamDecoder`). The wire format is specified byte by byte
in docs/protocol.md; :mod:`protocols.smartlabel.wire` holds it as construct tables.
"""

from protocols.smartlabel.codec import build, build_body, decode
from protocols.smartlabel.errors import BuildError, FrameError, RejectReason
from protocols.smartlabel.framing import FrameRejected, Splitter, StreamDecoder
from protocols.smartlabel.messages import (
    GATEWAY_TO_LABEL,
    LABEL_TO_GATEWAY,
    Ack,
    Environment,
    GpsFix,
    Heartbeat,
    HistoryBatch,
    HistoryReading,
    LabelConfig,
    Message,
    Nack,
    NackReason,
    Shock,
    Status,
    StatusFlags,
    TimeSource,
    TimeSync,
)
from protocols.smartlabel.wire import (
    CRC_CHECK_VALUE,
    HISTORY_MAX_READINGS,
    MAX_BODY_BYTES,
    MAX_ENCODED_BYTES,
    PROTOCOL_VERSION,
    SYNCED_TIME_MIN_S,
    MessageType,
    crc16,
)

__all__ = [
    "CRC_CHECK_VALUE",
    "GATEWAY_TO_LABEL",
    "HISTORY_MAX_READINGS",
    "LABEL_TO_GATEWAY",
    "MAX_BODY_BYTES",
    "MAX_ENCODED_BYTES",
    "PROTOCOL_VERSION",
    "SYNCED_TIME_MIN_S",
    "Ack",
    "BuildError",
    "Environment",
    "FrameError",
    "FrameRejected",
    "GpsFix",
    "Heartbeat",
    "HistoryBatch",
    "HistoryReading",
    "LabelConfig",
    "Message",
    "MessageType",
    "Nack",
    "NackReason",
    "RejectReason",
    "Shock",
    "Splitter",
    "Status",
    "StatusFlags",
    "StreamDecoder",
    "TimeSource",
    "TimeSync",
    "build",
    "build_body",
    "crc16",
    "decode",
]
