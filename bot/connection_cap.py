"""At most N open connections to the HTTP server: one more is answered `503` and closed at once.

aiohttp has no such limit, so this is a listening site of our own (aiohttp's `BaseSite`, the
same as its `TCPSite` but for the protocol factory): each accepted connection passes a gate
that hands it to aiohttp's handler only while there is room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n"
    b"too many connections\n"
)


class CappedTCPSite(web.BaseSite):
    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        on_refused: Callable[[], None],
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._max_connections = max_connections
        self._on_refused = on_refused
        self._open = 0

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        handler_factory = self._runner.server
        assert handler_factory is not None, "runner.setup() comes first"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(handler_factory, self), self._host, self._port
        )

    def _admit(self) -> bool:
        if self._open >= self._max_connections:
            self._on_refused()
            return False
        self._open += 1
        return True

    def _release(self) -> None:
        self._open -= 1


class _Gate(asyncio.Protocol):
    """One connection: aiohttp's handler, made only when the site admits the connection (and
    counted until it is lost), or a `503` and the door."""

    def __init__(self, handler_factory: Callable[[], asyncio.Protocol], site: CappedTCPSite):
        self._handler_factory = handler_factory
        self._site = site
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Decided here, not when the protocol is made: a connection counts from this call to
        # connection_lost, which asyncio pairs with it.
        if not self._site._admit():
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_BUSY)
            transport.close()
            return
        self._inner = self._handler_factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._site._release()
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
