"""The SmartLabel serial link protocol: reader <-> gateway, both directions.

A SmartLabel reader relays many labels to the gateway over a serial line (USB CDC, UART,
``socket://``). This package is the pure part of that link: COBS framing with 0x00 delimiters
(:class:`protocols.smartlabel.framing.Splitter`), frame bodies to typed messages and back
(:func:`protocols.smartlabel.codec.decode`, :func:`build`), and both in one for drivers
(:class:`StreamDecoder`). The wire format is specified byte by byte in docs/protocol.md;
:mod:`protocols.smartlabel.wire` holds it as construct tables.

Exported here is what the drivers, the gateway and the tools use; the splitter, the decoder
and the CRC are in their submodules (``framing``, ``codec``, ``wire``).
"""

from protocols.smartlabel.codec import build, build_body
from protocols.smartlabel.errors import RejectReason
from protocols.smartlabel.framing import FrameRejected, StreamDecoder
from protocols.smartlabel.messages import (
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
from protocols.smartlabel.wire import HISTORY_MAX_READINGS, SYNCED_TIME_MIN_S

__all__ = [
    "HISTORY_MAX_READINGS",
    "LABEL_TO_GATEWAY",
    "SYNCED_TIME_MIN_S",
    "Ack",
    "Environment",
    "FrameRejected",
    "GpsFix",
    "Heartbeat",
    "HistoryBatch",
    "HistoryReading",
    "LabelConfig",
    "Message",
    "Nack",
    "NackReason",
    "RejectReason",
    "Shock",
    "Status",
    "StatusFlags",
    "StreamDecoder",
    "TimeSource",
    "TimeSync",
    "build",
    "build_body",
]
