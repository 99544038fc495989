"""`POST /slack/commands` under hostile input, over a real socket: every malformed request is a
401 (or, signed by Slack but nonsensical, a usage reply), never a 500; the real request check
and the real `/news` handler on a real SQLite state, on a clock moved by hand."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.commands import Commands
from bot.metrics import Metrics, StateGauges, render_prometheus
from bot.platforms.slack_commands import ManagePolicy, SlackCommands, request_check
from bot.rejections import RejectionLog
from bot.render import RenderStyle
from bot.routing import RoutingDefaults
from bot.state import State
from bot.web import HttpServer, SlashAnswer, create_app
from tests.conftest import FakeClock
from tests.fakes.slack_server import sign_slash_command, slack_signature, slash_command_form

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0NEWS0001"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        payload = json.loads(self.body)
        assert isinstance(payload, dict)
        return payload


async def raw_request(port: int, head: list[bytes], body: bytes = b"") -> Answer:
    """One request written byte for byte (no client library tidies it up); the answer read to
    the end (the request says `Connection: close`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [*head, b"Host: 127.0.0.1", b"Connection: close"]
    if not any(line.lower().startswith(b"content-length:") for line in head):
        lines.append(b"Content-Length: %d" % len(body))
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, payload)


def post_head(*headers: bytes) -> list[bytes]:
    return [b"POST /slack/commands HTTP/1.1", *headers]


def signed_head(body: bytes, timestamp: int, content_type: bytes | None = None) -> list[bytes]:
    ctype = content_type or b"application/x-www-form-urlencoded"
    return post_head(
        b"Content-Type: " + ctype,
        b"X-Slack-Request-Timestamp: %d" % timestamp,
        b"X-Slack-Signature: " + slack_signature(SECRET, timestamp, body).encode(),
    )


def command_form(text: str) -> dict[str, str]:
    return slash_command_form("/news", text, CHANNEL, "U0MEMBER1", "")


@pytest.fixture
async def state(tmp_path: Path, clock: FakeClock) -> AsyncIterator[State]:
    state = await State.open(tmp_path / "bot.db", clock)
    yield state
    await state.aclose()


@dataclass
class Endpoint:
    port: int
    clock: FakeClock
    answered: list[Mapping[str, str]]

    async def post(self, head: list[bytes], body: bytes = b"") -> Answer:
        return await raw_request(self.port, head, body)

    async def signed(self, form: Mapping[str, str]) -> Answer:
        body, headers = sign_slash_command(SECRET, form, int(self.clock.time()))
        head = post_head(*(f"{k}: {v}".encode() for k, v in headers.items()))
        return await self.post(head, body)


EndpointFactory = Callable[..., Awaitable[Endpoint]]


@pytest.fixture
async def endpoint(state: State, clock: FakeClock) -> AsyncIterator[EndpointFactory]:
    servers: list[HttpServer] = []

    async def start(answer: SlashAnswer | None = None) -> Endpoint:
        commands = Commands(state, RoutingDefaults(min_quality=40.0), clock)
        handler = SlackCommands(commands, ManagePolicy("anyone", (), None, clock), RenderStyle())
        answered: list[Mapping[str, str]] = []

        async def recording(form: Mapping[str, str]) -> dict[str, Any]:
            answered.append(form)
            return await (answer or handler.answer)(form)

        metrics = Metrics()

        async def metrics_text() -> str:
            return render_prometheus(metrics, StateGauges({}, 0, 0.0, 0.0))

        app = create_app(
            slash_answer=recording,
            verify_request=request_check(SECRET, clock),
            metrics=metrics_text,
            rejections=RejectionLog(metrics.count_rejection, clock),
        )
        server = await HttpServer.start(app, "127.0.0.1", 0)
        servers.append(server)
        return Endpoint(server.port, clock, answered)

    yield start
    for server in servers:
        await server.aclose()


# --- refused: 401, and nothing reaches the command handler -------------------------------------

NOW = b"%d" % int(FakeClock().time())
GOOD_SIGNATURE = b"v0=" + b"0" * 64


@pytest.mark.parametrize(
    ("head", "body"),
    [
        pytest.param(
            post_head(b"X-Slack-Request-Timestamp: " + "²".encode(), b"X-Slack-Signature: "
                      + GOOD_SIGNATURE),
            b"text=help", id="superscript-two-timestamp",
        ),
        pytest.param(
            post_head(b"X-Slack-Request-Timestamp: " + b"9" * 5000,
                      b"X-Slack-Signature: " + GOOD_SIGNATURE),
            b"text=help", id="5000-digit-timestamp",
        ),
        pytest.param(
            post_head(b"X-Slack-Request-Timestamp: " + NOW,
                      b"X-Slack-Signature: v0=" + "é".encode() * 32),
            b"text=help", id="non-ascii-signature",
        ),
        pytest.param(
            post_head(b"X-Slack-Request-Timestamp: " + "١٧٩٦٦٣٦٩٧٦".encode(),
                      b"X-Slack-Signature: " + GOOD_SIGNATURE),
            b"text=help", id="arabic-indic-digits-timestamp",
        ),
        pytest.param(
            post_head(b"X-Slack-Request-Timestamp: -" + NOW,
                      b"X-Slack-Signature: " + GOOD_SIGNATURE),
            b"text=help", id="negative-timestamp",
        ),
        pytest.param(post_head(b"X-Slack-Signature: " + GOOD_SIGNATURE), b"text=help",
                     id="no-timestamp"),
        pytest.param(post_head(b"X-Slack-Request-Timestamp: " + NOW), b"text=help",
                     id="no-signature"),
        pytest.param(post_head(), b"", id="no-headers-empty-body"),
        pytest.param(
            post_head(b"X-Slack-Request-Timestamp: " + NOW, b"X-Slack-Signature: "
                      + GOOD_SIGNATURE),
            b"", id="empty-body-bad-signature",
        ),
        pytest.param(
            post_head(b"Content-Type: application/json", b"X-Slack-Request-Timestamp: " + NOW,
                      b"X-Slack-Signature: " + GOOD_SIGNATURE),
            b'{"text": "help"}', id="json-bad-signature",
        ),
        pytest.param(
            post_head(b"X-Slack-Request-Timestamp: " + NOW,
                      b"X-Slack-Signature: " + GOOD_SIGNATURE),
            b"text=\xff\xfe\xfd", id="non-utf8-body",
        ),
    ],
)
async def test_malformed_requests_are_refused_with_401(
    endpoint: EndpointFactory, head: list[bytes], body: bytes
) -> None:
    server = await endpoint()
    answer = await server.post(head, body)
    assert answer.status == 401, answer.body
    assert server.answered == []


async def test_a_non_utf8_body_is_refused_even_when_correctly_signed(
    endpoint: EndpointFactory, clock: FakeClock
) -> None:
    server = await endpoint()
    body = b"command=%2Fnews&text=\xff\xfe"
    answer = await server.post(signed_head(body, int(clock.time())), body)
    assert answer.status == 401
    assert server.answered == []


# --- signed by Slack, but nonsense: a usage reply, never a 500 ---------------------------------


async def test_a_huge_count_gets_the_usage_reply(endpoint: EndpointFactory) -> None:
    server = await endpoint()
    answer = await server.signed(command_form("ai " + "7" * 5000))
    assert answer.status == 200, answer.body
    reply = answer.json()
    assert reply["response_type"] == "ephemeral"
    assert "count must be" in reply["text"] and "Usage" in reply["text"]


async def test_huge_command_text_gets_the_usage_reply(endpoint: EndpointFactory) -> None:
    server = await endpoint()
    answer = await server.signed(command_form("subscribe " + "x" * 60_000))
    assert answer.status == 200, answer.body
    assert "at most 100 characters" in answer.json()["text"]


async def test_a_signed_empty_body_gets_the_help(
    endpoint: EndpointFactory, clock: FakeClock
) -> None:
    server = await endpoint()
    answer = await server.post(signed_head(b"", int(clock.time())), b"")
    assert answer.status == 200, answer.body
    assert "Usage" in answer.json()["text"]


async def test_a_signed_body_of_another_content_type_gets_the_help(
    endpoint: EndpointFactory, clock: FakeClock
) -> None:
    server = await endpoint()
    body = b'{"command": "/news", "text": "subscribe AI"}'
    head = signed_head(body, int(clock.time()), content_type=b"application/json")
    answer = await server.post(head, body)
    assert answer.status == 200, answer.body
    assert "Usage" in answer.json()["text"]


async def test_repeated_form_fields_are_not_guessed_at(
    endpoint: EndpointFactory, clock: FakeClock
) -> None:
    server = await endpoint()
    body = b"command=%2Fnews&text=list&channel_id=C0NEWS0001&text=unsubscribe+AI"
    answer = await server.post(signed_head(body, int(clock.time())), body)
    assert answer.status == 200, answer.body
    reply = answer.json()
    assert reply["response_type"] == "ephemeral"
    assert "`text` more than once" in reply["text"]
    assert server.answered == []  # neither of the two commands was run


async def test_a_body_over_64_kib_is_refused_unread(
    endpoint: EndpointFactory, clock: FakeClock
) -> None:
    server = await endpoint()
    body = b"text=" + b"x" * (70 * 1024)
    answer = await server.post(signed_head(body, int(clock.time())), body)
    assert answer.status == 413
    assert server.answered == []


# --- a bug on our side: a polite ephemeral answer, one log line, no body or secret -------------


async def test_an_unexpected_error_is_answered_politely_and_logged_once(
    endpoint: EndpointFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(form: Mapping[str, str]) -> dict[str, Any]:
        raise RuntimeError(f"broken while reading {form['text']} with {SECRET}")

    server = await endpoint(broken)
    caplog.set_level(logging.DEBUG)
    answer = await server.signed(command_form("subscribe TopSecretTopic"))
    assert answer.status == 200, answer.body
    reply = answer.json()
    assert reply["response_type"] == "ephemeral"
    assert "Sorry" in reply["text"]
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert "RuntimeError" in failures[0].getMessage()
    logged = caplog.text + "".join(str(r.exc_text) for r in caplog.records)
    assert "TopSecretTopic" not in logged and SECRET not in logged


# --- replays inside Slack's 5-minute window ---------------------------------------------------


async def test_a_replay_inside_the_window_is_refused(
    endpoint: EndpointFactory, clock: FakeClock
) -> None:
    server = await endpoint()
    body, headers = sign_slash_command(SECRET, command_form("list"), int(clock.time()))
    head = post_head(*(f"{k}: {v}".encode() for k, v in headers.items()))
    assert (await server.post(head, body)).status == 200
    clock.advance(240)  # captured, and sent again four minutes later
    assert (await server.post(head, body)).status == 401
    clock.advance(120)  # and after the window: stale
    assert (await server.post(head, body)).status == 401
    # The same command, signed anew by Slack, is a new request.
    assert (await server.signed(command_form("list"))).status == 200
    assert [f["text"] for f in server.answered] == ["list", "list"]


# --- refusals are counted, and their log lines rate-limited ------------------------------------


async def test_refusals_are_counted_by_reason_and_logged_at_most_once_a_minute_each(
    endpoint: EndpointFactory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    server = await endpoint()
    unsigned = post_head(b"X-Slack-Request-Timestamp: " + NOW, b"X-Slack-Signature: "
                         + GOOD_SIGNATURE)
    for _ in range(20):
        assert (await server.post(unsigned, b"text=help")).status == 401
    for _ in range(3):
        assert (await server.post(post_head(), b"text=help")).status == 401
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 2, refusals  # one line per reason
    assert "signature that does not match" in refusals[0]
    assert "no signature or timestamp" in refusals[1]

    clock.advance(59)
    assert (await server.post(unsigned, b"text=help")).status == 401
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    clock.advance(2)
    assert (await server.post(unsigned, b"text=help")).status == 401
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 3
    assert "20 more" in refusals[2]  # the 19 held back at first, and the one at 59 s

    scrape = await server.post([b"GET /metrics HTTP/1.1"])
    assert scrape.status == 200
    text = scrape.body.decode()
    assert 'newsbot_http_rejected_total{reason="bad_signature"} 22.0' in text
    assert 'newsbot_http_rejected_total{reason="missing_headers"} 3.0' in text
    assert 'newsbot_http_rejected_total{reason="replay"} 0.0' in text  # every reason, from 0
