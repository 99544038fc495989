"""bot/platforms/discord_commands.py: the slash commands, dispatched by the fake Discord's
gateway to the real discord.py, answered through the real interaction endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.articles import Article
from bot.commands import MANAGE_REFUSAL, Commands, NewsReply
from bot.platforms.discord import DiscordNotifier
from bot.platforms.discord_commands import DiscordGateway, discord_text, sync_commands
from bot.render import RenderStyle, render_discord_compact
from bot.routing import RoutingDefaults
from bot.state import State
from bot.store import FileOutcome, FileStamp
from tests.conftest import FakeClock
from tests.fakes.discord_server import (
    EPHEMERAL,
    FakeDiscord,
    InteractionRecord,
    Permission,
    patch_discord_py,
    permissions,
)
from tests.test_discord_platform import discord_config, make_article

CHANNEL = 1_210_000_000_000_001_001
OTHER_CHANNEL = 1_210_000_000_000_001_002
GUILD = 1_210_000_000_000_000_100
MANAGER = permissions(Permission.VIEW_CHANNEL, Permission.MANAGE_CHANNELS)
ADMIN = permissions(Permission.ADMINISTRATOR)

STORY_TITLES = {  # slug: (title, topics, published, quality)
    "ai-old": ("Old AI story", ("AI",), "2026-10-01T10:00:00Z", 80),
    "ai-new": ("Newest AI story", ("AI", "Robotics"), "2026-11-20T10:00:00Z", 90),
    "ai-mid": ("Middle AI story", ("AI",), "2026-11-10T10:00:00Z", 60),
    "ai-low": ("Low quality AI story", ("AI",), "2026-11-25T10:00:00Z", 10),
    "astro": ("Astronomy story", ("Astronomy",), "2026-11-15T10:00:00Z", 70),
}


def stories() -> list[Article]:
    return [
        make_article(title, slug, topics=topics, published=published, quality=quality)
        for slug, (title, topics, published, quality) in STORY_TITLES.items()
    ]


async def record(state: State, articles: list[Article]) -> None:
    outcomes = [
        FileOutcome(f"{a.key}.md", FileStamp(100 + n, n), article=a)
        for n, a in enumerate(articles)
    ]
    await state.record_files(outcomes)


@dataclass
class Bot:
    fake: FakeDiscord
    state: State
    commands: Commands
    gateway: DiscordGateway

    async def run(
        self,
        command: str,
        options: dict[str, Any] | list[dict[str, Any]] | None = None,
        *,
        channel: int = CHANNEL,
        member_permissions: str = permissions(Permission.VIEW_CHANNEL),
        followups: int = 0,
        **kwargs: Any,
    ) -> InteractionRecord:
        record = await self.fake.dispatch_interaction(
            command, options, channel_id=channel, member_permissions=member_permissions, **kwargs
        )
        return await self.fake.wait_for_interaction_response(record.id, followups=followups)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_channel(CHANNEL, guild_id=GUILD)
        server.add_channel(OTHER_CHANNEL, guild_id=GUILD)
        with patch_discord_py(server):
            yield server


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    tmp_path: Path,
    clock: FakeClock,
    *,
    commands: Commands | None = None,
    defer_after_s: float = 1.5,
    guild_ids: tuple[int, ...] = (),
) -> AsyncIterator[Bot]:
    state = await State.open(tmp_path / "state.db", clock)
    config = discord_config(fake, guild_ids=guild_ids)
    no_webhooks: dict[str, str] = {}
    notifier = DiscordNotifier(
        fake.bot_token, config, RenderStyle(), no_webhooks.get, login_attempts=1
    )
    gateway = None
    try:
        await record(state, stories())
        commands = commands or Commands(state, RoutingDefaults(min_quality=40), clock)
        await notifier.start()
        gateway = DiscordGateway(
            notifier, commands, state, config, RenderStyle(), defer_after_s=defer_after_s
        )
        await gateway.start()
        await fake.wait_for_session()
        yield Bot(fake, state, commands, gateway)
    finally:
        if gateway is not None:
            await gateway.aclose()
        await notifier.aclose()
        await state.aclose()


def titles(embeds: list[dict[str, Any]]) -> list[str]:
    return [e["title"] for e in embeds]


# --------------------------------------------------------------------------- registration


async def test_commands_are_registered_with_their_options_and_permissions(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock):
        registered = {c["name"]: c for c in fake.commands()}
    assert set(registered) == {"news", "subscribe", "unsubscribe", "subscriptions", "topics"}
    news = {o["name"]: o for o in registered["news"]["options"]}
    assert news["topic"]["required"] and news["topic"]["autocomplete"]
    assert (news["count"]["min_value"], news["count"]["max_value"]) == (1, 10)
    assert not news["count"]["required"] and not news["min_quality"]["required"]
    for name in ("subscribe", "unsubscribe"):
        assert registered[name]["default_member_permissions"] == str(
            int(Permission.MANAGE_CHANNELS)
        )
    for name in ("subscribe", "unsubscribe", "subscriptions"):
        assert registered[name]["dm_permission"] is False  # guild only
    assert registered["news"]["default_member_permissions"] is None
    for command in registered.values():
        assert 1 <= len(command["description"]) <= 100


async def test_sync_only_when_the_commands_changed(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    put = f"/applications/{fake.application_id}/commands"
    async with running_bot(fake, tmp_path, clock) as bot:
        assert len(fake.requests_to("PUT", put)) == 1
        tree = bot.gateway.tree
        assert await sync_commands(tree, bot.state) == []  # unchanged: no request
        assert len(fake.requests_to("PUT", put)) == 1

        @tree.command(name="ping", description="Check the bot")
        async def ping(interaction: Any) -> None:
            await interaction.response.send_message("pong")

        assert await sync_commands(tree, bot.state) == ["global"]
        assert len(fake.requests_to("PUT", put)) == 2
        assert "ping" in {c["name"] for c in fake.commands()}


@pytest.mark.parametrize("failure", ["503", "dropped"])
async def test_a_failed_sync_is_logged_and_tried_again_next_time(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock, failure: str
) -> None:
    put = f"/applications/{fake.application_id}/commands"
    if failure == "503":
        fake.inject("PUT", put, status=503)
    else:
        fake.drop("PUT", put, times=2)  # aiohttp itself retries an idempotent PUT once
    async with running_bot(fake, tmp_path, clock) as bot:  # start-up goes on
        assert fake.commands() == []
        assert await sync_commands(bot.gateway.tree, bot.state) == ["global"]
    assert len(fake.commands()) == 5


async def test_guild_ids_sync_to_those_servers_at_once(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock, guild_ids=(GUILD,)) as bot:
        assert fake.commands() == []
        assert {c["name"] for c in fake.commands(GUILD)} >= {"news", "subscribe"}
        assert await sync_commands(bot.gateway.tree, bot.state, (GUILD,)) == []
        record = await bot.run("topics")
    assert record.payload["data"]["guild_id"] == str(GUILD)
    assert record.callback_type == 4


# --------------------------------------------------------------------------- /news


async def test_news_answers_with_compact_embeds_newest_first(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        record = await bot.run("news", {"topic": "ai"})
        two = await bot.run("news", {"topic": "AI", "count": 2})
    assert record.callback_type == 4 and not record.ephemeral
    data = record.callback_data
    assert titles(data["embeds"]) == ["Newest AI story", "Middle AI story", "Old AI story"]
    assert data["allowed_mentions"] == {"parse": []}
    expected = render_discord_compact(stories()[1], RenderStyle())
    assert {k: data["embeds"][0][k] for k in expected} == expected
    assert titles(two.callback_data["embeds"]) == ["Newest AI story", "Middle AI story"]


async def test_news_quality_floor_and_unknown_topic(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        low = await bot.run("news", {"topic": "AI", "min_quality": 0})
        missing = await bot.run("news", {"topic": "Astronmy"})
    assert "Low quality AI story" in titles(low.callback_data["embeds"])
    assert missing.ephemeral
    assert "Astronomy" in missing.callback_data["content"]  # a suggestion
    assert not missing.callback_data.get("embeds")


async def test_user_text_is_escaped_and_cannot_ping(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        record = await bot.run("news", {"topic": "**x** @everyone [a](http://evil)"})
    content = record.callback_data["content"]
    assert "\\*\\*x\\*\\*" in content
    assert "@everyone" not in content  # broken with a zero-width space
    assert "\\[a\\](http\\://evil)" in content  # shown as typed, forms no link
    assert record.callback_data["allowed_mentions"] == {"parse": []}


async def test_bad_arguments_get_a_helpful_message(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        too_many = await bot.run("news", {"topic": "AI", "count": 50})
        wrong_type = await bot.run(
            "news", [{"name": "topic", "type": 3, "value": "AI"},
                     {"name": "count", "type": 4, "value": "lots"}],
        )
        blank = await bot.run("news", {"topic": "   "})
    assert too_many.ephemeral and "between 1 and 10" in too_many.callback_data["content"]
    assert wrong_type.ephemeral and "whole number" in wrong_type.callback_data["content"]
    assert blank.ephemeral and "topic" in blank.callback_data["content"]
    for record in (too_many, wrong_type, blank):
        assert "Traceback" not in record.callback_data["content"]


async def test_topic_autocomplete_offers_the_store_topics(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        typing = await bot.run("news", {"topic": "a"}, focused="topic")
        robo = await bot.run("subscribe", {"topic": "rob"}, focused="topic")
    assert typing.callback_type == 8
    assert [c["value"] for c in typing.callback_data["choices"]] == ["AI", "Astronomy"]
    assert [c["value"] for c in robo.callback_data["choices"]] == ["Robotics"]


# --------------------------------------------------------------------------- subscriptions


async def test_subscribe_needs_manage_channels(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        refused = await bot.run("subscribe", {"topic": "AI"})
        assert await bot.state.subscriptions() == []
        allowed = await bot.run("subscribe", {"topic": "AI", "min_quality": 50},
                                member_permissions=MANAGER)
        admin = await bot.run("subscribe", {"topic": "Astronomy"}, channel=OTHER_CHANNEL,
                              member_permissions=ADMIN)
        subs = await bot.state.subscriptions("discord")
    assert refused.ephemeral
    assert refused.callback_data["content"] == discord_text(MANAGE_REFUSAL)
    assert not allowed.ephemeral and "Subscribed" in allowed.callback_data["content"]
    assert admin.callback_data["content"].startswith("Subscribed")
    assert [(s.channel, s.topics, s.min_quality) for s in subs] == [
        (str(CHANNEL), ("AI",), 50.0),
        (str(OTHER_CHANNEL), ("Astronomy",), None),
    ]


async def test_subscribe_warns_when_the_bot_cannot_post_there(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        record = await bot.run(
            "subscribe", {"topic": "AI"}, member_permissions=MANAGER,
            app_permissions=permissions(Permission.VIEW_CHANNEL, Permission.SEND_MESSAGES),
        )
    assert "Embed Links" in record.callback_data["content"]


async def test_unsubscribe_and_subscriptions(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        await bot.run("subscribe", {"topic": "AI"}, member_permissions=MANAGER)
        await bot.run("subscribe", {"topic": "Astronomy"}, member_permissions=MANAGER)
        await bot.state.park_channel("discord", str(CHANNEL), "Discord refused channel: 403")
        listing = await bot.run("subscriptions")
        choices = await bot.run("unsubscribe", {"topic": "a"}, focused="topic")
        refused = await bot.run("unsubscribe", {"topic": "AI"})
        removed = await bot.run("unsubscribe", {"topic": "AI"}, member_permissions=MANAGER)
        again = await bot.run("unsubscribe", {"topic": "AI"}, member_permissions=MANAGER)
        remaining = await bot.state.subscriptions("discord", str(CHANNEL))
    assert listing.ephemeral
    content = listing.callback_data["content"]
    assert "AI" in content and "Astronomy" in content and "403" in content
    assert [c["value"] for c in choices.callback_data["choices"]] == ["AI", "Astronomy"]
    assert refused.ephemeral and refused.callback_data["content"] == discord_text(MANAGE_REFUSAL)
    assert not removed.ephemeral and "Unsubscribed" in removed.callback_data["content"]
    assert again.ephemeral and "not subscribed" in again.callback_data["content"]
    assert [s.topics for s in remaining] == [("Astronomy",)]


async def test_topics_lists_counts_privately(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        record = await bot.run("topics")
    assert record.ephemeral
    assert "AI (4)" in record.callback_data["content"]
    assert "Astronomy (1)" in record.callback_data["content"]


# --------------------------------------------------------------------------- deadlines, errors


async def wait_for_callback(fake: FakeDiscord, record: InteractionRecord) -> None:
    await fake.wait_for(lambda: record.callback is not None, what="the first answer")


class SlowCommands(Commands):
    """Commands whose /news waits for the test: the "database under load"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()

    async def news(
        self, topic: str, count: int = 5, min_quality: float | None = None
    ) -> NewsReply:
        await self.release.wait()
        return await super().news(topic, count, min_quality)


async def test_slow_work_is_deferred_then_followed_up(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        state = await State.open(tmp_path / "other.db", clock)
        stack.push_async_callback(state.aclose)
        slow = SlowCommands(state, RoutingDefaults(), clock)
        bot = await stack.enter_async_context(
            running_bot(fake, tmp_path, clock, commands=slow, defer_after_s=0.05)
        )
        await record(state, stories())
        found = await fake.dispatch_interaction("news", {"topic": "AI"}, channel_id=CHANNEL)
        nothing = await fake.dispatch_interaction("news", {"topic": "Nope"}, channel_id=CHANNEL)
        for pending in (found, nothing):
            await wait_for_callback(fake, pending)
            assert pending.callback_type == 5  # deferred within the deadline
        slow.release.set()
        found = await fake.wait_for_interaction_response(found.id, followups=1)
        nothing = await fake.wait_for_interaction_response(nothing.id, followups=1)
        del bot
    assert not found.ephemeral
    assert titles(found.followups[0]["embeds"])[0] == "Newest AI story"
    # A private answer after a public "thinking": the placeholder goes, the answer is private.
    assert nothing.original is None
    assert int(nothing.followups[0]["flags"]) & EPHEMERAL


class BrokenCommands(Commands):
    async def topics(self) -> Any:
        raise RuntimeError("database exploded at /secret/path")


async def test_an_unexpected_failure_is_a_polite_ephemeral_message(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        state = await State.open(tmp_path / "other.db", clock)
        stack.push_async_callback(state.aclose)
        broken = BrokenCommands(state, RoutingDefaults(), clock)
        bot = await stack.enter_async_context(
            running_bot(fake, tmp_path, clock, commands=broken)
        )
        with caplog.at_level(logging.ERROR, logger="bot.platforms.discord_commands"):
            record = await bot.run("topics")
    assert record.ephemeral
    assert "Sorry" in record.callback_data["content"]
    assert "exploded" not in record.callback_data["content"]
    assert any("/topics failed" in r.getMessage() for r in caplog.records)


class SlowBrokenCommands(SlowCommands):
    async def news(
        self, topic: str, count: int = 5, min_quality: float | None = None
    ) -> NewsReply:
        await self.release.wait()
        raise RuntimeError("the database went away")


async def test_a_failure_after_a_public_defer_is_told_privately(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        state = await State.open(tmp_path / "other.db", clock)
        stack.push_async_callback(state.aclose)
        broken = SlowBrokenCommands(state, RoutingDefaults(), clock)
        await stack.enter_async_context(
            running_bot(fake, tmp_path, clock, commands=broken, defer_after_s=0.05)
        )
        pending = await fake.dispatch_interaction("news", {"topic": "AI"}, channel_id=CHANNEL)
        await wait_for_callback(fake, pending)
        assert pending.callback_type == 5
        with caplog.at_level(logging.ERROR, logger="bot.platforms.discord_commands"):
            broken.release.set()
            answered = await fake.wait_for_interaction_response(pending.id, followups=1)
    assert answered.original is None  # the public placeholder is gone
    [followup] = answered.followups
    assert int(followup["flags"]) & EPHEMERAL and "Sorry" in followup["content"]
    assert fake.messages(CHANNEL, include_interactions=True) == []


async def test_interaction_tokens_stay_out_of_debug_logs(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_bot(fake, tmp_path, clock) as bot:
        record = await bot.run("topics")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "INTERACTION_CREATE" in text  # the gateway event was logged, token redacted
    assert record.token not in text
    assert fake.bot_token not in text


def test_discord_text_fits_the_content_limit() -> None:
    many = "\n".join(f"- topic {n} (quality 40+)" for n in range(400))
    text = discord_text(many)
    assert len(text) <= 2000 and text.endswith("more")
    assert discord_text("one line " * 400).endswith("…")
    assert len(discord_text("one line " * 400)) <= 2000
