"""bot/platforms/slack_commands.py: `/news` text parsing, Block Kit replies, who may manage a
channel, and the 3-second budget, on a real SQLite state and the real slack_sdk with FakeSlack."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.articles import parse_article
from bot.commands import Commands
from bot.platforms.slack_commands import (
    USAGE,
    BadInput,
    FindNews,
    ManagePolicy,
    ShowHelp,
    ShowSubscriptions,
    ShowTopics,
    SlackCommands,
    Subscribe,
    Unsubscribe,
    parse_command_text,
    text_reply,
    usage_reply,
    users_info_lookup,
)
from bot.render import RenderStyle
from bot.routing import RoutingDefaults
from bot.state import State
from bot.store import FileOutcome, FileStamp
from tests.conftest import FakeClock
from tests.fakes.slack_server import FakeSlack, validate_blocks

CHANNEL = "C0NEWS0001"


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ShowHelp()),
        ("   ", ShowHelp()),
        ("help", ShowHelp()),
        ("HELP", ShowHelp()),
        ("list", ShowSubscriptions()),
        ("subscriptions", ShowSubscriptions()),
        ("topics", ShowTopics()),
        ("AI", FindNews("AI")),
        ("AI 10", FindNews("AI", 10)),
        ("  AI   3 ", FindNews("AI", 3)),
        ("Machine Learning", FindNews("Machine Learning")),
        ("Machine   Learning 7", FindNews("Machine Learning", 7)),
        ("AI &amp; Ethics", FindNews("AI & Ethics")),
        ('"Web 3"', FindNews("Web 3")),
        ('"Web 3" 2', FindNews("Web 3", 2)),
        ("“Web 3” 4", FindNews("Web 3", 4)),
        ('"help"', FindNews("help")),
        ("42", FindNews("42")),
        ("AI 0", FindNews("AI", 0)),  # the count's range is checked by the commands module
        ("subscribe AI", Subscribe("AI")),
        ("Subscribe AI 60", Subscribe("AI", 60.0)),
        ("subscribe Machine Learning 62.5", Subscribe("Machine Learning", 62.5)),
        ("subscribe Machine Learning", Subscribe("Machine Learning")),
        ("subscribe AI -5", Subscribe("AI", -5.0)),  # refused by the commands module
        ('subscribe "Web 3"', Subscribe("Web 3")),
        ("unsubscribe AI", Unsubscribe("AI")),
        ("unsubscribe Machine Learning", Unsubscribe("Machine Learning")),
        ("unsubscribe Web 3", Unsubscribe("Web 3")),
    ],
)
def test_parse(text: str, expected: object) -> None:
    assert parse_command_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["subscribe", "unsubscribe", "list all", "help me", "topics AI", "AI 2.5", "AI -3",
     '"Web 3" soon', 'subscribe ""', "subscribe   "],
)
def test_bad_input(text: str) -> None:
    assert isinstance(parse_command_text(text), BadInput)


# --- replies ----------------------------------------------------------------------------------


def assert_valid(payload: dict[str, Any]) -> None:
    assert validate_blocks(payload["blocks"]) == []
    assert payload["text"]
    assert payload["response_type"] in ("ephemeral", "in_channel")


def test_a_long_reply_is_split_into_valid_sections() -> None:
    lines = "\n".join(f"- topic number {i} " + "x" * 80 for i in range(200))
    payload = text_reply(lines + "\n" + "y" * 5000)
    assert_valid(payload)
    assert len(payload["blocks"]) > 1


# --- answering with a real state --------------------------------------------------------------


def article_file(n: int, topic: str, published: str) -> FileOutcome:
    text = (
        f'---\ntitle: "Story {n} about {topic}"\nwebUrl: https://example.com/{n}\n'
        f"quality: 80\npublishedDateTime: {published}\ntopics: [{topic}]\n---\n"
    )
    article = parse_article(text.encode(), f"{n}.md")
    return FileOutcome(f"{n}.md", FileStamp(len(text), n), article=article)


@pytest.fixture
async def state(tmp_path: Path, clock: FakeClock) -> AsyncIterator[State]:
    state = await State.open(tmp_path / "bot.db", clock)
    await state.record_files(
        [
            article_file(1, "AI", "2026-11-01T08:00:00Z"),
            article_file(2, "AI", "2026-11-03T08:00:00Z"),
            article_file(3, "Machine Learning", "2026-11-02T08:00:00Z"),
            article_file(4, "Robotics", "2026-11-04T08:00:00Z"),
        ]
    )
    yield state
    await state.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(CHANNEL)
        server.add_user("U0ADMIN01", is_admin=True)
        server.add_user("U0OWNER01", is_owner=True)
        server.add_user("U0MEMBER1")
        yield server


def handler_for(
    state: State,
    clock: FakeClock,
    policy: ManagePolicy | None = None,
    ack_budget_s: float = 2.0,
) -> SlackCommands:
    commands = Commands(state, RoutingDefaults(min_quality=40.0), clock)
    policy = policy or ManagePolicy("anyone", (), None, clock)
    return SlackCommands(commands, policy, RenderStyle(), ack_budget_s=ack_budget_s)


def form(text: str, user: str = "U0MEMBER1", response_url: str = "") -> dict[str, str]:
    return {
        "command": "/news", "text": text, "channel_id": CHANNEL, "user_id": user,
        "response_url": response_url,
    }


def all_text(payload: dict[str, Any]) -> str:
    parts = [payload["text"]]
    for block in payload["blocks"]:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            parts.append(element.get("text", ""))
    return "\n".join(parts)


async def test_news_lists_the_topics_articles_newest_first(
    state: State, clock: FakeClock
) -> None:
    payload = await handler_for(state, clock).answer(form("ai"))
    assert_valid(payload)
    assert payload["response_type"] == "ephemeral"
    text = all_text(payload)
    assert text.index("Story 2 about AI") < text.index("Story 1 about AI")
    assert "Robotics" not in text and "Machine Learning" not in text


async def test_news_multi_word_topic_and_count(state: State, clock: FakeClock) -> None:
    handler = handler_for(state, clock)
    payload = await handler.answer(form("Machine Learning 1"))
    assert "Story 3 about Machine Learning" in all_text(payload)
    one = await handler.answer(form("AI 1"))
    assert "Story 2" in all_text(one) and "Story 1" not in all_text(one)


async def test_news_bad_count_gets_the_usage(state: State, clock: FakeClock) -> None:
    payload = await handler_for(state, clock).answer(form("AI 50"))
    assert_valid(payload)
    assert "between 1 and 10" in all_text(payload)
    assert "/news subscribe" in all_text(payload)
    assert payload["response_type"] == "ephemeral"


async def test_help_and_bad_input_get_the_usage(state: State, clock: FakeClock) -> None:
    handler = handler_for(state, clock)
    for text in ("help", "", "subscribe", "list everything"):
        payload = await handler.answer(form(text))
        assert_valid(payload)
        assert payload["response_type"] == "ephemeral"
        assert "/news unsubscribe <topic>" in all_text(payload).replace("&lt;", "<").replace(
            "&gt;", ">"
        )
    assert "`/news help`" in USAGE


async def test_unknown_topic_suggests(state: State, clock: FakeClock) -> None:
    payload = await handler_for(state, clock).answer(form("Robotic"))
    assert "Did you mean Robotics?" in all_text(payload)


async def test_user_text_cannot_mention_the_channel(state: State, clock: FakeClock) -> None:
    payload = await handler_for(state, clock).answer(form("<!channel> &lt;@U0BOSS&gt;"))
    text = all_text(payload)
    assert "<!channel>" not in text and "<@U0BOSS>" not in text
    assert "&lt;!channel&gt;" in text


async def test_subscribe_list_unsubscribe(state: State, clock: FakeClock) -> None:
    handler = handler_for(state, clock)
    subscribed = await handler.answer(form("subscribe Machine Learning 60"))
    assert_valid(subscribed)
    assert subscribed["response_type"] == "in_channel"
    assert "Subscribed" in subscribed["text"]
    (sub,) = await state.subscriptions("slack", CHANNEL)
    assert sub.topics == ("Machine Learning",) and sub.min_quality == 60

    listed = await handler.answer(form("list"))
    assert listed["response_type"] == "ephemeral"
    assert "Machine Learning; quality ≥ 60" in all_text(listed)

    topics = await handler.answer(form("topics"))
    assert "AI (2)" in all_text(topics) and topics["response_type"] == "ephemeral"

    gone = await handler.answer(form("unsubscribe machine learning"))
    assert gone["response_type"] == "in_channel" and "Unsubscribed" in gone["text"]
    assert await state.subscriptions("slack", CHANNEL) == []
    again = await handler.answer(form("unsubscribe Machine Learning"))
    assert again["response_type"] == "ephemeral" and "not subscribed" in again["text"]


# --- permissions ------------------------------------------------------------------------------


async def test_users_mode(state: State, clock: FakeClock) -> None:
    policy = ManagePolicy("users", ("U0BOSS", "U0EDITOR"), None, clock)
    handler = handler_for(state, clock, policy)
    refused = await handler.answer(form("subscribe AI", user="U0MEMBER1"))
    assert refused["response_type"] == "ephemeral"
    assert "may change its subscriptions" in refused["text"]
    assert await state.subscriptions() == []
    accepted = await handler.answer(form("subscribe AI", user="U0EDITOR"))
    assert "Subscribed" in accepted["text"]
    refused_un = await handler.answer(form("unsubscribe AI", user="U0MEMBER1"))
    assert "may change" in refused_un["text"]
    assert len(await state.subscriptions()) == 1
    # Reading is open to everyone in every mode.
    assert "AI" in all_text(await handler.answer(form("list", user="U0MEMBER1")))


async def test_admins_mode_asks_slack(fake: FakeSlack, state: State, clock: FakeClock) -> None:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
    policy = ManagePolicy("admins", (), users_info_lookup(client), clock)
    assert await policy.can_manage("U0ADMIN01")
    assert await policy.can_manage("U0OWNER01")
    assert not await policy.can_manage("U0MEMBER1")
    assert not await policy.can_manage("U0NOBODY1")  # user_not_found: refuse
    calls = len(fake.calls("users.info"))
    assert await policy.can_manage("U0ADMIN01")  # cached for a minute
    assert len(fake.calls("users.info")) == calls
    clock.advance(61)
    fake.scopes.discard("users:read")
    assert not await policy.can_manage("U0ADMIN01")  # no users:read: refuse, never guess

    handler = handler_for(state, clock, ManagePolicy("admins", (), users_info_lookup(client),
                                                     clock))
    refused = await handler.answer(form("subscribe AI", user="U0ADMIN01"))
    assert "may change" in refused["text"]
    assert await state.subscriptions() == []


async def test_anyone_mode_never_asks_slack(fake: FakeSlack, clock: FakeClock) -> None:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    policy = ManagePolicy("anyone", (), users_info_lookup(client), clock)
    assert await policy.can_manage("U0MEMBER1")
    assert fake.calls("users.info") == []


# --- the 3-second budget ----------------------------------------------------------------------


async def test_a_slow_answer_acks_then_follows_up_on_response_url(
    fake: FakeSlack, state: State, clock: FakeClock
) -> None:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
    policy = ManagePolicy("admins", (), users_info_lookup(client), clock)
    handler = handler_for(state, clock, policy, ack_budget_s=0.05)
    fault = fake.inject("users.info", hold=True)
    url = fake.new_response_url()
    ack = await handler.answer(form("subscribe AI", user="U0ADMIN01", response_url=url))
    assert "Working on it" in ack["text"] and ack["response_type"] == "ephemeral"
    assert await state.subscriptions() == []
    fault.release()
    follow_up = await fake.wait_for_response(url)
    assert follow_up["response_type"] == "in_channel"
    assert "Subscribed" in follow_up["text"]
    assert len(await state.subscriptions()) == 1
    await handler.aclose()


async def test_a_failure_answers_politely(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    state = await State.open(tmp_path / "other.db", clock)
    handler = handler_for(state, clock)
    await state.aclose()  # every query now fails
    payload = await handler.answer(form("AI"))
    assert "failed on our side" in payload["text"]
    assert "the /news command failed" in caplog.text


# --- the signed HTTP endpoint, on a clock moved by hand ----------------------------------------


async def test_http_endpoint_checks_signature_and_age(clock: FakeClock) -> None:
    import aiohttp

    from bot.web import HttpServer, create_app
    from tests.fakes.slack_server import sign_slash_command

    received: list[dict[str, str]] = []

    async def answer(form: Mapping[str, str]) -> dict[str, Any]:
        received.append(dict(form))
        return text_reply("pong")

    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    from bot.platforms.slack_commands import request_check

    app = create_app(slash_answer=answer, verify_request=request_check(secret, clock))
    server = await HttpServer.start(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    signed_at = int(clock.time())
    body, headers = sign_slash_command(secret, form("list"), signed_at)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/slack/commands", data=body, headers=headers) as ok:
                assert ok.status == 200
                assert (await ok.json())["text"] == "pong"
            clock.advance(301)  # the same request, replayed five minutes later
            async with session.post(f"{url}/slack/commands", data=body, headers=headers) as late:
                assert late.status == 401
            async with session.get(f"{url}/healthz") as health:
                assert await health.text() == "ok"
            async with session.get(f"{url}/readyz") as ready:
                assert ready.status == 200  # no checks given: ready
    finally:
        await server.aclose()
    assert [f["text"] for f in received] == ["list"]


async def test_readyz_reports_failed_checks() -> None:
    import aiohttp

    from bot.web import HttpServer, create_app

    async def readiness() -> dict[str, bool]:
        return {"store": True, "platform:slack": False}

    server = await HttpServer.start(create_app(readiness=readiness), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.port}/readyz"
        ) as ready:
            assert ready.status == 503
            assert await ready.json() == {
                "ready": False, "checks": {"store": True, "platform:slack": False}
            }
            async with session.post(f"http://127.0.0.1:{server.port}/slack/commands") as none:
                assert none.status in (404, 405)  # no command endpoint without a handler
    finally:
        await server.aclose()


# --- Socket Mode: a spent connection URL is replaced --------------------------------------------


async def test_socket_mode_recovers_from_a_spent_url(
    fake: FakeSlack, state: State, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slack_sdk.socket_mode.aiohttp import SocketModeClient

    from bot.platforms import slack_commands

    monkeypatch.setattr(slack_commands, "SOCKET_CONNECT_TIMEOUT_S", 0.3)
    web = AsyncWebClient(base_url=fake.api_url, retry_handlers=[])
    client = SocketModeClient(app_token=fake.app_token, web_client=web)
    client.wss_uri = f"ws://127.0.0.1:{fake.port}/socket?ticket=already-used"
    receiver = slack_commands.SocketModeReceiver(client, handler_for(state, clock))
    connecting = asyncio.create_task(receiver._run_connect())
    try:
        await fake.wait_for_socket()
        envelope = await fake.send_slash_command("/news", "topics", channel_id=CHANNEL)
        ack = await fake.wait_for_ack(envelope)
        assert "AI (2)" in ack["payload"]["text"]
        await connecting
    finally:
        receiver._connect = connecting
        await receiver.aclose()
    assert len(fake.calls("apps.connections.open")) == 1  # the fresh URL, after the spent one


# --- every reply is valid mrkdwn: `&`, `<` and `>` escaped but in Slack syntax we write ---------

# Our own `<…>`: a link `<https://…|label>` and a date `<!date^epoch^format|fallback>`.
OUR_SYNTAX = re.compile(r"<(?:https?://[^<>|\s]+\|[^<>]*|!date\^\d+\^[^<>|]*\|[^<>]*)>")
BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def mrkdwn_texts(node: object) -> Iterator[str]:
    """The top-level fallback `text` and every mrkdwn text object, anywhere in a payload."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" or "response_type" in node:
            text = node.get("text")
            if isinstance(text, str):
                yield text
        for value in node.values():
            yield from mrkdwn_texts(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from mrkdwn_texts(item)


def assert_escaped(payload: dict[str, Any]) -> None:
    texts = list(mrkdwn_texts(payload))
    assert texts
    for text in texts:
        ours_removed = OUR_SYNTAX.sub("", text)
        assert "<" not in ours_removed and ">" not in ours_removed, text
        assert not BARE_AMPERSAND.search(ours_removed), text


async def test_every_reply_escapes_what_slack_would_read_as_markup(
    state: State, clock: FakeClock, tmp_path: Path
) -> None:
    hostile = (
        '---\ntitle: "AT&T <b>bold</b> & <!here> <@U0BOSS>"\nwebUrl: https://example.com/h?a=1&b=2\n'
        'quality: 80\npublishedDateTime: 2026-11-05T08:00:00Z\ntopics: ["AI"]\n'
        'excerpt: "x < y > z & <https://evil.example|click>"\n---\n'
    )
    await state.record_files(
        [FileOutcome("h.md", FileStamp(len(hostile), 9),
                     article=parse_article(hostile.encode(), "h.md"))]
    )
    handler = handler_for(state, clock)
    texts = [
        "", "help", "subscribe", "unsubscribe", "list everything", "topics AI", "AI 2.5",
        '"Web 3" soon', 'subscribe ""', "ai", "AI 50", "ai " + "7" * 5000, "Robotic",
        "<!channel> &lt;@U0BOSS&gt; & co", "subscribe a&lt;b&gt;&amp;c", "subscribe AI",
        "list", "topics", "unsubscribe AI", "unsubscribe AI", "x" * 300,
    ]
    for text in texts:
        assert_escaped(await handler.answer(form(text)))
    for problem in ("`<x>` & more", "plain"):
        assert_escaped(usage_reply(problem))
    refusing = handler_for(state, clock, ManagePolicy("users", ("U0BOSS",), None, clock))
    assert_escaped(await refusing.answer(form("subscribe AI")))
    slow = handler_for(state, clock, ack_budget_s=0.0)
    assert_escaped(await slow.answer(form("help")))  # "working on it"
    await slow.aclose()
    broken_state = await State.open(tmp_path / "closed.db", clock)
    broken = handler_for(broken_state, clock)
    await broken_state.aclose()
    assert_escaped(await broken.answer(form("AI")))  # "failed on our side"


async def test_a_subscription_made_where_the_bot_cannot_post_is_parked_at_once(
    state: State, clock: FakeClock
) -> None:
    """Commands over Socket Mode with no bot token: the subscription is made, parked for the
    missing token (so a start with the token resumes it), and the reply says why."""
    from bot.credentials import Secrets, Target, blocked

    secrets = Secrets({"SLACK_APP_TOKEN": "xapp-1-present"})
    commands = Commands(
        state, RoutingDefaults(min_quality=40.0), clock,
        blocked=lambda platform, channel: blocked(Target(platform, channel), secrets),
    )
    handler = SlackCommands(commands, ManagePolicy("anyone", (), None, clock), RenderStyle())
    payload = await handler.answer(form("subscribe AI"))
    assert "SLACK_BOT_TOKEN" in all_text(payload)
    (sub,) = await state.subscriptions("slack", CHANNEL)
    assert sub.parked_for == "SLACK_BOT_TOKEN"
    assert sub.parked_reason and "SLACK_BOT_TOKEN (or SLACK_BOT_TOKEN_FILE)" in sub.parked_reason
