"""The HTTP server's connection limits, with real sockets on 127.0.0.1: a request whose head or
body never finishes is dropped after its timeout, and connections beyond the cap are refused.
Each test waits for the server's end of file, not for a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from bot.metrics import Metrics, StateGauges, render_prometheus
from bot.rejections import RejectionLog
from bot.web import HttpLimits, HttpServer, create_app
from tests.conftest import FakeClock

FAST = HttpLimits(header_timeout_s=0.5, body_timeout_s=0.5, linger_s=0.2, max_connections=50)
# Longer than any of these tests: where the timeouts must not interfere.
PATIENT = HttpLimits(header_timeout_s=30, body_timeout_s=30, linger_s=1, max_connections=3)


async def answer(form: Mapping[str, str]) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": "pong"}


def accept_all(body: bytes, headers: Mapping[str, str]) -> None:
    return None


StartServer = Callable[[HttpLimits], Awaitable[tuple[HttpServer, Metrics]]]


@pytest.fixture
async def start_server(clock: FakeClock) -> AsyncIterator[StartServer]:
    servers: list[HttpServer] = []

    async def start(limits: HttpLimits) -> tuple[HttpServer, Metrics]:
        metrics = Metrics()

        async def metrics_text() -> str:
            return render_prometheus(metrics, StateGauges({}, 0, 0.0, 0.0))

        app = create_app(
            slash_answer=answer,
            verify_request=accept_all,
            metrics=metrics_text,
            rejections=RejectionLog(metrics.count_rejection, clock),
            limits=limits,
        )
        server = await HttpServer.start(app, "127.0.0.1", 0)
        servers.append(server)
        return server, metrics

    yield start
    for server in servers:
        await server.aclose()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends before it closes the connection."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(4096), 10):
            received += chunk
    return received


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def rejected(metrics: Metrics, reason: str) -> str:
    text = render_prometheus(metrics, StateGauges({}, 0, 0.0, 0.0))
    line = next(x for x in text.splitlines() if f'reason="{reason}"' in x and "_total" in x)
    return line.rsplit(" ", 1)[1]


async def test_a_head_that_never_finishes_is_dropped(start_server: StartServer) -> None:
    server, _ = await start_server(FAST)
    reader, writer = await connect(server.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"POST /slack/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slack-Sig")
    assert await read_until_closed(reader) == b""  # dropped, not answered
    assert 0.4 <= loop.time() - started < 5
    writer.close()


async def test_a_head_sent_a_byte_at_a_time_is_dropped_all_the_same(
    start_server: StartServer,
) -> None:
    server, _ = await start_server(FAST)
    reader, writer = await connect(server.port)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def trickle() -> None:
        # A slow client: one byte of a never-ending header every 50 ms, as long as it may.
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Padding: ")
        with contextlib.suppress(ConnectionError):
            while not writer.is_closing():
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    try:
        assert await read_until_closed(reader) == b""
        assert 0.4 <= loop.time() - started < 5
    finally:
        sender.cancel()
        writer.close()


async def test_an_idle_keep_alive_connection_is_dropped(start_server: StartServer) -> None:
    server, _ = await start_server(FAST)
    reader, writer = await connect(server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
    loop = asyncio.get_running_loop()
    answered = loop.time()
    writer.write(b"GET /heal")  # the next request, never finished
    assert await read_until_closed(reader) == b""
    assert 0.4 <= loop.time() - answered < 5
    writer.close()


async def test_a_body_that_trickles_is_refused_and_dropped(start_server: StartServer) -> None:
    server, metrics = await start_server(FAST)
    reader, writer = await connect(server.port)
    loop = asyncio.get_running_loop()
    writer.write(
        b"POST /slack/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\ntext=he"
    )
    started = loop.time()
    received = await read_until_closed(reader)
    assert received.startswith(b"HTTP/1.1 408")
    assert 0.4 <= loop.time() - started < 5
    assert rejected(metrics, "slow_body") == "1.0"
    writer.close()


async def test_connections_beyond_the_cap_are_refused(start_server: StartServer) -> None:
    server, metrics = await start_server(PATIENT)
    held = [await connect(server.port) for _ in range(3)]
    for reader, writer in held:  # each one answered: the server surely has all three
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")

    reader, writer = await connect(server.port)
    refused = await read_until_closed(reader)
    assert refused.startswith(b"HTTP/1.1 503")
    writer.close()
    assert rejected(metrics, "too_many_connections") == "1.0"

    # One of the three leaves (the server closes it after the answer): there is room again.
    first_reader, first_writer = held[0]
    first_writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (await read_until_closed(first_reader)).startswith(b"HTTP/1.1 200")
    reader, writer = await connect(server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 200")
    for _, held_writer in [*held, (reader, writer)]:
        held_writer.close()
