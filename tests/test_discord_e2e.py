"""End to end: the real app wiring (`run_bot` with a TOML config, a real store folder, real
SQLite) and the real discord.py, against the fake Discord's REST API and gateway.

Nothing here sleeps to wait: the tests wait on the fake's records (`wait_for_*`). The clock
runs (pacing needs time to pass) and tests can move it forward."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import discord
import pytest
import yarl

from bot.app import run_bot
from bot.articles import Article, parse_article
from bot.commands import MANAGE_REFUSAL
from bot.config import ConfigError, load_config
from bot.platforms.discord_commands import discord_text
from bot.render import RenderStyle, render_discord
from bot.state import DeliveryState, State
from tests.conftest import FakeClock, RunningClock
from tests.fakes.discord_server import (
    FakeDiscord,
    GatewaySession,
    Permission,
    RateLimitPolicy,
    patch_discord_py,
    permissions,
)
from tests.test_discord_platform import article_text

CHANNEL = 1_210_000_000_000_001_001
OTHER_CHANNEL = 1_210_000_000_000_001_002
GUILD = 1_210_000_000_000_000_100
MEMBER = permissions(Permission.VIEW_CHANNEL, Permission.SEND_MESSAGES)
MANAGER = permissions(Permission.VIEW_CHANNEL, Permission.MANAGE_CHANNELS)


async def as_interrupted(state: State, delivery_id: int) -> None:
    """Put a sent row back in `sending`: what a kill -9 between Discord's answer and our
    record of it leaves."""

    async def body(db: Any) -> None:
        await db.execute("UPDATE deliveries SET state = 'sending' WHERE id = ?", (delivery_id,))

    await state.database.write(body)


@pytest.fixture
def clock() -> FakeClock:
    return RunningClock()


class Store:
    """The article folder. Files are renamed into place (never seen half-written) with an
    mtime in the clock's past that moves forward at every write, so each counts as settled."""

    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.root = root
        self._mtime_s = clock.time() - 3600
        root.mkdir(parents=True, exist_ok=True)

    def add(
        self,
        slug: str,
        title: str,
        *,
        topics: Sequence[str] = ("AI",),
        published: str = "2026-11-01T10:00:00Z",
        quality: float = 80,
    ) -> Article:
        text = article_text(
            title, f"https://example.com/{slug}", topics=topics, published=published,
            quality=quality,
        )
        path = self.root / f"{slug}.md"
        tmp = self.root / f".{slug}.md.tmp"
        tmp.write_text(text, encoding="utf-8")
        self._mtime_s += 1
        os.utime(tmp, (self._mtime_s, self._mtime_s))
        os.rename(tmp, path)
        return parse_article(text.encode(), f"{slug}.md")


class App:
    """`run_bot` as `newsbot run --config FILE` would run it, in this event loop."""

    def __init__(
        self, fake: FakeDiscord, tmp_path: Path, clock: FakeClock, channels: Sequence[int]
    ) -> None:
        self.fake = fake
        self.clock = clock
        self.store = Store(tmp_path / "store", clock)
        self.db_path = tmp_path / "state.db"
        self.config_path = tmp_path / "newsbot.toml"
        subscriptions = "".join(
            f'\n[[subscriptions]]\nplatform = "discord"\nchannel = "{c}"\ntopics = ["AI"]\n'
            for c in channels
        )
        self.config_path.write_text(
            "[store]\npath = \"store\"\nrescan_interval_s = 0.1\nwatch = false\n"
            "[database]\npath = \"state.db\"\n"
            f"[discord]\napi_base_url = {json.dumps(fake.base_url)}\n" + subscriptions,
            encoding="utf-8",
        )
        self.environ = {"DISCORD_TOKEN": fake.bot_token}
        self.stop = asyncio.Event()
        self.task: asyncio.Task[int] | None = None

    async def start(self) -> GatewaySession:
        sessions_before = len(self.fake.sessions)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_bot(
                load_config(self.config_path), once=False, out=io.StringIO(), clock=self.clock,
                stop=self.stop, environ=self.environ,
            )
        )
        ready = asyncio.create_task(
            self.fake.wait_for(
                lambda: any(s.identified for s in self.fake.sessions[sessions_before:]),
                timeout=10.0,
                what="the bot's gateway READY",
            )
        )
        await asyncio.wait({self.task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
            code = self.task.result()  # raises what stopped it
            raise AssertionError(f"the bot exited with {code} during start-up")
        await ready
        return self.fake.sessions[-1]

    async def finish(self) -> int:
        assert self.task is not None
        self.stop.set()
        return await asyncio.wait_for(self.task, 15.0)

    async def state(self) -> State:
        return await State.open(self.db_path, self.clock)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=5, window=0.5)) as server:
        server.add_channel(CHANNEL, guild_id=GUILD)
        server.add_channel(OTHER_CHANNEL, guild_id=GUILD)
        with patch_discord_py(server):
            yield server


@pytest.fixture
async def app(fake: FakeDiscord, tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    bot = App(fake, tmp_path, clock, [CHANNEL])
    yield bot
    if bot.task is not None and not bot.task.done():
        await bot.finish()


def posts(fake: FakeDiscord, channel: int) -> list[Any]:
    return fake.requests_to("POST", f"/channels/{channel}/messages")


# --------------------------------------------------------------------------- 1. posting


async def test_a_new_article_file_reaches_the_subscribed_channel(
    app: App, fake: FakeDiscord
) -> None:
    app.store.add("already-there", "Already there before the first start")
    session = await app.start()
    assert session.intents == 1  # guilds only: nothing privileged

    app.store.add("robotics-only", "Not for this channel", topics=("Robotics",))
    article = app.store.add("new-ai", "A new AI story @everyone")
    [message] = await fake.wait_for_message(CHANNEL)

    [request] = posts(fake, CHANNEL)
    assert request.json["embeds"] == render_discord(article, RenderStyle())["embeds"]
    assert request.json["allowed_mentions"] == {"parse": []}
    assert 1 <= len(request.json["nonce"]) <= 25 and request.json["enforce_nonce"] is True
    assert message["embeds"][0]["title"].startswith("A new AI story")
    assert message["embeds"][0]["url"] == "https://example.com/new-ai"
    assert message["mention_everyone"] is False

    # SIGTERM stops it cleanly: the handler run_bot installed sets its stop event.
    assert app.task is not None
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(app.task, 15.0) == 0
    assert session.closed and session.close_code == 1000
    assert len(fake.messages(CHANNEL)) == 1  # the first scan's file was recorded, not posted


# --------------------------------------------------------------------------- 2. restart


async def test_a_restart_posts_nothing_twice(app: App, fake: FakeDiscord) -> None:
    await app.start()
    app.store.add("first", "First AI story")
    [first] = await fake.wait_for_message(CHANNEL)
    assert await app.finish() == 0

    # What a kill -9 right after Discord created the message (before we recorded it) leaves.
    state = await app.state()
    try:
        [row] = await state.outbox.rows_for("discord", str(CHANNEL))
        await as_interrupted(state, row.id)
    finally:
        await state.aclose()

    await app.start()
    app.store.add("second", "Second AI story")
    await fake.wait_for_message(CHANNEL, count=2)
    assert await app.finish() == 0

    messages = fake.messages(CHANNEL)
    assert [m["embeds"][0]["title"] for m in messages] == ["First AI story", "Second AI story"]
    # The interrupted row was sent again with the same nonce, and Discord answered with the
    # message it already had.
    requests = posts(fake, CHANNEL)
    assert len(requests) == 3
    assert requests[0].json["nonce"] == requests[1].json["nonce"]
    state = await app.state()
    try:
        rows = await state.outbox.rows_for("discord", str(CHANNEL))
    finally:
        await state.aclose()
    assert [r.state for r in rows] == [DeliveryState.SENT, DeliveryState.SENT]
    assert rows[0].message_ref == first["id"]

    # And a third start with nothing new posts nothing.
    await app.start()
    assert await app.finish() == 0
    assert len(posts(fake, CHANNEL)) == 3
    put = f"/applications/{fake.application_id}/commands"
    assert len(fake.requests_to("PUT", put)) == 1  # commands unchanged: synced once


# --------------------------------------------------------------------------- 3. /news


async def test_news_dispatched_through_the_gateway_gets_the_right_articles(
    app: App, fake: FakeDiscord
) -> None:
    app.store.add("ai-old", "Old AI story", published="2026-10-01T10:00:00Z")
    app.store.add("ai-new", "Newest AI story", published="2026-11-20T10:00:00Z")
    app.store.add("ai-low", "Weak AI story", published="2026-11-25T10:00:00Z", quality=5)
    app.store.add("space", "Space story", topics=("Astronomy",), published="2026-11-21T10:00:00Z")
    await app.start()

    record = await fake.dispatch_interaction("news", {"topic": "AI"}, channel_id=CHANNEL)
    answered = await fake.wait_for_interaction_response(record.id)
    assert answered.callback_type == 4 and not answered.ephemeral
    embeds = answered.callback_data["embeds"]
    assert [e["title"] for e in embeds] == ["Newest AI story", "Old AI story"]
    assert answered.callback_data["allowed_mentions"] == {"parse": []}
    assert answered.callback_at is not None
    assert answered.callback_at - answered.dispatched_at < 3.0


async def test_behind_a_custom_api_base_the_gateway_is_the_one_that_api_names(
    app: App, fake: FakeDiscord
) -> None:
    # As a separate process would start: discord.py at its own default (Discord's gateway,
    # unreachable here); only the configured api_base_url (whose GET /gateway names the fake's
    # gateway) leads the bot there.
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL("wss://gateway.discord.gg/")
    app.store.add("ai-new", "Newest AI story", published="2026-11-20T10:00:00Z")
    await app.start()
    assert fake.requests_to("GET", "/gateway")
    record = await fake.dispatch_interaction("news", {"topic": "AI"}, channel_id=CHANNEL)
    answered = await fake.wait_for_interaction_response(record.id)
    assert [e["title"] for e in answered.callback_data["embeds"]] == ["Newest AI story"]


# --------------------------------------------------------------------------- 4./5. /subscribe


async def test_subscribe_without_manage_channels_is_refused_and_changes_nothing(
    app: App, fake: FakeDiscord
) -> None:
    await app.start()
    record = await fake.dispatch_interaction(
        "subscribe", {"topic": "Robotics"}, channel_id=OTHER_CHANNEL, member_permissions=MEMBER
    )
    answered = await fake.wait_for_interaction_response(record.id)
    assert answered.ephemeral
    assert answered.callback_data["content"] == discord_text(MANAGE_REFUSAL)
    app.store.add("robots", "Robots story", topics=("Robotics",))
    app.store.add("ai", "AI story")
    await fake.wait_for_message(CHANNEL)
    assert await app.finish() == 0

    state = await app.state()
    try:
        subs = await state.subscriptions("discord")
    finally:
        await state.aclose()
    assert [(s.channel, s.topics) for s in subs] == [(str(CHANNEL), ("AI",))]
    assert posts(fake, OTHER_CHANNEL) == []


async def test_subscribe_by_an_admin_makes_the_next_matching_article_arrive(
    app: App, fake: FakeDiscord
) -> None:
    await app.start()
    record = await fake.dispatch_interaction(
        "subscribe", {"topic": "Robotics"}, channel_id=OTHER_CHANNEL, member_permissions=MANAGER
    )
    answered = await fake.wait_for_interaction_response(record.id)
    assert not answered.ephemeral and "Subscribed" in answered.callback_data["content"]

    app.store.add("robots", "Robots story", topics=("Robotics",))
    [message] = await fake.wait_for_message(OTHER_CHANNEL)
    assert message["embeds"][0]["title"] == "Robots story"
    assert posts(fake, CHANNEL) == []  # that channel wants AI only

    listing = await fake.dispatch_interaction(
        "subscriptions", channel_id=OTHER_CHANNEL, member_permissions=MEMBER
    )
    answered = await fake.wait_for_interaction_response(listing.id)
    assert answered.ephemeral and "Robotics" in answered.callback_data["content"]


# --------------------------------------------------------------------------- 6. rate limits


async def test_a_429_with_real_headers_delays_but_does_not_lose_the_post(
    app: App, fake: FakeDiscord
) -> None:
    await app.start()
    fault = fake.inject("POST", f"/channels/{CHANNEL}/messages", status=429, retry_after=0.4)
    app.store.add("limited", "Rate limited AI story")
    [message] = await fake.wait_for_message(CHANNEL)
    first, second = posts(fake, CHANNEL)
    assert fault.hits == 1 and (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.4
    assert message["embeds"][0]["title"] == "Rate limited AI story"


async def test_a_burst_is_paced_by_the_headers_without_429s(app: App, fake: FakeDiscord) -> None:
    await app.start()
    for n in range(8):
        app.store.add(f"burst-{n}", f"Burst story {n}", published=f"2026-11-0{n + 1}T10:00:00Z")
    await fake.wait_for_message(CHANNEL, count=8, timeout=15.0)
    assert fake.rate_limited_responses() == []
    assert len({m["embeds"][0]["title"] for m in fake.messages(CHANNEL)}) == 8


# --------------------------------------------------------------------------- 7. 403


async def test_a_403_parks_that_subscription_and_the_others_go_on(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    app = App(fake, tmp_path, clock, [CHANNEL, OTHER_CHANNEL])
    fake.forbid_channel(OTHER_CHANNEL, code=50013)
    await app.start()
    app.store.add("one", "First AI story")
    await fake.wait_for_message(CHANNEL)
    [refused] = await fake.wait_for_request("POST", f"/channels/{OTHER_CHANNEL}/messages")
    await fake.wait_for(lambda: refused.status is not None, what="the 403 answer")
    assert refused.status == 403
    assert await app.finish() == 0  # a graceful stop lets the outcome be recorded

    state = await app.state()
    try:
        subs = {s.channel: s for s in await state.subscriptions("discord")}
    finally:
        await state.aclose()
    assert subs[str(CHANNEL)].parked_reason is None
    reason = subs[str(OTHER_CHANNEL)].parked_reason
    assert reason is not None and "403" in reason and "50013 Missing Permissions" in reason

    await app.start()
    app.store.add("two", "Second AI story")
    await fake.wait_for_message(CHANNEL, count=2)
    listing = await fake.dispatch_interaction(
        "subscriptions", channel_id=OTHER_CHANNEL, member_permissions=MEMBER
    )
    answered = await fake.wait_for_interaction_response(listing.id)
    assert await app.finish() == 0
    assert len(posts(fake, OTHER_CHANNEL)) == 1  # nothing more was sent there
    assert "paused" in answered.callback_data["content"]
    assert "Missing Permissions" in answered.callback_data["content"]


# --------------------------------------------------------------------------- 8. wrong token


async def test_a_wrong_token_stops_start_up_with_a_clear_message(
    app: App, fake: FakeDiscord
) -> None:
    wrong = "MTIxMDAwMDAwMDAwMDAwMDAy.wrong.token-that-is-not-valid"
    app.environ = {"DISCORD_TOKEN": wrong}
    with pytest.raises(ConfigError) as info:
        await app.start()
    message = str(info.value)
    assert "DISCORD_TOKEN" in message and "401" in message
    assert wrong not in message
    assert fake.sessions == [] and fake.messages(CHANNEL) == []
    assert [(r.route, r.status) for r in fake.requests] == [("/users/@me", 401)]


async def test_discord_subscriptions_without_a_token_are_parked_naming_the_variable(
    app: App, fake: FakeDiscord
) -> None:
    config = load_config(app.config_path)
    assert await run_bot(config, once=True, out=io.StringIO(), clock=app.clock, environ={}) == 0
    state = await app.state()
    try:
        (sub,) = await state.subscriptions("discord")
    finally:
        await state.aclose()
    assert sub.parked_reason and "DISCORD_TOKEN (or DISCORD_TOKEN_FILE)" in sub.parked_reason
    assert fake.requests == []
