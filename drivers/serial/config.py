"""Configuration of one serial link (a SmartLabel reader, or a GPS receiver on serial)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_BAUDRATE", "RECONNECT_MAX_S", "WRITE_TIMEOUT_S", "SerialConfig"]

#: SmartLabel readers run their UART at 115200 8N1 (USB CDC ignores the value).
DEFAULT_BAUDRATE: Final = 115_200
#: Cap of the reopen backoff when the path exists but cannot be opened: long enough not to spin
#: on a wedged device, short enough that a fixed permission problem heals within seconds.
RECONNECT_MAX_S: Final = 5.0
#: A gateway -> reader frame is tens of bytes; if the device has not taken it after this long,
#: flow control is stuck and the link is treated as lost (the reader resends what we did not ACK).
WRITE_TIMEOUT_S: Final = 2.0


class SerialConfig(BaseModel):
    """Where a serial device is and how to open it.

    ``path`` is a tty (``/dev/ttyUSB0``), preferably a stable udev symlink
    (``/dev/serial/by-id/usb-...``), or a pyserial URL (``socket://host:port``,
    ``rfc2217://host:port``) for readers behind a serial-to-network converter.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1)
    baudrate: int = Field(default=DEFAULT_BAUDRATE, gt=0)
    #: Take an exclusive lock on the tty so that a second process (ModemManager, a stray
    #: terminal) cannot steal bytes; ignored for URLs.
    exclusive: bool = True
    reconnect_max_s: float = Field(default=RECONNECT_MAX_S, gt=0)
    write_timeout_s: float = Field(default=WRITE_TIMEOUT_S, gt=0)

    @property
    def is_url(self) -> bool:
        """True for ``socket://`` / ``rfc2217://`` style paths (no file to wait for)."""
        return "://" in self.path
