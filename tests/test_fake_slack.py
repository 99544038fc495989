"""The fake Slack server, exercised with the real slack_sdk (never stubbed)."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack_server import (
    RESPONSE_URL,
    SOCKET,
    WEBHOOK,
    FakeSlack,
    sign_slash_command,
    slash_command_form,
)

CHANNEL = "C123"
METADATA = {"event_type": "newsbot_delivery", "event_payload": {"key": "k1"}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(CHANNEL, name="news")
        yield server


def web_client(fake: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, **kwargs)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# ------------------------------------------------------------------ Web API basics


async def test_auth_test_has_slack_shape(fake: FakeSlack) -> None:
    resp = await web_client(fake).auth_test()
    assert resp["ok"] is True
    assert resp["team_id"] == fake.team_id
    assert resp["user_id"] == fake.bot_user_id
    assert resp["bot_id"] == fake.bot_id
    assert resp["is_enterprise_install"] is False
    assert set(resp.data) >= {"url", "team", "user"}
    (call,) = fake.calls("auth.test")
    assert call.headers["Authorization"] == f"Bearer {fake.bot_token}"


async def test_post_message_then_history_with_and_without_metadata(fake: FakeSlack) -> None:
    client = web_client(fake)
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "News"}}, section("*x*")]
    posted = await client.chat_postMessage(
        channel=CHANNEL, text="fallback", blocks=blocks, metadata=METADATA
    )
    assert posted["channel"] == CHANNEL
    assert posted["message"]["type"] == "message"
    assert posted["message"]["bot_id"] == fake.bot_id
    assert posted["message"]["blocks"] == blocks
    (call,) = fake.calls("chat.postMessage")
    assert call.content_type == "application/json"  # slack_sdk sends chat.* as JSON
    assert call.body["metadata"] == METADATA
    (stored,) = fake.messages(CHANNEL)
    assert stored["ts"] == posted["ts"]
    assert stored["metadata"] == METADATA

    second = await client.chat_postMessage(channel=CHANNEL, text="second")
    assert float(second["ts"]) > float(posted["ts"])

    with_meta = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    msgs = with_meta["messages"]
    assert [m["ts"] for m in msgs] == [second["ts"], posted["ts"]]  # newest first
    assert msgs[1]["metadata"] == METADATA
    assert "metadata" not in msgs[0]
    assert with_meta["has_more"] is False

    plain = await client.conversations_history(channel=CHANNEL)
    assert all("metadata" not in m for m in plain["messages"])
    (first_call, _) = fake.calls("conversations.history")
    assert first_call.http_method == "GET"  # slack_sdk sends history as GET + query string
    assert first_call.query["include_all_metadata"] == "1"


async def test_history_paging_and_window(fake: FakeSlack) -> None:
    client = web_client(fake)
    tss = [(await client.chat_postMessage(channel=CHANNEL, text=f"m{i}"))["ts"] for i in range(3)]
    page1 = await client.conversations_history(channel=CHANNEL, limit=2)
    assert [m["ts"] for m in page1["messages"]] == [tss[2], tss[1]]
    assert page1["has_more"] is True
    cursor = page1["response_metadata"]["next_cursor"]
    page2 = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
    assert [m["ts"] for m in page2["messages"]] == [tss[0]]
    assert page2["has_more"] is False
    window = await client.conversations_history(channel=CHANNEL, oldest=tss[0], latest=tss[2])
    assert [m["ts"] for m in window["messages"]] == [tss[1]]
    recent = await client.conversations_history(channel=CHANNEL, oldest=str(time.time() - 3600))
    assert len(recent["messages"]) == 3  # ts values are wall-clock based, like Slack's


async def test_chat_update(fake: FakeSlack) -> None:
    client = web_client(fake)
    posted = await client.chat_postMessage(channel=CHANNEL, text="v1")
    updated = await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="v2")
    assert updated["ts"] == posted["ts"]
    assert fake.messages(CHANNEL)[0]["text"] == "v2"
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="v3")
    assert exc.value.response["error"] == "message_not_found"


async def test_users_info_for_permission_checks(fake: FakeSlack) -> None:
    fake.add_user("U0ADMIN", is_admin=True)
    fake.add_user("U0PLAIN")
    client = web_client(fake)
    admin = await client.users_info(user="U0ADMIN")
    assert admin["user"]["is_admin"] is True
    plain = await client.users_info(user="U0PLAIN")
    assert plain["user"]["is_admin"] is False
    assert plain["user"]["is_owner"] is False
    assert plain["user"]["is_bot"] is False
    with pytest.raises(SlackApiError) as exc:
        await client.users_info(user="U0NOBODY")
    assert exc.value.response["error"] == "user_not_found"


# ------------------------------------------------------------------ errors


async def test_auth_errors(fake: FakeSlack) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as exc:
        await bad.chat_postMessage(channel=CHANNEL, text="x")
    assert exc.value.response.status_code == 200
    assert exc.value.response["error"] == "invalid_auth"

    missing = AsyncWebClient(base_url=fake.api_url)
    with pytest.raises(SlackApiError) as exc:
        await missing.auth_test()
    assert exc.value.response["error"] == "not_authed"

    fake.invalidate_token(fake.bot_token, "account_inactive")
    with pytest.raises(SlackApiError) as exc:
        await web_client(fake).auth_test()
    assert exc.value.response["error"] == "account_inactive"
    assert fake.messages(CHANNEL) == []


async def test_channel_errors(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.add_channel("C0ARCHIVED", is_archived=True)
    fake.add_channel("C0NOTIN", is_member=False)

    expected = {"C0UNKNOWN": "channel_not_found", "C0ARCHIVED": "is_archived"}
    expected["C0NOTIN"] = "not_in_channel"
    for channel, error in expected.items():
        with pytest.raises(SlackApiError) as exc:
            await client.chat_postMessage(channel=channel, text="x")
        assert exc.value.response.status_code == 200
        assert exc.value.response["error"] == error

    fake.scopes.discard("chat:write")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert exc.value.response["error"] == "missing_scope"
    assert exc.value.response["needed"] == "chat:write"


async def test_invalid_blocks(fake: FakeSlack) -> None:
    client = web_client(fake)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(
            channel=CHANNEL, text="x", blocks=[section("a") for _ in range(51)]
        )
    assert exc.value.response["error"] == "invalid_blocks"
    assert exc.value.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 51 items [json-pointer:/blocks]"
    ]

    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[section("a" * 3001)])
    assert exc.value.response["error"] == "invalid_blocks"
    assert exc.value.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]

    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[header, context])
    assert exc.value.response["errors"] == [
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        "must be less than 11 items [json-pointer:/blocks/1/elements]",
    ]

    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks="[not json")
    assert exc.value.response["error"] == "invalid_blocks_format"

    # chat_postMessage() without text emits a UserWarning (an error in this suite): go raw.
    with pytest.raises(SlackApiError) as exc:
        await client.api_call("chat.postMessage", json={"channel": CHANNEL, "blocks": []})
    assert exc.value.response["error"] == "no_text"

    await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[section("a" * 3000)])
    assert len(fake.messages(CHANNEL)) == 1


# ------------------------------------------------------------------ faults


async def test_429_once_is_retried_after_retry_after(fake: FakeSlack) -> None:
    fault = fake.inject("chat.postMessage", status=429, retry_after=1, times=1)
    client = web_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    resp = await client.chat_postMessage(channel=CHANNEL, text="hello")
    assert resp["ok"] is True
    first, retry = fake.calls("chat.postMessage")
    assert first.status == 429
    assert first.response == {"ok": False, "error": "ratelimited"}
    assert first.response_headers["Retry-After"] == "1"
    assert first.fault is fault
    assert retry.status == 200
    assert retry.received_at - first.received_at >= 1.0
    assert len(fake.messages(CHANNEL)) == 1


async def test_429_without_handler_surfaces_status_and_header(fake: FakeSlack) -> None:
    fake.rate_limit("chat.postMessage", per_second=1.0, burst=1)
    client = web_client(fake, retry_handlers=[])
    await client.chat_postMessage(channel=CHANNEL, text="one")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel=CHANNEL, text="two")
    assert exc.value.response.status_code == 429
    assert exc.value.response["error"] == "ratelimited"
    assert exc.value.response.headers["Retry-After"] == "1"
    assert len(fake.messages(CHANNEL)) == 1


async def test_500_once_is_retried(fake: FakeSlack) -> None:
    fake.inject("chat.postMessage", status=500)
    handler = AsyncServerErrorRetryHandler(
        max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.1)
    )
    client = web_client(fake, retry_handlers=[handler])
    resp = await client.chat_postMessage(channel=CHANNEL, text="hello")
    assert resp["ok"] is True
    statuses = [c.status for c in fake.calls("chat.postMessage")]
    assert statuses == [500, 200]
    assert fake.calls("chat.postMessage")[0].response == {"ok": False, "error": "internal_error"}
    assert len(fake.messages(CHANNEL)) == 1


async def test_injected_error_code_is_permanent(fake: FakeSlack) -> None:
    fake.inject("chat.postMessage", error="channel_not_found", channel="C0OTHER", times=None)
    fake.add_channel("C0OTHER")
    client = web_client(fake)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C0OTHER", text="x")
    assert exc.value.response.status_code == 200
    assert exc.value.response["error"] == "channel_not_found"
    await client.chat_postMessage(channel=CHANNEL, text="other channels unaffected")
    assert len(fake.messages(CHANNEL)) == 1


async def test_held_answer_is_processed_before_release(fake: FakeSlack) -> None:
    fault = fake.inject("chat.postMessage", hold=True)
    client = web_client(fake)
    task = asyncio.create_task(client.chat_postMessage(channel=CHANNEL, text="slow"))
    await fault.wait_hit()
    (call,) = await fake.wait_for_call("chat.postMessage")
    assert call.status is None  # still in flight ...
    assert len(fake.messages(CHANNEL)) == 1  # ... but Slack already stored the message
    assert not task.done()
    fault.release()
    resp = await task
    assert resp["ts"] == fake.messages(CHANNEL)[0]["ts"]


async def test_delayed_answer_times_out_client(fake: FakeSlack) -> None:
    fake.inject("auth.test", delay=3.0)
    client = web_client(fake, timeout=1, retry_handlers=[])
    with pytest.raises(asyncio.TimeoutError):
        await client.auth_test()


async def test_dropped_connection_default_handlers_duplicate_a_post(fake: FakeSlack) -> None:
    # The message is stored, then the connection is cut before the answer. slack_sdk's default
    # AsyncConnectionErrorRetryHandler resends the POST once: Slack now shows it twice.
    fake.inject("chat.postMessage", drop=True, process=True)
    resp = await web_client(fake).chat_postMessage(channel=CHANNEL, text="once?")
    assert resp["ok"] is True
    first, second = fake.calls("chat.postMessage")
    assert first.dropped and second.status == 200
    assert len(fake.messages(CHANNEL)) == 2


async def test_dropped_connection_without_retry_raises(fake: FakeSlack) -> None:
    fake.inject("chat.postMessage", drop=True)
    client = web_client(fake, retry_handlers=[])
    with pytest.raises(Exception) as exc:  # aiohttp.ServerDisconnectedError
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert type(exc.value).__name__ == "ServerDisconnectedError"
    assert fake.messages(CHANNEL) == []


# ------------------------------------------------------------------ Socket Mode


async def test_socket_mode_slash_command_and_ack(fake: FakeSlack) -> None:
    client = SocketModeClient(app_token=fake.app_token, web_client=web_client(fake))
    received: asyncio.Queue[SocketModeRequest] = asyncio.Queue()

    async def on_request(sm: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        if req.type == "slash_commands":
            ack = SocketModeResponse(envelope_id=req.envelope_id, payload={"text": "ok"})
            await sm.send_socket_mode_response(ack)
            await received.put(req)

    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()  # type: ignore[no-untyped-call]
        conn = await fake.wait_for_socket()
        assert conn.ws is not None
        (opened,) = fake.calls("apps.connections.open")
        assert opened.token == fake.app_token
        assert len(fake.calls(SOCKET)) == 1

        envelope_id = await fake.send_slash_command(
            command="/news", text="AI", channel_id=CHANNEL, user_id="U0ALICE"
        )
        ack = await fake.wait_for_ack(envelope_id, timeout=5)
        assert ack == {"envelope_id": envelope_id, "payload": {"text": "ok"}}
        latency = fake.ack_latency(envelope_id)
        assert latency is not None and latency < 3.0
        req = await asyncio.wait_for(received.get(), timeout=5)
        assert req.accepts_response_payload is True
        assert req.payload["command"] == "/news"
        assert req.payload["text"] == "AI"
        assert req.payload["channel_id"] == CHANNEL
        assert req.payload["user_id"] == "U0ALICE"
        assert req.payload["team_id"] == fake.team_id
        assert req.payload["response_url"].startswith(f"{fake.base_url}/response/")

        # refresh_requested: the client asks apps.connections.open again and reconnects
        await fake.send_disconnect("refresh_requested")
        await fake.wait_for_socket(count=2)
        assert len(fake.calls("apps.connections.open")) == 2
        again = await fake.send_slash_command(text="again")
        assert (await fake.wait_for_ack(again))["envelope_id"] == again
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    await fake.stop()
    assert fake.socket_connections == []


async def test_socket_mode_rejects_bot_token_for_connections_open(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as exc:
        await web_client(fake).apps_connections_open(app_token=fake.bot_token)
    assert exc.value.response["error"] == "not_allowed_token_type"


# ------------------------------------------------------------------ webhooks, response_url


async def test_incoming_webhook(fake: FakeSlack) -> None:
    url = fake.add_incoming_webhook(channel=CHANNEL)
    assert url.startswith(f"{fake.base_url}/services/{fake.team_id}/B")
    resp = await AsyncWebhookClient(url).send(text="hello", blocks=[section("hi")])
    assert resp.status_code == 200
    assert resp.body == "ok"
    (post,) = await fake.wait_for_webhook(url)
    assert post["text"] == "hello"
    assert fake.messages(CHANNEL)[0]["text"] == "hello"
    (call,) = fake.calls(WEBHOOK)
    assert call.content_type == "application/json"

    revoked = url.rsplit("/", 1)[0] + "/notTheSecret"
    resp = await AsyncWebhookClient(revoked).send(text="x")
    assert (resp.status_code, resp.body) == (404, "no_service")

    fake.webhook(url).error = "channel_is_archived"
    resp = await AsyncWebhookClient(url).send(text="x")
    assert (resp.status_code, resp.body) == (410, "channel_is_archived")

    fake.webhook(url).error = None
    fake.inject(WEBHOOK, status=429, retry_after=1)
    resp = await AsyncWebhookClient(url).send(text="x")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "1"
    assert len(fake.webhook_posts(url)) == 1


async def test_response_url(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    client = AsyncWebhookClient(url)
    resp = await client.send(text="working on it", response_type="ephemeral")
    assert resp.status_code == 200
    got = await fake.wait_for_response(url, timeout=5)
    assert got == {"text": "working on it", "response_type": "ephemeral"}
    assert fake.calls(RESPONSE_URL)[0].path.endswith(url.rsplit("/", 1)[-1])
    for i in range(4):
        await client.send(text=f"follow-up {i}", replace_original=True)
    resp = await client.send(text="sixth")
    assert resp.status_code == 404
    assert "used_url" in resp.body
    assert len(fake.responses(url)) == 5


# ------------------------------------------------------------------ HTTP slash commands


async def test_signed_slash_command_verifies(fake: FakeSlack) -> None:
    form = slash_command_form(
        "/news", "subscribe AI & ML", CHANNEL, "U0ALICE", fake.new_response_url()
    )
    assert list(form)[:3] == ["token", "team_id", "team_domain"]
    assert form["is_enterprise_install"] == "false"
    ts = int(time.time())
    body, headers = sign_slash_command(fake.signing_secret, form, ts)
    assert dict(urllib.parse.parse_qsl(body.decode())) == form
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"

    verifier = SignatureVerifier(fake.signing_secret)
    sig = headers["X-Slack-Signature"]
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], sig)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid(body + b"x", str(ts), sig)
    assert not SignatureVerifier("other-secret").is_valid(body, str(ts), sig)
    stale_body, stale_headers = sign_slash_command(fake.signing_secret, form, ts - 301)
    assert not verifier.is_valid_request(stale_body, stale_headers)

    own_body, own_headers = fake.sign(fake.slash_command_form("/news", "list"))
    assert verifier.is_valid_request(own_body, own_headers)
