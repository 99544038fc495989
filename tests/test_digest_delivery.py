"""Digests, quiet hours and breaking mentions end to end: the worker, the scheduler (on a
FakeClock, its waits virtual) and the real adapters against the fake Discord and the fake Slack,
with real store folders and SQLite. The clock is moved by hand to the stated local times, DST
change days included, and the bot is stopped and started again (the state closed and opened)
to show that a digest goes once, a missed one once, and a held post waits across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.articles import Article
from bot.config import (
    Config,
    DatabaseConfig,
    DiscordConfig,
    SlackConfig,
    StoreConfig,
    SubscriptionSpec,
)
from bot.delivery import Deliverer
from bot.explain import Fate, explain
from bot.notifiers import build_pacers
from bot.platforms.base import Notifier
from bot.platforms.discord import DiscordNotifier
from bot.platforms.slack import create_slack_notifier
from bot.render import RenderStyle
from bot.routing import RoutingDefaults
from bot.scheduler import Leftover, Scheduler
from bot.state import State
from bot.worker import Worker
from tests.conftest import FakeClock, VirtualTimer
from tests.fakes.discord_server import FakeDiscord, RateLimitPolicy
from tests.fakes.slack_server import FakeSlack
from tests.test_story_delivery import KEYNOTE, Store, article_text

DIGEST = 1_210_000_000_000_004_001
INSTANT = 1_210_000_000_000_004_002
ROLE = "1210000000000009001"
OTHER_ROLE = "1210000000000009002"
GROUP = "S0614TZR7"
SLACK_DIGEST = "C0DIGEST01"
SLACK_INSTANT = "C0INSTANT1"
HOSTILE = f"@everyone <@&{OTHER_ROLE}> <@1210000000000000042> <!channel> <!subteam^SEVIL> wins"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def discord_sub(channel: int, **kwargs: Any) -> SubscriptionSpec:
    return SubscriptionSpec(platform="discord", channel=str(channel), **kwargs)


def slack_sub(channel: str, **kwargs: Any) -> SubscriptionSpec:
    return SubscriptionSpec(platform="slack", channel=channel, **kwargs)


@dataclass
class Bot:
    worker: Worker
    state: State
    clock: FakeClock

    async def round(self, max_wait_s: float = 5.0) -> list[Leftover]:
        """One rescan, and whatever is due within `max_wait_s` (virtual time: waits for a
        rate limit move the clock). 0: only what is due now."""
        await self.worker.scan()
        return await self.worker.deliver_until_idle(max_wait_s=max_wait_s)

    async def at(self, moment: datetime, max_wait_s: float = 5.0) -> list[Leftover]:
        """The clock moved to `moment` (forward only), then a round."""
        self.clock.advance(moment.timestamp() - self.clock.time())
        return await self.round(max_wait_s)


@dataclass
class World:
    """What outlives a restart: the store, the clock, the database file and the fakes."""

    tmp_path: Path
    clock: FakeClock
    store: Store
    discord: FakeDiscord | None = None
    slack: FakeSlack | None = None

    @asynccontextmanager
    async def bot(self, subscriptions: Sequence[SubscriptionSpec]) -> AsyncIterator[Bot]:
        config = Config(
            store=StoreConfig(path=self.store.root, watch=False),
            database=DatabaseConfig(path=self.tmp_path / "state.db"),
            subscriptions=tuple(subscriptions),
            discord=DiscordConfig(
                api_base_url=self.discord.base_url if self.discord else "http://127.0.0.1:9",
                commands=False,
            ),
            slack=SlackConfig(
                api_base_url=self.slack.api_url if self.slack else "http://127.0.0.1:9/api/",
                commands="off",
            ),
        )
        state = await State.open(config.database.path, self.clock)
        notifiers: dict[str, Notifier] = {}
        if self.discord is not None:
            notifiers["discord"] = DiscordNotifier(
                self.discord.bot_token, config.discord, RenderStyle(), {}.get
            )
        if self.slack is not None:
            notifiers["slack"] = create_slack_notifier(
                self.slack.bot_token, config.slack, RenderStyle(), {}, self.clock
            )
        try:
            for notifier in notifiers.values():
                await notifier.start()
            deliverer = Deliverer(state, notifiers, self.clock)
            scheduler = Scheduler(
                deliverer, state.outbox, build_pacers(config, notifiers), self.clock,
                timer=VirtualTimer(self.clock),
            )
            worker = Worker(config, state, scheduler, self.clock)
            await worker.prepare()
            yield Bot(worker, state, self.clock)
        finally:
            for notifier in notifiers.values():
                await notifier.aclose()
            await state.aclose()


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=50, window=1.0)) as server:
        for channel in (DIGEST, INSTANT):
            server.add_channel(channel)
        yield server


def world(tmp_path: Path, start: datetime, **fakes: Any) -> World:
    return World(tmp_path, FakeClock(start), Store(tmp_path / "store"), **fakes)


DEFAULTS = RoutingDefaults()


async def stored(bot: Bot, key: str) -> Article:
    article = await bot.state.get_article(key)
    assert article is not None
    return article


def description(message: dict[str, Any]) -> str:
    return str(message["embeds"][0]["description"])


# --- digests ----------------------------------------------------------------------------------


async def test_a_daily_digest_goes_at_the_local_time_with_the_top_stories(
    tmp_path: Path, fake_discord: FakeDiscord
) -> None:
    # Saturday 28 November 2026, 21:00 in Berlin (UTC+1).
    w = world(tmp_path, utc(2026, 11, 28, 20, 0), discord=fake_discord)
    subs = [discord_sub(DIGEST, mode="daily", digest_at="08:00", timezone="Europe/Berlin")]
    async with w.bot(subs) as bot:
        w.store.write("keynote", article_text(
            "gtc", KEYNOTE, "alpha", quality=70,
            related=["https://beta.example/b", "https://gamma.example/g"],
        ))
        w.store.write("quantum", article_text("q", "Quantum startup raises funds", "delta",
                                              quality=90))
        w.store.write("minor", article_text("m", "A minor update", "epsilon", quality=45))
        w.store.write("low", article_text("l", "Below the floor", "zeta", quality=10))
        assert [left.reason.startswith("next attempt in") for left in await bot.round()] == [
            True
        ]
        assert fake_discord.messages(DIGEST) == []
        # The digest collecting is not a delivery running late (status, metrics): it is due
        # at 08:00 Berlin time.
        assert await bot.state.outbox.oldest_pending_since() == utc(2026, 11, 29, 7).timestamp()
        # `explain` says where each stands.
        quantum = await stored(bot, "https://delta.example/q")
        waiting = (await explain(bot.state, quantum, DEFAULTS, bot.clock.now())).explanations
        assert [(e.fate, e.reason) for e in waiting] == [
            (Fate.WAITING, "waiting for the digest at 2026-11-29 07:00:00 UTC")
        ]
        low = await stored(bot, "https://zeta.example/l")
        [kept_out] = (await explain(bot.state, low, DEFAULTS, bot.clock.now())).explanations
        assert kept_out.reason == "below the floor: quality 10 is under 40"
        # 07:59:59 in Berlin: not yet.
        await bot.at(utc(2026, 11, 29, 6, 59, 59), max_wait_s=0.0)
        assert fake_discord.messages(DIGEST) == []
        # 08:00 in Berlin (07:00 UTC): one message, the stories ranked by quality and outlets.
        await bot.at(utc(2026, 11, 29, 7, 0, 0))
        [digest] = fake_discord.messages(DIGEST)
        embed = digest["embeds"][0]
        assert embed["title"] == "Daily digest · Sun 29 Nov 2026"
        lines = description(digest).split("\n\n")
        assert [line.split("**")[1].split("](")[0] for line in lines] == [
            "[" + KEYNOTE, "[Quantum startup raises funds", "[A minor update",
        ]
        assert lines[0] == (
            f"1. **[{KEYNOTE}](https://alpha.example/gtc)**\n"
            "Alpha News · 3 outlets · Quality 70"
        )
        assert "1 outlet" in lines[1] and "Below the floor" not in description(digest)
        [listed] = (await explain(bot.state, quantum, DEFAULTS, bot.clock.now())).explanations
        assert listed.fate is Fate.DELIVERED and listed.message == digest["id"]
        assert listed.reason == "listed in the digest sent at 2026-11-29 07:00:00 UTC"
        assert digest["mention_roles"] == [] and not digest["mention_everyone"]
        # Coverage of a listed story arrives, and a new story: the digest is not edited, and
        # the keynote is not listed again; the new story waits for tomorrow's digest.
        w.store.write("beta", article_text("b", "Blackwell, explained", "beta", quality=95,
                                           related=["https://alpha.example/gtc"]))
        w.store.write("robots", article_text("r", "Robots learn to fold laundry", "eta",
                                             quality=60))
        await bot.round()
        assert len(fake_discord.messages(DIGEST)) == 1
        assert fake_discord.requests_to("PATCH", f"/channels/{DIGEST}/messages/") == []
        await bot.at(utc(2026, 11, 30, 7, 0, 0))
    _, second = fake_discord.messages(DIGEST)
    assert second["embeds"][0]["title"] == "Daily digest · Mon 30 Nov 2026"
    assert description(second).startswith("1. **[Robots learn to fold laundry]")
    assert KEYNOTE not in description(second)


async def test_a_daily_digest_follows_the_spring_clock_change(
    tmp_path: Path, fake_discord: FakeDiscord
) -> None:
    # Berlin springs forward on Sunday 29 March 2026: 08:00 is 07:00 UTC on Saturday and
    # 06:00 UTC on Sunday.
    w = world(tmp_path, utc(2026, 3, 28, 6, 30), discord=fake_discord)
    subs = [discord_sub(DIGEST, mode="daily", digest_at="08:00", timezone="Europe/Berlin")]
    async with w.bot(subs) as bot:
        w.store.write("a", article_text("a", "Saturday's story", "alpha"))
        await bot.round()
        await bot.at(utc(2026, 3, 28, 7, 0))
        assert [m["embeds"][0]["title"] for m in fake_discord.messages(DIGEST)] == [
            "Daily digest · Sat 28 Mar 2026"
        ]
        w.store.write("b", article_text("b", "Sunday's story", "beta"))
        await bot.round()
        await bot.at(utc(2026, 3, 29, 5, 59, 59), max_wait_s=0.0)
        assert len(fake_discord.messages(DIGEST)) == 1
        await bot.at(utc(2026, 3, 29, 6, 0))  # 08:00 summer time
        titles = [m["embeds"][0]["title"] for m in fake_discord.messages(DIGEST)]
    assert titles == ["Daily digest · Sat 28 Mar 2026", "Daily digest · Sun 29 Mar 2026"]


async def test_a_digest_goes_once_across_restarts_and_a_missed_one_once(
    tmp_path: Path, fake_discord: FakeDiscord
) -> None:
    w = world(tmp_path, utc(2026, 11, 23, 10, 0), discord=fake_discord)  # Monday
    subs = [discord_sub(DIGEST, mode="daily", digest_at="08:00")]  # UTC
    async with w.bot(subs) as bot:
        w.store.write("a", article_text("a", "Monday's story", "alpha"))
        await bot.round()
    # Down from Monday 10:00 to Wednesday 12:00: the digests of Tuesday and Wednesday 08:00
    # were missed. Back up, one digest goes, with what was collected.
    w.clock.advance(utc(2026, 11, 25, 12, 0).timestamp() - w.clock.time())
    async with w.bot(subs) as bot:
        await bot.round()
        [digest] = fake_discord.messages(DIGEST)
        assert "Monday's story" in description(digest)
        assert digest["embeds"][0]["title"] == "Daily digest · Tue 24 Nov 2026"
        # A crash right after Discord stored it, before we recorded it: the row is found
        # `sending` at the next start, and the resend carries the same nonce.
        async def crash_state(db: Any) -> None:
            await db.execute("UPDATE deliveries SET state = 'sending' WHERE kind = 'digest'")

        await bot.state.database.write(crash_state)
    async with w.bot(subs) as bot:
        await bot.round()
        assert len(fake_discord.messages(DIGEST)) == 1
        posts = fake_discord.requests_to("POST", f"/channels/{DIGEST}/messages")
        assert len(posts) == 2  # sent twice, shown once
        # The next story waits for Thursday 08:00, and is alone in that digest.
        w.store.write("b", article_text("b", "Wednesday's story", "beta"))
        await bot.round()
        assert len(fake_discord.messages(DIGEST)) == 1
    async with w.bot(subs) as bot:
        await bot.at(utc(2026, 11, 26, 8, 0))
        await bot.round()
    _, second = fake_discord.messages(DIGEST)
    assert "Wednesday's story" in description(second)
    assert "Monday's story" not in description(second)


async def test_an_hourly_digest_folds_quiet_hours_into_one_when_they_end(
    tmp_path: Path, fake_discord: FakeDiscord
) -> None:
    w = world(tmp_path, utc(2026, 11, 28, 21, 30), discord=fake_discord)
    subs = [discord_sub(DIGEST, mode="hourly", digest_at="00:00", quiet_hours="22:00-07:00")]
    async with w.bot(subs) as bot:
        w.store.write("a", article_text("a", "Before the night", "alpha"))
        await bot.round()
        for hour in range(22, 24):
            await bot.at(utc(2026, 11, 28, hour, 0))
            if hour == 22:
                w.store.write("b", article_text("b", "In the night", "beta", quality=150))
        for hour in range(7):
            await bot.at(utc(2026, 11, 29, hour, 0))
        assert fake_discord.messages(DIGEST) == []
        await bot.at(utc(2026, 11, 29, 7, 0))
        [digest] = fake_discord.messages(DIGEST)
    assert "Before the night" in description(digest) and "In the night" in description(digest)


# --- quiet hours and breaking mentions --------------------------------------------------------


async def test_quiet_hours_hold_posts_across_a_restart_and_breaking_ones_ping_the_role(
    tmp_path: Path, fake_discord: FakeDiscord
) -> None:
    # 23:30 in Berlin.
    w = world(tmp_path, utc(2026, 11, 28, 22, 30), discord=fake_discord)
    subs = [discord_sub(INSTANT, quiet_hours="22:00-07:00", timezone="Europe/Berlin",
                        mention=ROLE)]
    async with w.bot(subs) as bot:
        w.store.write("plain", article_text("p", "Ordinary news", "alpha", quality=80))
        w.store.write("big", article_text("big", HOSTILE, "beta", quality=150, excerpt=HOSTILE))
        await bot.round()
        [breaking] = fake_discord.messages(INSTANT)
        assert breaking["content"] == f"<@&{ROLE}> Breaking story"
        # Exactly the role: not the other role, the user or everyone that the title names.
        assert breaking["mention_roles"] == [ROLE]
        assert breaking["mentions"] == [] and breaking["mention_everyone"] is False
        # Coverage joins it: the post is edited, and still mentions the role (an edit pings
        # no one anew).
        w.store.write("big2", article_text("big2", "More on it", "iota", quality=90,
                                           related=["https://beta.example/big"]))
        await bot.round()
        [edited] = fake_discord.messages(INSTANT)
        assert edited["edited_timestamp"] and "iota.example" in str(edited["embeds"])
        assert edited["mention_roles"] == [ROLE] and edited["content"] == breaking["content"]
        # A held story that four outlets come to cover is breaking: it goes at once.
        w.store.write("chips", article_text("c", "Chip shortage eases", "gamma", quality=60))
        await bot.round()
        assert len(fake_discord.messages(INSTANT)) == 1
        plain = await stored(bot, "https://alpha.example/p")
        [held] = (await explain(bot.state, plain, DEFAULTS, bot.clock.now())).explanations
        assert (held.fate, held.reason) == (
            Fate.WAITING,
            "queued: held by the subscription's quiet hours until 2026-11-29 06:00:00 UTC",
        )
        w.store.write("chips2", article_text(
            "c2", "Chip supply improves", "delta", quality=55,
            related=["https://gamma.example/c", "https://eta.example/x",
                     "https://theta.example/y"],
        ))
        await bot.round()
        chips = fake_discord.messages(INSTANT)[-1]
        assert chips["embeds"][0]["title"] == "Chip shortage eases"
        assert chips["mention_roles"] == [ROLE]
    async with w.bot(subs) as bot:  # a restart in the night: the ordinary story still waits
        await bot.at(utc(2026, 11, 29, 5, 59), max_wait_s=0.0)
        assert len(fake_discord.messages(INSTANT)) == 2
        await bot.at(utc(2026, 11, 29, 6, 0))  # 07:00 in Berlin
        ordinary = fake_discord.messages(INSTANT)[-1]
    assert len(fake_discord.messages(INSTANT)) == 3
    assert ordinary["embeds"][0]["title"] == "Ordinary news"
    assert ordinary["mention_roles"] == [] and ordinary["content"] == ""


# --- Slack ------------------------------------------------------------------------------------


async def test_slack_digest_and_breaking_post_ping_only_the_user_group(tmp_path: Path) -> None:
    async with FakeSlack() as fake_slack:
        for channel in (SLACK_DIGEST, SLACK_INSTANT):
            fake_slack.add_channel(channel)
        w = world(tmp_path, utc(2026, 11, 28, 20, 0), slack=fake_slack)
        subs = [
            slack_sub(SLACK_DIGEST, mode="daily", digest_at="08:00", timezone="Europe/Berlin",
                      mention=GROUP),
            slack_sub(SLACK_INSTANT, mention=GROUP),
        ]
        async with w.bot(subs) as bot:
            w.store.write("big", article_text("big", HOSTILE, "beta", quality=150))
            w.store.write("small", article_text("s", "Smaller news", "alpha", quality=50))
            await bot.round()
            assert fake_slack.messages(SLACK_DIGEST) == []
            breaking, plain = sorted(
                fake_slack.messages(SLACK_INSTANT), key=lambda m: "Smaller" in m["text"]
            )
            await bot.at(utc(2026, 11, 29, 7, 0))
            [digest] = fake_slack.messages(SLACK_DIGEST)
    assert breaking["text"].startswith(f"<!subteam^{GROUP}> ")
    assert "<!subteam" not in plain["text"]
    assert digest["text"].startswith(f"<!subteam^{GROUP}> Daily digest · Sun 29 Nov 2026")
    for message in (breaking, digest):
        shown = str(message["blocks"])
        assert set(_tags(shown)) == {f"<!subteam^{GROUP}>"}
        assert "&lt;!subteam^SEVIL&gt;" in shown and "<!channel>" not in shown
    sections = [b["text"]["text"] for b in digest["blocks"] if b["type"] == "section"]
    assert sections[1].startswith("1. *<https://beta.example/big|")
    assert "Breaking · Beta News · 1 outlet · Quality 150" in sections[1]
    assert sections[2].startswith("2. *<https://alpha.example/s|Smaller news>*")


def _tags(text: str) -> list[str]:
    import re

    return re.findall(r"<!subteam\^[^>]*>", text)
