"""Serial devices on the data path: SmartLabel readers on a tty, symlink or network URL.

:class:`SerialLink` keeps a configured path open through unplugs and replugs;
:class:`SmartLabelReaderDriver` turns a reader's byte stream into :class:`ReaderFrame` events and
writes ACK / NACK / time sync / configuration frames back. The GPS driver reuses the same link.
"""

from drivers.serial.config import SerialConfig
from drivers.serial.errors import LinkFailure, SerialLinkError
from drivers.serial.link import Backoff, LinkStats, SerialLink
from drivers.serial.port import SerialPort, open_port
from drivers.serial.reader import ReaderFrame, SmartLabelReaderDriver

__all__ = [
    "Backoff",
    "LinkFailure",
    "LinkStats",
    "ReaderFrame",
    "SerialConfig",
    "SerialLink",
    "SerialLinkError",
    "SerialPort",
    "SmartLabelReaderDriver",
    "open_port",
]
