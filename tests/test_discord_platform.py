"""bot/platforms/discord.py with the real discord.py against the fake Discord: the payload on
the wire, the nonce, error mapping, rate limits, webhooks, and what reaches the logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.config import DiscordConfig
from bot.delivery import Deliverer
from bot.pacing import DiscordPacing
from bot.platforms.base import FailureScope, PermanentError, RateScope, TransientError
from bot.platforms.discord import (
    TOKEN_ENV,
    DiscordNotifier,
    RedactSecrets,
    nonce_for,
    webhook_env_name,
)
from bot.render import RenderStyle, render_discord
from bot.scheduler import LaneStats, Scheduler
from bot.state import DeliveryState, State
from bot.subscriptions import Subscription, SubscriptionSource
from tests.conftest import FakeClock, VirtualTimer
from tests.fakes.discord_server import FakeDiscord, RateLimitPolicy, patch_discord_py

CHANNEL = 1_210_000_000_000_001_001
OTHER_CHANNEL = 1_210_000_000_000_001_002
GUILD = 1_210_000_000_000_000_100


# --------------------------------------------------------------------------- shared helpers


def article_text(
    title: str,
    url: str,
    *,
    quality: float | None = 80,
    topics: Sequence[str] = ("AI",),
    published: str = "2026-11-01T10:00:00Z",
    excerpt: str = "An excerpt about the story.",
) -> str:
    lines = [
        "---",
        f"title: {json.dumps(title)}",  # a JSON string is a YAML double-quoted scalar
        f"excerpt: {json.dumps(excerpt)}",
        f"webUrl: {url}",
        f"publishedDateTime: {published}",
    ]
    if quality is not None:
        lines.append(f"quality: {quality}")
    lines += ["provider:", "  name: Example News", "  domain: example.com", "topics:"]
    lines += [f"  - {t}" for t in topics]
    lines += ["---", "", "Body text.", ""]
    return "\n".join(lines)


def make_article(title: str = "A story", slug: str = "story", **kwargs: object) -> Article:
    text = article_text(title, f"https://example.com/{slug}", **kwargs)  # type: ignore[arg-type]
    return parse_article(text.encode(), f"{slug}.md")


def discord_config(fake: FakeDiscord, **kwargs: object) -> DiscordConfig:
    return DiscordConfig(api_base_url=fake.base_url, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    # Discord's shape (5 per window per channel) with a short window, to keep tests fast.
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=5, window=0.5)) as server:
        server.add_channel(CHANNEL, guild_id=GUILD)
        server.add_channel(OTHER_CHANNEL, guild_id=GUILD)
        with patch_discord_py(server):
            yield server


@contextlib.asynccontextmanager
async def started(
    fake: FakeDiscord,
    *,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    login_attempts: int = 1,
    config: DiscordConfig | None = None,
    post_timeout_s: float = 30.0,
) -> AsyncIterator[DiscordNotifier]:
    env = dict(environ or {})
    notifier = DiscordNotifier(
        fake.bot_token if token is None else token,
        config or discord_config(fake),
        RenderStyle(),
        env.get,
        login_attempts=login_attempts,
        post_timeout_s=post_timeout_s,
    )
    try:
        await notifier.start()
        yield notifier
    finally:
        await notifier.aclose()


def key(channel: int | str, slug: str = "story") -> str:
    return f"discord:{channel}:https://example.com/{slug}"


# --------------------------------------------------------------------------- posting


async def test_send_posts_the_rendered_embed_with_nonce_and_no_mentions(
    fake: FakeDiscord,
) -> None:
    article = make_article("Robots @everyone [click](http://evil.example)", "robots")
    async with started(fake) as notifier:
        ref = await notifier.send(key(CHANNEL, "robots"), str(CHANNEL), article)

    [request] = fake.requests_to("POST", f"/channels/{CHANNEL}/messages")
    rendered = render_discord(article, RenderStyle())
    assert request.json["embeds"] == rendered["embeds"]
    assert request.json["allowed_mentions"] == {"parse": []}
    assert request.json["nonce"] == nonce_for(key(CHANNEL, "robots"))
    assert len(request.json["nonce"]) <= 25
    assert request.json["enforce_nonce"] is True
    assert request.headers["Authorization"] == f"Bot {fake.bot_token}"
    [message] = fake.messages(CHANNEL)
    assert ref.message_id == message["id"]
    assert message["mention_everyone"] is False and message["mentions"] == []
    assert "](" not in message["embeds"][0]["title"]  # no masked link could form


def test_nonce_is_short_stable_and_distinct() -> None:
    keys = [key(CHANNEL, f"s{n}") for n in range(200)] + ["x" * 5000, "", "ü" * 40]
    nonces = [nonce_for(k) for k in keys]
    assert all(1 <= len(n) <= 25 for n in nonces)
    assert all(not n.isdigit() for n in nonces)
    assert len(set(nonces)) == len(keys)
    assert nonces == [nonce_for(k) for k in keys]


async def test_a_resend_with_the_same_key_posts_once(fake: FakeDiscord) -> None:
    article = make_article()
    async with started(fake) as notifier:
        first = await notifier.send(key(CHANNEL), str(CHANNEL), article)
        again = await notifier.send(key(CHANNEL), str(CHANNEL), article)
        elsewhere = await notifier.send(key(OTHER_CHANNEL), str(OTHER_CHANNEL), article)
    assert first.message_id == again.message_id
    assert elsewhere.message_id != first.message_id
    assert len(fake.messages(CHANNEL)) == 1 and len(fake.messages(OTHER_CHANNEL)) == 1


async def test_a_lost_answer_is_transient_and_the_retry_is_deduplicated(
    fake: FakeDiscord,
) -> None:
    fake.drop("POST", f"/channels/{CHANNEL}/messages", process_first=True)
    article = make_article()
    async with started(fake) as notifier:
        with pytest.raises(TransientError) as lost:
            await notifier.send(key(CHANNEL), str(CHANNEL), article)
        assert len(fake.messages(CHANNEL)) == 1  # Discord did post it
        ref = await notifier.send(key(CHANNEL), str(CHANNEL), article)
    assert "ServerDisconnectedError" in lost.value.reason
    assert len(fake.messages(CHANNEL)) == 1
    assert ref.message_id == fake.messages(CHANNEL)[0]["id"]


async def test_find_sent_leaves_it_to_the_nonce(fake: FakeDiscord) -> None:
    async with started(fake) as notifier:
        assert await notifier.find_sent(key(CHANNEL), str(CHANNEL)) is None


# --------------------------------------------------------------------------- error mapping


async def test_connection_reset_and_503_are_transient(fake: FakeDiscord) -> None:
    fake.drop("POST", f"/channels/{CHANNEL}/messages", mode="reset")
    fake.inject("POST", f"/channels/{OTHER_CHANNEL}/messages", status=503)
    async with started(fake) as notifier:
        with pytest.raises(TransientError) as reset:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
        with pytest.raises(TransientError) as unavailable:
            await notifier.send(key(OTHER_CHANNEL), str(OTHER_CHANNEL), make_article())
    assert "ClientOSError" in reset.value.reason and reset.value.retry_after_s is None
    assert "503" in unavailable.value.reason
    assert fake.messages(CHANNEL) == [] and fake.messages(OTHER_CHANNEL) == []


async def test_an_answer_that_never_comes_is_a_timeout_that_may_have_posted(
    fake: FakeDiscord,
) -> None:
    held = fake.hold("POST", f"/channels/{CHANNEL}/messages")  # stored, but no answer
    async with started(fake, post_timeout_s=0.3) as notifier:
        with pytest.raises(TransientError) as info:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
        held.release()
        # The retry carries the same nonce: Discord answers with the post it already has.
        ref = await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
    assert "TimeoutError" in info.value.reason and info.value.maybe_sent
    assert [m["id"] for m in fake.messages(CHANNEL)] == [ref.message_id]


@pytest.mark.parametrize("code", [50001, 50013])
async def test_forbidden_channel_is_permanent_for_the_channel(
    fake: FakeDiscord, code: int
) -> None:
    fake.forbid_channel(CHANNEL, code=code)
    async with started(fake) as notifier:
        with pytest.raises(PermanentError) as info:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
    assert info.value.scope is FailureScope.CHANNEL
    assert str(code) in info.value.reason and "403" in info.value.reason
    assert "Send Messages" in info.value.reason  # says how to fix it


async def test_unknown_channel_is_permanent_for_the_channel(fake: FakeDiscord) -> None:
    gone = 1_210_000_000_000_009_999
    async with started(fake) as notifier:
        with pytest.raises(PermanentError) as info:
            await notifier.send(key(gone), str(gone), make_article())
        with pytest.raises(PermanentError) as not_an_id:
            await notifier.send(key("general"), "general", make_article())
    assert info.value.scope is FailureScope.CHANNEL
    assert "10003 Unknown Channel" in info.value.reason
    assert not_an_id.value.scope is FailureScope.CHANNEL
    assert "Channel ID" in not_an_id.value.reason


async def test_rejected_payload_is_permanent_for_the_delivery_only(fake: FakeDiscord) -> None:
    body = {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                                                  "message": "Too long"}]}}}},
    }
    fake.inject("POST", f"/channels/{CHANNEL}/messages", status=400, body=body)
    async with started(fake) as notifier:
        with pytest.raises(PermanentError) as info:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
    assert info.value.scope is FailureScope.DELIVERY
    assert "50035 Invalid Form Body" in info.value.reason
    assert "embeds.0.description" in info.value.reason  # the full reason, for whoever fixes it


async def test_token_refused_while_running_stops_the_platform(fake: FakeDiscord) -> None:
    async with started(fake) as notifier:
        fake.bot_token = "revoked-token-value"
        with pytest.raises(PermanentError) as info:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
    assert info.value.scope is FailureScope.PLATFORM
    assert TOKEN_ENV in info.value.reason


async def test_wrong_token_at_start_names_the_variable_not_the_token(fake: FakeDiscord) -> None:
    wrong = "MTIzNDU2.wrong-token-value.abcdefghij"
    with pytest.raises(PermanentError) as info:
        async with started(fake, token=wrong):
            pass
    assert info.value.scope is FailureScope.PLATFORM
    assert TOKEN_ENV in info.value.reason and f"{TOKEN_ENV}_FILE" in info.value.reason
    assert wrong not in info.value.reason
    assert [(r.route, r.status) for r in fake.requests] == [("/users/@me", 401)]


async def test_unreachable_api_at_start_is_a_clear_error(fake: FakeDiscord) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v10"
    with pytest.raises(PermanentError) as info:
        async with started(fake, config=DiscordConfig(api_base_url=closed)):
            pass
    assert info.value.scope is FailureScope.PLATFORM
    assert closed in info.value.reason and "api_base_url" in info.value.reason


# --------------------------------------------------------------------------- rate limits


async def test_a_429_comes_back_at_once_as_a_wait_with_what_discord_said(
    fake: FakeDiscord,
) -> None:
    """No wait inside the call: the scheduler decides (and writes the wait down)."""
    fault = fake.inject("POST", f"/channels/{CHANNEL}/messages", status=429, retry_after=30)
    async with started(fake) as notifier:
        with pytest.raises(TransientError) as info:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
    assert fault.hits == 1
    assert len(fake.requests_to("POST", f"/channels/{CHANNEL}/messages")) == 1
    assert info.value.retry_after_s == 30.0 and info.value.rate_limited
    rate = info.value.rate
    assert rate is not None and rate.scope is RateScope.BUCKET
    assert rate.remaining == 0 and rate.bucket


async def test_a_global_429_covers_the_whole_platform(fake: FakeDiscord) -> None:
    fake.inject("POST", f"/channels/{CHANNEL}/messages", status=429, retry_after=2,
                global_=True)
    async with started(fake) as notifier:
        with pytest.raises(TransientError) as info:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
    assert info.value.rate is not None and info.value.rate.scope is RateScope.PLATFORM
    assert "all requests" in info.value.reason


async def test_a_success_reports_the_buckets_headers(fake: FakeDiscord) -> None:
    async with started(fake) as notifier:
        first = await notifier.send(key(CHANNEL, "a"), str(CHANNEL), make_article("A", "a"))
        second = await notifier.send(key(CHANNEL, "b"), str(CHANNEL), make_article("B", "b"))
    assert first.rate is not None and second.rate is not None
    assert (first.rate.limit, first.rate.remaining) == (5, 4)
    assert second.rate.remaining == 3
    assert first.rate.bucket == second.rate.bucket and first.rate.bucket
    assert 0 < (first.rate.reset_after_s or 0) <= 0.5


async def test_a_long_429_is_kept_by_the_outbox_across_rounds(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    fake.inject("POST", f"/channels/{CHANNEL}/messages", status=429, retry_after=120)
    state = await State.open(tmp_path / "state.db", clock)
    try:
        async with started(fake) as notifier:
            deliverer = Deliverer(state, {"discord": notifier}, clock, jitter=lambda: 0.0)
            await enqueue(state, make_article(), [str(CHANNEL)])
            first = await drain(deliverer, state, clock)
            [row] = await state.outbox.rows_for("discord", str(CHANNEL))
            assert (first.rate_limited, first.sent) == (1, 0)
            assert row.state is DeliveryState.PENDING
            assert row.next_attempt_at == pytest.approx(clock.time() + 120)
            assert len(fake.requests_to("POST", f"/channels/{CHANNEL}/messages")) == 1

            clock.advance(60)
            assert (await drain(deliverer, state, clock)).sent == 0  # not before the wait
            clock.advance(61)
            assert (await drain(deliverer, state, clock)).sent == 1
    finally:
        await state.aclose()
    assert len(fake.messages(CHANNEL)) == 1
    assert len(fake.rate_limited_responses()) == 1


async def test_a_429_without_via_is_not_hammered(fake: FakeDiscord) -> None:
    # A 429 without `Via` comes from Cloudflare, not Discord (a ban in the making): we wait
    # the Retry-After it names before trying again, never immediately, and on every channel.
    fake.inject(
        "POST", f"/channels/{CHANNEL}/messages", status=429, retry_after=7, headers={"Via": ""}
    )
    async with started(fake) as notifier:
        with pytest.raises(TransientError) as info:
            await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
    assert info.value.retry_after_s == 7.0
    assert info.value.rate is not None and info.value.rate.scope is RateScope.PLATFORM
    assert len(fake.requests_to("POST", f"/channels/{CHANNEL}/messages")) == 1


# --------------------------------------------------------------------------- webhooks


async def test_webhook_target_posts_through_the_webhook_without_the_bot_token(
    fake: FakeDiscord,
) -> None:
    hook = fake.add_webhook(CHANNEL, name="News")
    env = {webhook_env_name("eng-news"): hook.url}
    article = make_article("Webhook story", "hooked")
    async with started(fake, environ=env) as notifier:
        ref = await notifier.send(key("webhook:eng-news"), "webhook:eng-news", article)
    [request] = fake.requests_to("POST", f"/webhooks/{hook.id}/")
    assert "Authorization" not in request.headers
    assert request.query["wait"] in ("1", "true")
    assert request.json["allowed_mentions"] == {"parse": []}
    rendered = render_discord(article, RenderStyle())["embeds"][0]
    sent = request.json["embeds"][0]
    assert {k: sent[k] for k in rendered} == rendered
    [message] = fake.messages(CHANNEL)
    assert message["webhook_id"] == str(hook.id) and message["id"] == ref.message_id


def test_webhook_variable_names() -> None:
    assert webhook_env_name("eng-news") == "DISCORD_WEBHOOK_ENG_NEWS"
    assert webhook_env_name("Alerts") == "DISCORD_WEBHOOK_ALERTS"


async def test_webhook_problems_park_the_target_without_showing_the_url(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    hook = fake.add_webhook(CHANNEL)
    wrong_token = hook.url.rsplit("/", 1)[0] + "/" + "w" * 68
    deleted = fake.add_webhook(OTHER_CHANNEL)
    env = {
        "DISCORD_WEBHOOK_BADURL": "https://example.com/not-a-webhook/secret-part",
        "DISCORD_WEBHOOK_WRONG": wrong_token,
        "DISCORD_WEBHOOK_GONE": deleted.url,
        "DISCORD_WEBHOOK_EMPTYFILE_FILE": str(tmp_path / "missing-secret"),
    }
    fake.remove_channel(OTHER_CHANNEL)  # its webhooks vanish too
    reasons = {}
    async with started(fake, environ=env) as notifier:
        for name in ("unset", "badurl", "wrong", "gone", "emptyfile"):
            with pytest.raises(PermanentError) as info:
                await notifier.send(key(f"webhook:{name}"), f"webhook:{name}", make_article())
            assert info.value.scope is FailureScope.CHANNEL
            reasons[name] = info.value.reason
    assert "DISCORD_WEBHOOK_UNSET" in reasons["unset"]
    assert "DISCORD_WEBHOOK_BADURL" in reasons["badurl"]
    assert "50027" in reasons["wrong"]
    assert "10015 Unknown Webhook" in reasons["gone"]
    assert "DISCORD_WEBHOOK_EMPTYFILE_FILE" in reasons["emptyfile"]
    for reason in reasons.values():
        assert "secret-part" not in reason and hook.token not in reason
        assert deleted.token not in reason and "w" * 68 not in reason


# --------------------------------------------------------------------------- secrets and setup


async def test_no_token_or_webhook_url_reaches_the_logs_at_debug(
    fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    hook = fake.add_webhook(CHANNEL)
    caplog.set_level(logging.DEBUG)
    async with started(fake, environ={"DISCORD_WEBHOOK_NEWS": hook.url}) as notifier:
        await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
        await notifier.send(key("webhook:news"), "webhook:news", make_article())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "discord.http" in " ".join(r.name for r in caplog.records)  # it did log at DEBUG
    assert hook.token not in text
    assert fake.bot_token not in text


def test_redaction_covers_urls_fields_and_known_secrets() -> None:
    redact = RedactSecrets(["my-secret-token-value"]).redact
    assert redact("POST http://h/api/v10/webhooks/123/abcDEF_-x?wait=1") == (
        "POST http://h/api/v10/webhooks/123/[redacted]?wait=1"
    )
    assert redact("/interactions/5/tok.en/callback") == "/interactions/5/[redacted]/callback"
    assert redact("{'token': 'abc', 'id': 1}") == "{'token': '[redacted]', 'id': 1}"
    assert redact('{"token":"abc"}') == '{"token":"[redacted]"}'
    assert redact("Bot my-secret-token-value") == "Bot [redacted]"


async def test_aclose_restores_the_api_base(fake: FakeDiscord) -> None:
    import discord.http

    before = discord.http.Route.BASE
    proxy = DiscordConfig(api_base_url=fake.base_url.replace("127.0.0.1", "localhost"))
    async with started(fake, config=proxy):
        assert proxy.api_base_url == discord.http.Route.BASE
    assert before == discord.http.Route.BASE


# --------------------------------------------------------------------------- with the outbox


async def drain(deliverer: Deliverer, state: State, clock: FakeClock) -> LaneStats:
    """One bounded scheduler run at the clock's present instant, paced as Discord is."""
    scheduler = Scheduler(
        deliverer, state.outbox, {"discord": DiscordPacing()}, clock, timer=VirtualTimer(clock)
    )
    await scheduler.drain(asyncio.Event(), max_wait_s=0.0)
    return scheduler.lanes["discord"].stats


async def enqueue(state: State, article: Article, channels: Sequence[str]) -> None:
    """Record `article` and route it to a discord subscription per channel."""
    from bot.routing import Routing
    from bot.store import FileOutcome, FileStamp

    subs = []
    for channel in channels:
        sub, _ = await state.add_subscription(
            Subscription(id=0, platform="discord", channel=channel, source=SubscriptionSource.CLI)
        )
        subs.append(sub)
    outcome = FileOutcome(f"{article.key}.md", FileStamp(1, 1), article=article)
    routing = Routing(targets=tuple(subs), held_unscored=False)
    await state.record_files([outcome], route=lambda _: routing)


async def test_a_forbidden_channel_is_parked_and_the_others_go_on(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    fake.forbid_channel(OTHER_CHANNEL, code=50013)
    state = await State.open(tmp_path / "state.db", clock)
    try:
        async with started(fake) as notifier:
            deliverer = Deliverer(state, {"discord": notifier}, clock)
            await enqueue(state, make_article(), [str(CHANNEL), str(OTHER_CHANNEL)])
            report = await drain(deliverer, state, clock)
            subs = {s.channel: s for s in await state.subscriptions("discord")}
    finally:
        await state.aclose()
    assert (report.sent, report.parked) == (1, 1)
    assert len(fake.messages(CHANNEL)) == 1
    assert subs[str(CHANNEL)].parked_reason is None
    reason = subs[str(OTHER_CHANNEL)].parked_reason
    assert reason is not None and "50013 Missing Permissions" in reason


# --------------------------------------------------------------------------- the boundary


async def test_the_default_api_setting_keeps_an_address_the_embedding_program_chose(
    fake: FakeDiscord,
) -> None:
    """`api_base_url` left at Discord's own does not overwrite discord.py's `Route.BASE` when a
    program embedding the bot (here: the test, through patch_discord_py) already pointed it."""
    from discord.http import Route

    assert fake.base_url == Route.BASE
    async with started(fake, config=DiscordConfig()) as notifier:
        await notifier.send(key(CHANNEL), str(CHANNEL), make_article())
        assert fake.base_url == Route.BASE
    assert len(fake.messages(CHANNEL)) == 1
