"""``GET /metrics`` on a loopback port, served from the daemon's event loop.

prometheus-client's own server runs in a thread; ours runs on the loop instead because the
collector reads objects the loop owns (the pipeline's and uplink's counters, changing between
awaits) and awaits the outbox's statistics, which live on its store thread. A scrape on the loop
sees a consistent picture without locks. The protocol is the least of HTTP/1.1 a scraper needs:
one GET per connection, ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Self

from prometheus_client import CONTENT_TYPE_LATEST

from gateway.errors import GatewayError

__all__ = ["MetricsServer", "MetricsServerError"]

_log = logging.getLogger(__name__)

#: A scraper's request line and headers are a few hundred bytes; anything slower than this or
#: bigger than the limit is not a scraper and is dropped.
REQUEST_TIMEOUT_S: Final = 5.0
REQUEST_MAX_BYTES: Final = 16_384


class MetricsServerError(GatewayError):
    """The endpoint could not be opened (port in use, address not available)."""


class MetricsServer:
    """``async with MetricsServer(host, port, render)``: serves until closed."""

    def __init__(self, host: str, port: int, render: Callable[[], Awaitable[bytes]]) -> None:
        self._host = host
        self._port = port
        self._render = render
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.scrapes = 0

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the kernel's choice for port 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(
                self._accept, self._host, self._port, limit=REQUEST_MAX_BYTES
            )
        except OSError as exc:
            raise MetricsServerError(
                f"metrics endpoint {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        _log.info("metrics on http://%s:%d/metrics", self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            if self._clients:
                await asyncio.wait(self._clients)
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self._serve(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that went away or talked nonsense: nothing to answer
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # headers: nothing in them changes the answer
        parts = request.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await _respond(writer, 400, "Bad Request", b"bad request\n")
            return
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            await _respond(writer, 405, "Method Not Allowed", b"GET /metrics\n")
        elif target not in ("/metrics", "/"):
            await _respond(writer, 404, "Not Found", b"see /metrics\n")
        else:
            body = await self._render()
            self.scrapes += 1
            await _respond(writer, 200, "OK", body, CONTENT_TYPE_LATEST, head=method == "HEAD")


async def _respond(
    writer: asyncio.StreamWriter,
    code: int,
    reason: str,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head: bool = False,
) -> None:
    header = (
        f"HTTP/1.1 {code} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(header.encode("latin-1") + (b"" if head else body))
    await writer.drain()
