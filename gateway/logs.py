"""Log lines for people and for journald: one line per record, in one of three formats.

- ``text``: ``2026-05-04 10:00:00,123 INFO gateway.uplink: uplink connected`` (a terminal);
- ``kv``: ``level=INFO logger=gateway.uplink msg="uplink connected" host=broker`` (logfmt: grep
  and journalctl friendly);
- ``json``: one JSON object per line (a log shipper);
- ``auto`` (the default): ``kv`` when stderr is the journal (systemd sets ``JOURNAL_STREAM``),
  ``text`` otherwise.

Under journald each line starts with its syslog priority (``<3>``, ``<4>``, ...), which journald
strips and keeps as the entry's priority, so ``journalctl -p warning`` works. Fields passed with
``extra=`` appear as keys. A traceback stays on the record's one line (escaped).

Repeats are rate-limited: the first record of a kind (logger, level and message, its numbers
aside) in a window is written, the next ones in that window are counted, and when the window is
over one line says ``... (repeated N times in 60 s)``. A device that fails every 100 ms fills
the journal with one line a minute, not 600.

A secret handed to :func:`configure_logging` never reaches a line: it is replaced by
``**********`` wherever it appears, traceback and third-party messages included.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "LogFormat",
    "LogHandler",
    "configure_logging",
    "flush_repeats",
]

LogFormat = Literal["auto", "text", "kv", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("auto", "text", "kv", "json")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
REDACTED: Final = "**********"
#: Shorter strings are not masked (they would garble ordinary words); passwords are longer.
MIN_SECRET_LEN: Final = 4
DEFAULT_REPEAT_WINDOW_S: Final = 60.0
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Numbers (counts, ports, durations) do not make a message a different one.
_DIGITS: Final = re.compile(r"\d+")

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))
) | {"message", "asctime", "taskName"}
#: syslog priorities (sd-daemon(3) prefixes) by logging level.
_PRIORITY: Final = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _kv_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class KeyValueFormatter(logging.Formatter):
    """``time=... level=INFO logger=... msg="..." key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, object]] = [
            ("time", _timestamp(record)),
            ("level", record.levelname),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        pairs.extend(_fields(record).items())
        if record.exc_info:
            pairs.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{key}={_kv_value(value)}" for key, value in pairs)


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            data[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class SingleLineTextFormatter(logging.Formatter):
    """The classic text line; under journald a traceback is kept on the record's line."""

    def __init__(self, one_line: bool) -> None:
        super().__init__(TEXT_FORMAT)
        self._one_line = one_line

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\n", "\\n") if self._one_line else text


@dataclass(slots=True)
class _Window:
    started: float
    record: logging.LogRecord
    suppressed: int = 0


class LogHandler(logging.StreamHandler[TextIO]):
    """A stream handler with repeat limiting, secret masking and journald priorities."""

    def __init__(
        self,
        stream: TextIO,
        formatter: logging.Formatter,
        *,
        secrets: Iterable[str] = (),
        repeat_window_s: float = DEFAULT_REPEAT_WINDOW_S,
        priority_prefix: bool = False,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True
        )
        self.repeat_window_s = repeat_window_s
        self._prefix = priority_prefix
        self._now = now
        self._windows: dict[tuple[str, int, str], _Window] = {}

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        if self._prefix:
            text = f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        return text

    def handle(self, record: logging.LogRecord) -> bool:
        if self.repeat_window_s <= 0:
            return super().handle(record)
        now = self._now()
        self.flush_repeats(now)
        key = (record.name, record.levelno, _DIGITS.sub("#", record.getMessage()))
        window = self._windows.get(key)
        if window is not None:
            window.suppressed += 1
            window.record = record
            return False
        self._windows[key] = _Window(now, record)
        return super().handle(record)

    def flush_repeats(self, now: float | None = None, *, everything: bool = False) -> None:
        """Write the ``repeated N times`` line of every window that is over (or of all)."""
        at = self._now() if now is None else now
        for key, window in list(self._windows.items()):
            if everything or at - window.started >= self.repeat_window_s:
                del self._windows[key]
                if window.suppressed:
                    super().handle(self._summary(window, at))

    def _summary(self, window: _Window, now: float) -> logging.LogRecord:
        last = window.record
        span = max(0.0, min(now - window.started, self.repeat_window_s))
        summary = logging.makeLogRecord(
            {
                **vars(last),
                "msg": "%s (repeated %d times in %.0f s)",
                "args": (last.getMessage(), window.suppressed, span),
                "exc_info": None,
                "exc_text": None,
                "repeated": window.suppressed,
            }
        )
        return summary

    def close(self) -> None:
        self.flush_repeats(everything=True)
        super().close()


def _journal_is_stderr(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected (sd_journal_stream_fd)."""
    value = environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def configure_logging(
    level: str = "INFO",
    fmt: LogFormat = "auto",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
    repeat_window_s: float = DEFAULT_REPEAT_WINDOW_S,
    environ: Mapping[str, str] | None = None,
) -> LogHandler:
    """Make the root logger write to ``stream`` (stderr) in ``fmt`` at ``level``; replaces the
    handler a previous call installed."""
    out = sys.stderr if stream is None else stream
    journal = _journal_is_stderr(os.environ if environ is None else environ, out)
    chosen = ("kv" if journal else "text") if fmt == "auto" else fmt
    formatter: logging.Formatter
    if chosen == "kv":
        formatter = KeyValueFormatter()
    elif chosen == "json":
        formatter = JsonFormatter()
    else:
        formatter = SingleLineTextFormatter(one_line=journal)
    handler = LogHandler(
        out,
        formatter,
        secrets=secrets,
        repeat_window_s=repeat_window_s,
        priority_prefix=journal,
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, LogHandler):  # ours from an earlier call; others are left alone
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    return handler


def flush_repeats() -> None:
    """Write the pending ``repeated N times`` lines whose window is over (called periodically
    by the daemon, so that a burst that ended is summed up without waiting for a next line)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LogHandler):
            handler.flush_repeats()
