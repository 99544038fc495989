"""bot/platforms/slack.py: the Slack notifier through the real slack_sdk against FakeSlack."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.config import SlackConfig
from bot.platforms.base import FailureScope, PermanentError, SentRef, TransientError
from bot.platforms.slack import (
    METADATA_EVENT_TYPE,
    SlackNotifier,
    create_slack_notifier,
    webhook_env_name,
)
from bot.render import RenderStyle, render_slack
from tests.conftest import FakeClock
from tests.fakes.slack_server import WEBHOOK, FakeSlack, validate_blocks

DATA = Path(__file__).parent / "data" / "articles"
CHANNEL = "C0NEWS0001"
KEY = f"slack:{CHANNEL}:https://example.com/story"


def load(name: str = "seed-amazon-moratorium.md") -> Article:
    path = DATA / name
    return parse_article(path.read_bytes(), path.name)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(CHANNEL, name="news")
        yield server


def notifier_for(
    fake: FakeSlack, clock: FakeClock, environ: dict[str, str] | None = None
) -> SlackNotifier:
    env = {"SLACK_BOT_TOKEN": fake.bot_token, **(environ or {})}
    return create_slack_notifier(
        env["SLACK_BOT_TOKEN"], SlackConfig(api_base_url=fake.api_url), RenderStyle(), env, clock
    )


@pytest.fixture
def notifier(fake: FakeSlack, clock: FakeClock) -> SlackNotifier:
    return notifier_for(fake, clock)


# --- start ------------------------------------------------------------------------------------


async def test_start_checks_the_token(fake: FakeSlack, notifier: SlackNotifier) -> None:
    await notifier.start()
    assert notifier.bot_user_id == fake.bot_user_id
    assert notifier.team_id == fake.team_id
    assert [c.method for c in fake.calls()] == ["auth.test"]


@pytest.mark.parametrize("error", ["invalid_auth", "account_inactive", "token_revoked"])
async def test_start_stops_on_a_refused_token(
    fake: FakeSlack, notifier: SlackNotifier, error: str
) -> None:
    fake.invalidate_token(fake.bot_token, error)
    with pytest.raises(PermanentError) as raised:
        await notifier.start()
    assert raised.value.scope is FailureScope.PLATFORM
    assert "SLACK_BOT_TOKEN" in raised.value.reason and error in raised.value.reason
    assert fake.bot_token not in raised.value.reason


async def test_start_with_a_wrong_token(fake: FakeSlack, clock: FakeClock) -> None:
    wrong = notifier_for(fake, clock, {"SLACK_BOT_TOKEN": "xoxb-not-the-token"})
    with pytest.raises(PermanentError) as raised:
        await wrong.start()
    assert "invalid_auth" in raised.value.reason
    assert "xoxb-not-the-token" not in str(raised.value)


async def test_start_with_an_app_token_in_the_bot_slot(fake: FakeSlack, clock: FakeClock) -> None:
    wrong = notifier_for(fake, clock, {"SLACK_BOT_TOKEN": fake.app_token})
    with pytest.raises(PermanentError) as raised:
        await wrong.start()
    assert "not_allowed_token_type" in raised.value.reason
    assert "xapp" in raised.value.reason and fake.app_token not in raised.value.reason


async def test_start_survives_an_unreachable_slack(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    fake.inject("auth.test", status=503)
    await notifier.start()  # warns only; the posts wait in the outbox


async def test_without_a_token_only_webhooks_post_and_a_channel_id_names_the_variable(
    fake: FakeSlack, clock: FakeClock
) -> None:
    hook = fake.add_incoming_webhook(CHANNEL)
    env = {"SLACK_WEBHOOK_ALERTS": hook}
    notifier = create_slack_notifier(
        None, SlackConfig(api_base_url=fake.api_url), RenderStyle(), env, clock
    )
    await notifier.start()  # nothing to check without a token
    assert fake.calls("auth.test") == []
    with pytest.raises(PermanentError) as refused:
        await notifier.send(KEY, CHANNEL, load())
    assert refused.value.scope is FailureScope.CHANNEL
    assert "SLACK_BOT_TOKEN (or SLACK_BOT_TOKEN_FILE)" in refused.value.reason
    assert await notifier.find_sent(KEY, CHANNEL) is None
    await notifier.send(KEY, "webhook:alerts", load())
    await fake.wait_for_webhook(hook)
    assert fake.calls("chat.postMessage") == []


# --- send -------------------------------------------------------------------------------------


async def test_send_posts_blocks_text_and_metadata(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    article = load()
    ref = await notifier.send(KEY, CHANNEL, article)
    (call,) = fake.calls("chat.postMessage")
    expected = render_slack(article, RenderStyle()).to_payload()
    assert call.body["channel"] == CHANNEL
    assert call.body["blocks"] == expected["blocks"]
    assert call.body["text"] == expected["text"] and call.body["text"]
    assert call.body["unfurl_links"] is False and call.body["unfurl_media"] is False
    assert call.body["metadata"] == {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"delivery_key": KEY},
    }
    assert validate_blocks(call.body["blocks"]) == []
    (stored,) = fake.messages(CHANNEL)
    assert ref == SentRef(message_id=stored["ts"])


Setup = Callable[[FakeSlack], object]

PERMANENT_CASES: list[tuple[str, Setup, FailureScope, str]] = [
    ("unknown channel", lambda f: f.remove_channel(CHANNEL), FailureScope.CHANNEL,
     "channel_not_found"),
    ("bot not in channel", lambda f: f.kick_bot(CHANNEL), FailureScope.CHANNEL, "not_in_channel"),
    ("archived", lambda f: f.archive_channel(CHANNEL), FailureScope.CHANNEL, "is_archived"),
    ("bad blocks", lambda f: f.inject("chat.postMessage", error="invalid_blocks"),
     FailureScope.DELIVERY, "invalid_blocks"),
    ("too long", lambda f: f.inject("chat.postMessage", error="msg_too_long"),
     FailureScope.DELIVERY, "msg_too_long"),
    ("bad arguments", lambda f: f.inject("chat.postMessage", error="invalid_arguments"),
     FailureScope.DELIVERY, "invalid_arguments"),
    ("wrong token", lambda f: f.invalidate_token(f.bot_token, "invalid_auth"),
     FailureScope.PLATFORM, "invalid_auth"),
    ("deactivated", lambda f: f.invalidate_token(f.bot_token, "account_inactive"),
     FailureScope.PLATFORM, "account_inactive"),
    ("revoked", lambda f: f.invalidate_token(f.bot_token, "token_revoked"),
     FailureScope.PLATFORM, "token_revoked"),
    ("no chat:write", lambda f: f.scopes.discard("chat:write"), FailureScope.PLATFORM,
     "missing_scope"),
]


@pytest.mark.parametrize(
    ("setup", "scope", "code"),
    [case[1:] for case in PERMANENT_CASES],
    ids=[case[0] for case in PERMANENT_CASES],
)
async def test_permanent_errors(
    fake: FakeSlack, notifier: SlackNotifier, setup: Setup, scope: FailureScope, code: str
) -> None:
    setup(fake)
    with pytest.raises(PermanentError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert raised.value.scope is scope
    assert code in raised.value.reason
    assert fake.bot_token not in raised.value.reason
    assert len(fake.calls("chat.postMessage")) == 1  # never retried blindly


async def test_invalid_blocks_keeps_slacks_pointer(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    fake.inject(
        "chat.postMessage",
        body={
            "ok": False,
            "error": "invalid_blocks",
            "response_metadata": {"messages": ["[ERROR] too long [json-pointer:/blocks/0]"]},
        },
    )
    with pytest.raises(PermanentError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert "json-pointer:/blocks/0" in raised.value.reason


async def test_429_is_transient_with_retry_after_and_no_hidden_retry(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    fake.inject("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(TransientError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert raised.value.retry_after_s == 7
    assert len(fake.calls("chat.postMessage")) == 1  # the outbox waits, not the SDK
    assert fake.messages(CHANNEL) == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    fake: FakeSlack, notifier: SlackNotifier, status: int
) -> None:
    fake.inject("chat.postMessage", status=status)
    with pytest.raises(TransientError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert raised.value.retry_after_s is None
    assert len(fake.calls("chat.postMessage")) == 1


async def test_a_server_error_after_storing_says_it_may_have_posted(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    fake.inject("chat.postMessage", status=500, process=True)
    with pytest.raises(TransientError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert raised.value.maybe_sent  # the deliverer will look before posting again
    (first,) = fake.messages(CHANNEL)
    found = await notifier.find_sent(KEY, CHANNEL)
    assert found is not None and found.message_id == first["ts"]


async def test_a_dropped_connection_is_transient_and_then_found(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    fake.inject("chat.postMessage", drop=True, process=True)
    with pytest.raises(TransientError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert "ServerDisconnected" in raised.value.reason and raised.value.maybe_sent
    assert len(fake.calls("chat.postMessage")) == 1  # the SDK did not resend it
    found = await notifier.find_sent(KEY, CHANNEL)
    assert found is not None and found.message_id == fake.messages(CHANNEL)[0]["ts"]


async def test_a_dropped_connection_that_lost_the_post_is_not_found_and_posts_again(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    fake.inject("chat.postMessage", drop=True)
    with pytest.raises(TransientError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert raised.value.maybe_sent
    assert await notifier.find_sent(KEY, CHANNEL) is None
    await notifier.send(KEY, CHANNEL, load())
    assert len(fake.messages(CHANNEL)) == 1


async def test_a_timeout_is_transient(fake: FakeSlack, clock: FakeClock) -> None:
    fake.inject("chat.postMessage", delay=3.0)
    notifier = notifier_for(fake, clock)
    notifier.client.timeout = 1
    with pytest.raises(TransientError) as raised:
        await notifier.send(KEY, CHANNEL, load())
    assert "Timeout" in raised.value.reason


# --- find_sent --------------------------------------------------------------------------------


async def test_find_sent_finds_the_key_in_history(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    fake.add_message(CHANNEL, "someone else", metadata={
        "event_type": METADATA_EVENT_TYPE, "event_payload": {"delivery_key": "other"}})
    ref = await notifier.send(KEY, CHANNEL, load())
    for i in range(250):  # a busy channel: our post is on the second page
        fake.add_message(CHANNEL, f"chatter {i}")
    assert await notifier.find_sent(KEY, CHANNEL) == ref
    assert await notifier.find_sent(KEY + "-never-sent", CHANNEL) is None
    history = fake.calls("conversations.history")
    assert history[0].query["include_all_metadata"] == "1"
    assert float(history[0].query["oldest"]) > 0


async def test_find_sent_looks_only_in_the_recent_window(
    fake: FakeSlack, clock: FakeClock
) -> None:
    notifier = notifier_for(fake, clock)
    await notifier.send(KEY, CHANNEL, load())
    clock.advance(30 * 24 * 3600)  # a month later, the post is outside the window
    assert await notifier.find_sent(KEY, CHANNEL) is None


async def test_find_sent_without_history_scope_says_not_found(
    fake: FakeSlack, notifier: SlackNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    await notifier.send(KEY, CHANNEL, load())
    fake.scopes.discard("channels:history")
    assert await notifier.find_sent(KEY, CHANNEL) is None
    assert "channels:history" in caplog.text


async def test_find_sent_in_a_vanished_channel(fake: FakeSlack, notifier: SlackNotifier) -> None:
    assert await notifier.find_sent(KEY, "C0GONE0001") is None


async def test_find_sent_retries_a_rate_limited_lookup(
    fake: FakeSlack, clock: FakeClock
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    notifier = notifier_for(fake, clock)
    notifier._sleep = sleep
    ref = await notifier.send(KEY, CHANNEL, load())
    fake.inject("conversations.history", status=429, retry_after=3)
    assert await notifier.find_sent(KEY, CHANNEL) == ref
    assert waits == [3]
    fake.inject("conversations.history", status=500, times=3)
    with pytest.raises(TransientError):
        await notifier.find_sent(KEY, CHANNEL)


# --- incoming webhooks -----------------------------------------------------------------------


@pytest.fixture
def hook(fake: FakeSlack) -> str:
    return fake.add_incoming_webhook(channel=CHANNEL)


async def test_webhook_target(fake: FakeSlack, clock: FakeClock, hook: str) -> None:
    notifier = notifier_for(fake, clock, {"SLACK_WEBHOOK_ENG_NEWS": hook})
    article = load()
    ref = await notifier.send("slack:webhook:eng-news:x", "webhook:eng-news", article)
    (post,) = fake.webhook_posts(hook)
    expected = render_slack(article, RenderStyle()).to_payload()
    assert post["blocks"] == expected["blocks"] and post["text"] == expected["text"]
    assert post["metadata"]["event_payload"] == {"delivery_key": "slack:webhook:eng-news:x"}
    assert ref.message_id == "webhook:eng-news"
    assert await notifier.find_sent("slack:webhook:eng-news:x", "webhook:eng-news") is None
    assert webhook_env_name("eng-news") == "SLACK_WEBHOOK_ENG_NEWS"


async def test_webhook_url_from_a_secret_file(
    fake: FakeSlack, clock: FakeClock, hook: str, tmp_path: Path
) -> None:
    secret = tmp_path / "hook"
    secret.write_text(hook + "\n")
    notifier = notifier_for(fake, clock, {"SLACK_WEBHOOK_ALERTS_FILE": str(secret)})
    await notifier.send("k", "webhook:alerts", load())
    assert len(fake.webhook_posts(hook)) == 1


async def test_webhook_without_a_url_parks_the_target(
    fake: FakeSlack, notifier: SlackNotifier
) -> None:
    with pytest.raises(PermanentError) as raised:
        await notifier.send("k", "webhook:alerts", load())
    assert raised.value.scope is FailureScope.CHANNEL
    assert "SLACK_WEBHOOK_ALERTS" in raised.value.reason
    assert fake.calls(WEBHOOK) == []


WEBHOOK_CASES: list[tuple[str, str | None, int | None, type[Exception], FailureScope | None]] = [
    ("revoked", "no_service", None, PermanentError, FailureScope.CHANNEL),
    ("archived", "channel_is_archived", None, PermanentError, FailureScope.CHANNEL),
    ("forbidden", "action_prohibited", None, PermanentError, FailureScope.CHANNEL),
    ("bad payload", "invalid_blocks", None, PermanentError, FailureScope.DELIVERY),
    ("server error", None, 500, TransientError, None),
]


@pytest.mark.parametrize(
    ("error", "status", "kind", "scope"),
    [case[1:] for case in WEBHOOK_CASES],
    ids=[case[0] for case in WEBHOOK_CASES],
)
async def test_webhook_errors(
    fake: FakeSlack,
    clock: FakeClock,
    hook: str,
    error: str | None,
    status: int | None,
    kind: type[Exception],
    scope: FailureScope | None,
) -> None:
    notifier = notifier_for(fake, clock, {"SLACK_WEBHOOK_ALERTS": hook})
    if error is not None:
        fake.webhook(hook).error = error
    else:
        fake.inject(WEBHOOK, status=status)
    with pytest.raises(kind) as raised:
        await notifier.send("k", "webhook:alerts", load())
    if scope is not None:
        assert isinstance(raised.value, PermanentError) and raised.value.scope is scope
    assert hook not in str(raised.value)
    assert len(fake.calls(WEBHOOK)) == 1


async def test_webhook_429_waits_as_told(fake: FakeSlack, clock: FakeClock, hook: str) -> None:
    notifier = notifier_for(fake, clock, {"SLACK_WEBHOOK_ALERTS": hook})
    fake.inject(WEBHOOK, status=429, retry_after=4)
    with pytest.raises(TransientError) as raised:
        await notifier.send("k", "webhook:alerts", load())
    assert raised.value.retry_after_s == 4
    assert len(fake.calls(WEBHOOK)) == 1


# --- secrets ----------------------------------------------------------------------------------


async def test_no_secret_in_debug_logs(
    fake: FakeSlack, clock: FakeClock, hook: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = notifier_for(fake, clock, {"SLACK_WEBHOOK_ALERTS": hook})
    await notifier.start()
    await notifier.send(KEY, CHANNEL, load())
    await notifier.send("k", "webhook:alerts", load())
    fake.webhook(hook).error = "no_service"
    with pytest.raises(PermanentError):
        await notifier.send("k2", "webhook:alerts", load())
    fake.invalidate_token(fake.bot_token, "invalid_auth")
    with pytest.raises(PermanentError):
        await notifier.send("k3", CHANNEL, load())
    assert caplog.records, "debug logging was on"
    secret_path = hook.split("/services/", 1)[1]
    for record in caplog.records:
        line = record.getMessage()
        assert fake.bot_token not in line
        assert secret_path not in line


# --- the boundary and the manifest ------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def test_only_the_adapters_import_slack_sdk() -> None:
    import ast

    allowed = {"bot/platforms/slack.py", "bot/platforms/slack_commands.py", "bot/web.py"}
    offenders = []
    for path in sorted((REPO / "bot").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            rel = path.relative_to(REPO).as_posix()
            if any(n.split(".")[0] == "slack_sdk" for n in names) and rel not in allowed:
                offenders.append(rel)
    assert offenders == []


def test_the_manifest_asks_for_least_privilege() -> None:
    import yaml

    manifest = yaml.safe_load((REPO / "slack-app-manifest.yaml").read_text(encoding="utf-8"))
    scopes = manifest["oauth_config"]["scopes"]
    required = set(scopes["bot"]) - set(scopes.get("bot_optional", []))
    assert required == {"chat:write", "commands"}
    assert set(scopes["bot_optional"]) <= set(scopes["bot"])
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/news" and command["usage_hint"]
    assert manifest["settings"]["socket_mode_enabled"] is True
