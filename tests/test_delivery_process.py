"""Delivery through real `newsbot run` processes, against the fake Discord and Slack that
enforce the platforms' limits with real headers and 429s: `--once` that finishes the job, the
exit status when deliveries are left, and exactly once when the process is killed at the worst
moments (mid-post, after routing before any send, during a rate-limit wait), when the platform
fails (5xx, dropped connections, 403, 404), when the store folder vanishes and comes back, and
when a second `newsbot run` is started on the same database.

Moments are made deterministic by the fakes (a held answer, a held request) and by the bot's
own log lines, never by sleeping; counts are taken from what the fakes received."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import aiohttp
import pytest

from bot.app import EXIT_DELIVERIES_LEFT
from tests.fakes.discord_server import FakeDiscord, RateLimitPolicy
from tests.fakes.slack_server import FakeSlack
from tests.processes import BotProcess

SLACK_CHANNEL = "C0NEWS0001"
SLACK_ARCHIVED = "C0OLD00001"
CHANNELS = [1_210_000_000_000_002_000 + n for n in range(5)]


def article_text(n: int, published: str) -> str:
    return "\n".join(
        [
            "---",
            f'title: "Story {n}"',
            f"webUrl: https://example.com/news/{n}",
            f"publishedDateTime: {published}",
            "quality: 80",
            "provider:",
            "  name: Example News",
            "  domain: example.com",
            "topics:",
            "  - AI",
            "---",
            "",
        ]
    )


def write_articles(store: Path, numbers: Iterable[int]) -> None:
    """Renamed into place, as a well-behaved producer writes; story n published on day n."""
    store.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        tmp = store / f".{n}.md.tmp"
        tmp.write_text(article_text(n, f"2026-10-01T{n % 24:02d}:{n % 60:02d}:00Z"), "utf-8")
        os.utime(tmp, (1_700_000_000 + n, 1_700_000_000 + n))
        os.rename(tmp, store / f"{n}.md")


def write_config(tmp_path: Path, *sections: str, subscriptions: Sequence[str]) -> Path:
    path = tmp_path / "newsbot.toml"
    (tmp_path / "store").mkdir(exist_ok=True)
    lines = [
        "[store]",
        f'path = "{tmp_path / "store"}"',
        "rescan_interval_s = 0.2",
        "watch = false",
        "[database]",
        f'path = "{tmp_path / "newsbot.db"}"',
        *sections,
    ]
    for sub in subscriptions:
        lines += ["[[subscriptions]]", sub]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def db_rows(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{tmp_path / 'newsbot.db'}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql).fetchall())


# --- Slack -----------------------------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(SLACK_CHANNEL)
        server.add_channel(SLACK_ARCHIVED)
        # Slack's own shape: about one post per second per channel.
        server.rate_limit("chat.postMessage", per_second=1.0, burst=1)
        yield server


def slack_config(tmp_path: Path, fake: FakeSlack, subscriptions: Sequence[str]) -> Path:
    return write_config(
        tmp_path,
        "[slack]",
        f'api_base_url = "{fake.api_url}"',
        'commands = "off"',
        subscriptions=subscriptions,
    )


def slack_sub(channel: str, backfill: int = 0) -> str:
    return f'platform = "slack"\nchannel = "{channel}"\nbackfill = {backfill}'


@pytest.mark.timeout(120)
async def test_run_once_posts_30_articles_to_one_slack_channel_in_one_run(
    tmp_path: Path, slack: FakeSlack
) -> None:
    write_articles(tmp_path / "store", range(1, 31))
    config = slack_config(tmp_path, slack, [slack_sub(SLACK_CHANNEL, backfill=30)])
    bot = await BotProcess.spawn(
        "run", "--once", "--config", str(config), environ={"SLACK_BOT_TOKEN": slack.bot_token}
    )
    assert await bot.finish(timeout=100) == 0, bot.stderr
    titles = [m["text"] for m in slack.messages(SLACK_CHANNEL)]
    assert len(titles) == 30
    # Oldest story first, so the channel's latest message is its newest story.
    published_order = sorted(range(1, 31), key=lambda n: (n % 24, n % 60))
    assert [re.search(r"Story (\d+)", t)[1] for t in titles] == [  # type: ignore[index]
        str(n) for n in published_order
    ]
    refusals = [c for c in slack.calls("chat.postMessage") if c.status == 429]
    assert len(refusals) <= 1


async def test_run_once_exits_75_naming_what_is_left_and_why(
    tmp_path: Path, slack: FakeSlack
) -> None:
    slack.archive_channel(SLACK_ARCHIVED)
    write_articles(tmp_path / "store", [1])
    config = slack_config(
        tmp_path, slack, [slack_sub(SLACK_CHANNEL, backfill=1), slack_sub(SLACK_ARCHIVED, 1)]
    )
    # A wait longer than this run is willing to wait: the post stays for the next run.
    slack.inject("chat.postMessage", status=429, retry_after=600, channel=SLACK_CHANNEL)
    bot = await BotProcess.spawn(
        "run", "--once", "--max-wait-s", "5", "--config", str(config),
        environ={"SLACK_BOT_TOKEN": slack.bot_token},
    )
    assert await bot.finish() == EXIT_DELIVERIES_LEFT, bot.stderr
    assert "2 deliveries are left in 2 channels" in bot.stderr
    left = [line for line in bot.stderr_lines if "left slack:" in line]
    assert any(SLACK_CHANNEL in line and "next attempt in" in line for line in left)
    assert any(SLACK_ARCHIVED in line and "parked" in line and "is_archived" in line
               for line in left)
    assert slack.messages(SLACK_CHANNEL) == []

    # `newsbot status` tells the same story, for a person and as JSON.
    shown = await BotProcess.spawn("status", "--config", str(config))
    assert await shown.finish() == 0, shown.stderr
    assert "worker: not running" in shown.stdout  # a --once run keeps no heartbeat
    assert "slack    pending 1, parked 1" in shown.stdout
    assert f"slack:{SLACK_ARCHIVED}: Slack refused channel {SLACK_ARCHIVED}: is_archived" in (
        shown.stdout
    )
    as_json = await BotProcess.spawn("status", "--json", "--config", str(config))
    assert await as_json.finish() == 0
    facts = json.loads(as_json.stdout)
    assert facts["deliveries"] == {"slack": {"pending": 1, "parked": 1}}
    assert facts["next_due_in_s"] > 500 and facts["oldest_pending_age_s"] < 60
    assert [p["target"] for p in facts["parked"]] == [f"slack:{SLACK_ARCHIVED}"]

    # Nothing due is left once the wait is over and the channel fixed: exit 0.
    with sqlite3.connect(tmp_path / "newsbot.db") as conn:
        conn.execute("UPDATE deliveries SET next_attempt_at = 0 WHERE state = 'pending'")
        conn.execute("DELETE FROM deliveries WHERE state = 'parked'")
        conn.execute("DELETE FROM subscriptions WHERE channel = ?", (SLACK_ARCHIVED,))
    config = slack_config(tmp_path, slack, [slack_sub(SLACK_CHANNEL, backfill=1)])
    again = await BotProcess.spawn(
        "run", "--once", "--config", str(config), environ={"SLACK_BOT_TOKEN": slack.bot_token}
    )
    assert await again.finish() == 0, again.stderr
    assert len(slack.messages(SLACK_CHANNEL)) == 1


# --- Discord ---------------------------------------------------------------------------------


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(
        message_rate_limit=RateLimitPolicy(limit=5, window=2.0), global_rate_limit=50
    ) as server:
        for channel in CHANNELS:
            server.add_channel(channel)
        yield server


def discord_config(
    tmp_path: Path, fake: FakeDiscord, channels: Iterable[int], commands: bool = False
) -> Path:
    return write_config(
        tmp_path,
        "[discord]",
        f'api_base_url = "{fake.base_url}"',
        f"commands = {str(commands).lower()}",
        subscriptions=[f'platform = "discord"\nchannel = "{c}"' for c in channels],
    )


def discord_env(fake: FakeDiscord) -> dict[str, str]:
    return {"DISCORD_TOKEN": fake.bot_token}


async def first_run(config: Path, environ: dict[str, str]) -> None:
    """The first run records the store as it is (no flood), so what comes next is new."""
    bot = await BotProcess.spawn("run", "--once", "--config", str(config), environ=environ)
    assert await bot.finish() == 0, bot.stderr


def posted(fake: FakeDiscord, channels: Iterable[int]) -> Counter[tuple[int, str]]:
    return Counter(
        (channel, m["embeds"][0]["title"]) for channel in channels for m in fake.messages(channel)
    )


def assert_exactly_once(fake: FakeDiscord, channels: Iterable[int], titles: set[str]) -> None:
    channels = list(channels)
    counts = posted(fake, channels)
    assert set(counts.values()) == {1}, counts
    assert {(c, t) for c, t in counts} == {(c, t) for c in channels for t in titles}


async def test_kill_9_mid_post_then_restart_posts_each_once(
    tmp_path: Path, discord: FakeDiscord
) -> None:
    config = discord_config(tmp_path, discord, CHANNELS)
    await first_run(config, discord_env(discord))
    write_articles(tmp_path / "store", range(1, 4))
    # Discord stores the fifth post but its answer never comes: the bot is killed waiting.
    hold = discord.hold("POST", lambda r: r.route.endswith("/messages") and r.index >= 0)
    hold.times = None
    bot = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    await hold.wait_hit(count=5, timeout=20)
    await bot.kill()
    hold.cancel()

    again = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    await discord.wait_for(
        lambda: sum(posted(discord, CHANNELS).values()) >= 15, timeout=20, what="15 posts"
    )
    assert await again.terminate() == 0, again.stderr
    assert_exactly_once(discord, CHANNELS, {"Story 1", "Story 2", "Story 3"})


async def test_kill_9_after_routing_before_any_send_loses_nothing(
    tmp_path: Path, discord: FakeDiscord
) -> None:
    config = discord_config(tmp_path, discord, CHANNELS, commands=True)
    await first_run(config, discord_env(discord))
    write_articles(tmp_path / "store", range(1, 3))
    # `run` routes the new articles at start-up, then connects the gateway before sending:
    # held there, it has routed everything and sent nothing.
    gateway = discord.hold("GET", "/gateway")
    bot = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    await gateway.wait_hit(timeout=20)
    await bot.kill()
    gateway.cancel()
    assert discord.requests_to("POST", "/channels/") == []
    pending = db_rows(tmp_path, "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'")
    assert pending == [(10,)]

    again = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    await discord.wait_for(
        lambda: sum(posted(discord, CHANNELS).values()) >= 10, timeout=20, what="10 posts"
    )
    assert await again.terminate() == 0, again.stderr
    assert_exactly_once(discord, CHANNELS, {"Story 1", "Story 2"})


async def test_kill_9_during_a_rate_limit_wait_then_the_restart_keeps_the_wait(
    tmp_path: Path, discord: FakeDiscord
) -> None:
    [channel] = CHANNELS[:1]
    config = discord_config(tmp_path, discord, [channel])
    await first_run(config, discord_env(discord))
    write_articles(tmp_path / "store", [1])
    refusal = discord.inject("POST", f"/channels/{channel}/messages", status=429, retry_after=4)
    bot = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    await bot.wait_for_line("delivery retry")  # the wait is written down once this is logged
    await bot.kill()
    refused_at = refusal.requests[0].received_at

    again = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    await discord.wait_for_message(channel, timeout=20)
    assert await again.terminate() == 0, again.stderr
    posts = discord.requests_to("POST", f"/channels/{channel}/messages")
    assert len(posts) == 2  # the refused one, then one after the wait
    assert posts[1].received_at >= refused_at + 4.0
    assert_exactly_once(discord, [channel], {"Story 1"})


async def test_platform_failures_post_each_once_and_park_refusing_channels(
    tmp_path: Path, discord: FakeDiscord
) -> None:
    flaky, lossy, forbidden, healthy, missing = CHANNELS
    discord.remove_channel(missing)  # 404 Unknown Channel
    discord.forbid_channel(forbidden, code=50013)  # 403 Missing Permissions
    config = discord_config(tmp_path, discord, CHANNELS)
    await first_run(config, discord_env(discord))
    write_articles(tmp_path / "store", range(1, 5))
    discord.inject("POST", f"/channels/{flaky}/messages", status=503, times=2)
    discord.inject("POST", f"/channels/{flaky}/messages", status=500, times=1)
    # Discord stores the post, then the connection drops before its answer.
    discord.drop("POST", f"/channels/{lossy}/messages", process_first=True, times=2)
    discord.drop("POST", f"/channels/{healthy}/messages", mode="reset", times=1)
    bot = await BotProcess.spawn(
        "run", "--once", "--max-wait-s", "60", "--config", str(config),
        environ=discord_env(discord),
    )
    assert await bot.finish(timeout=90) == EXIT_DELIVERIES_LEFT, bot.stderr
    stories = {f"Story {n}" for n in range(1, 5)}
    assert_exactly_once(discord, [flaky, lossy, healthy], stories)
    left = "\n".join(line for line in bot.stderr_lines if "left discord:" in line)
    assert f"discord:{forbidden} rows=4: parked:" in left and "50013" in left
    assert f"discord:{missing} rows=4: parked:" in left and "10003" in left
    assert discord.messages(forbidden) == []


async def test_a_second_run_on_the_same_database_is_refused(tmp_path: Path) -> None:
    write_articles(tmp_path / "store", [1])
    config = write_config(
        tmp_path, subscriptions=['platform = "console"\nchannel = "terminal"\nbackfill = 1']
    )
    first = await BotProcess.spawn("run", "--config", str(config))
    await first.wait_for_line("watching")
    second = await BotProcess.spawn("run", "--once", "--config", str(config))
    assert await second.finish() == 2
    assert f"another newsbot run (pid {first.proc.pid})" in second.stderr
    assert "Story 1" not in second.stdout
    assert await first.terminate() == 0
    # Once the first has stopped, the database is free again.
    third = await BotProcess.spawn("run", "--once", "--config", str(config))
    assert await third.finish() == 0, third.stderr


async def test_the_store_vanishing_and_returning_reposts_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_articles(store, range(1, 4))
    config = write_config(
        tmp_path,
        "[http]",
        "enabled = true",
        "port = 0",
        subscriptions=['platform = "console"\nchannel = "terminal"\nbackfill = 3'],
    )
    bot = await BotProcess.spawn("run", "--config", str(config))
    listening = await bot.wait_for_line("http: listening on")
    port = int(listening.rsplit(":", 1)[1])
    await bot.wait_for_line("watching")
    away = tmp_path / "unmounted"
    store.rename(away)
    await bot.wait_for_line("is missing or not a folder")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            body = json.loads(await response.text())
            assert response.status == 503 and body["checks"]["store"] is False
        away.rename(store)
        write_articles(store, [4])
        await bot.wait_for_line("Story 4", stdout=True)
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 200
    assert await bot.terminate() == 0, bot.stderr
    for n in range(1, 5):
        assert bot.stdout.count(f"Story {n}") == 1, bot.stdout


# --- stories through a real process ----------------------------------------------------------


def story_text(slug: str, title: str, outlet: str, related: Sequence[str] = (),
               quality: int = 80) -> str:
    lines = [
        "---", f'title: "{title}"', f"webUrl: https://{outlet}.example/{slug}",
        "publishedDateTime: 2026-10-05T10:00:00Z", f"quality: {quality}",
        "provider:", f"  name: {outlet.title()}", f"  domain: {outlet}.example",
        "topics:", "  - AI",
    ]
    if related:
        lines.append("related:")
        for url in related:
            lines += ["  - title: Same story", f"    webUrl: {url}"]
    return "\n".join([*lines, "---", ""])


def put(store: Path, name: str, text: str) -> None:
    tmp = store / f".{name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.rename(tmp, store / f"{name}.md")


async def test_a_story_told_by_three_outlets_is_one_post_edited_or_threaded_across_a_kill(
    tmp_path: Path, discord: FakeDiscord
) -> None:
    edit_channel, thread_channel = CHANNELS[:2]
    config = write_config(
        tmp_path,
        "[discord]", f'api_base_url = "{discord.base_url}"', "commands = false",
        subscriptions=[
            f'platform = "discord"\nchannel = "{edit_channel}"',
            f'platform = "discord"\nchannel = "{thread_channel}"\nlate_coverage = "thread"',
        ],
    )
    store = tmp_path / "store"
    await first_run(config, discord_env(discord))
    bot = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    put(store, "a", story_text("gtc", "Nvidia unveils Blackwell at GTC", "alpha", quality=60))
    await discord.wait_for_message(edit_channel, timeout=20)
    await discord.wait_for_message(thread_channel, timeout=20)
    put(store, "b", story_text("b", "Blackwell: what it means", "beta",
                               related=["https://alpha.example/gtc"], quality=90))
    post = discord.messages(thread_channel)[0]["id"]
    await discord.wait_for_message(int(post), timeout=20)  # the reply, in the post's thread
    await discord.wait_for(
        lambda: bool(discord.messages(edit_channel)[0].get("edited_timestamp")),
        timeout=20, what="the edit",
    )
    await bot.kill()

    again = await BotProcess.spawn("run", "--config", str(config), environ=discord_env(discord))
    put(store, "c", story_text("c", "Nvidia unveils Blackwell at GTC!", "gamma"))  # by title
    await discord.wait_for_message(int(post), count=2, timeout=20)
    await discord.wait_for(
        lambda: "gamma.example" in str(discord.messages(edit_channel)[0]["embeds"]),
        timeout=20, what="the second edit",
    )
    assert await again.terminate() == 0, again.stderr
    # One post per channel; the edited one leads with the better article, the threaded one
    # kept its headline and got one reply per late outlet.
    [edited] = discord.messages(edit_channel)
    assert edited["embeds"][0]["title"] == "Blackwell: what it means"
    assert "alpha.example" in str(edited["embeds"]) and "gamma.example" in str(edited["embeds"])
    [threaded] = discord.messages(thread_channel)
    assert threaded["embeds"][0]["title"] == "Nvidia unveils Blackwell at GTC"
    replies = [m["embeds"][0]["title"] for m in discord.messages(int(post))]
    assert replies == ["Blackwell: what it means", "Nvidia unveils Blackwell at GTC!"]
    assert len(discord.requests_to("POST", f"/channels/{edit_channel}/messages")) == 1
