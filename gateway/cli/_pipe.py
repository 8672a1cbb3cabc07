"""Commands that print a stream, when their reader goes away (``| head``, a closed pager)."""

from __future__ import annotations

import os
import sys

__all__ = ["detach_stdout"]


def detach_stdout() -> None:
    """Point stdout at /dev/null after a broken pipe.

    The interpreter flushes stdout once more on exit; on the dead pipe that flush would fail
    again and print a traceback, where other command-line tools just stop quietly.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
