"""Several real `newsbot run` workers on one PostgreSQL database, against the fake Discord:
the channels shared out, one scanner at a time, a worker killed mid-fan-out and another
stopped, and still every (channel, story) posted exactly once, the scan taken over, nothing
left stuck. Moments come from the workers' own log lines and the fake's counts, not sleeps."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from tests.fakes.discord_server import FakeDiscord, RateLimitPolicy
from tests.postgres_server import PostgresServer, binaries
from tests.processes import BotProcess
from tests.test_delivery_process import write_articles

pytestmark = pytest.mark.skipif(
    binaries() is None and not os.environ.get("NEWSBOT_REQUIRE_POSTGRES"),
    reason="PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)",
)

CHANNELS = [1_210_000_000_000_003_000 + n for n in range(24)]
TAKEOVER_TIMEOUT_S = 45.0  # a dead worker is noticed after ALIVE_S (10 s), the lease LEASE_S


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(
        message_rate_limit=RateLimitPolicy(limit=5, window=2.0), global_rate_limit=50
    ) as server:
        for channel in CHANNELS:
            server.add_channel(channel)
        yield server


def config_file(tmp_path: Path, fake: FakeDiscord, url: str) -> Path:
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    lines = [
        "[store]", f'path = "{store}"', "rescan_interval_s = 0.2", "watch = false",
        "[database]", f'url = "{url}"',
        "[discord]", f'api_base_url = "{fake.base_url}"', "commands = false",
    ]  # fmt: skip
    for channel in CHANNELS:
        lines += ["[[subscriptions]]", 'platform = "discord"', f'channel = "{channel}"']
    path = tmp_path / "newsbot.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def posted(fake: FakeDiscord) -> Counter[tuple[int, str]]:
    return Counter(
        (channel, m["embeds"][0]["title"]) for channel in CHANNELS for m in fake.messages(channel)
    )


@asynccontextmanager
async def crew_of(count: int, config: Path, env: dict[str, str]) -> AsyncIterator[list[BotProcess]]:
    """`count` `newsbot run` workers on one configuration; their last log lines are printed
    when the test fails, and whatever still runs is stopped."""
    workers = [
        await BotProcess.spawn("run", "--config", str(config), environ=env) for _ in range(count)
    ]
    try:
        yield workers
    except BaseException:
        for n, worker in enumerate(workers):
            print(f"--- worker {n} ---\n" + "\n".join(worker.stderr_lines[-60:]))
        raise
    finally:
        for worker in workers:
            if worker.proc.returncode is None:
                await worker.terminate()


async def outbox_states(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state")
    finally:
        await conn.close()
    return {r["state"]: r["n"] for r in rows}


@pytest.mark.timeout(240)
async def test_three_workers_one_killed_one_stopped_post_each_story_once_per_channel(
    tmp_path: Path, discord: FakeDiscord, postgres_server: PostgresServer
) -> None:
    url = await asyncio.to_thread(postgres_server.create_database, "three_workers")
    config = config_file(tmp_path, discord, url)
    env = {"DISCORD_TOKEN": discord.bot_token}
    first = await BotProcess.spawn("run", "--once", "--config", str(config), environ=env)
    assert await first.finish() == 0, first.stderr  # the store's first scan: nothing posted

    async with crew_of(3, config, env) as workers:
        for worker in workers:
            await worker.wait_for_line("workers alive: 3")
        write_articles(tmp_path / "store", range(1, 5))
        await discord.wait_for(
            lambda: sum(posted(discord).values()) >= 20, timeout=30, what="20 posts"
        )
        # Mid-fan-out: the scanning worker is killed (its claims in flight and its lease
        # die with it), another is stopped cleanly; the third carries on alone.
        leader = next(w for w in workers if "this worker now scans the store" in w.stderr)
        await leader.kill()
        stopped = next(w for w in workers if w is not leader)
        assert await stopped.terminate() == 0, stopped.stderr
        survivor = next(w for w in workers if w not in (leader, stopped))
        await survivor.wait_for_line("this worker now scans the store", TAKEOVER_TIMEOUT_S)
        write_articles(tmp_path / "store", [5])  # only a scan by the new leader finds it
        titles = {f"Story {n}" for n in range(1, 6)}
        await discord.wait_for(
            lambda: (
                {t for _, t in posted(discord)} == titles
                and len(posted(discord)) == len(CHANNELS) * len(titles)
            ),
            timeout=TAKEOVER_TIMEOUT_S,
            what="every story in every channel",
        )
        counts = posted(discord)
        assert set(counts.values()) == {1}, counts
        assert set(counts) == {(c, t) for c in CHANNELS for t in titles}
        assert await outbox_states(url) == {"sent": len(CHANNELS) * len(titles)}
        # The three shared the channels before two went, and the survivor saw them go.
        assert all("delivery sent" in w.stderr for w in workers)
        assert "workers alive: 1" in survivor.stderr


# --- chat commands, answered once --------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_one_worker_holds_socket_mode_and_another_takes_it_over_when_it_dies(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    from tests.fakes.slack_server import FakeSlack

    url = await asyncio.to_thread(postgres_server.create_database, "chat_once")
    channel = "C0SOCKET01"
    async with FakeSlack() as slack:
        slack.add_channel(channel)
        store = tmp_path / "store"
        store.mkdir()
        config = tmp_path / "newsbot.toml"
        config.write_text(
            "\n".join([
                "[store]", f'path = "{store}"', "watch = false",
                "[database]", f'url = "{url}"',
                "[slack]", f'api_base_url = "{slack.api_url}"', 'commands = "socket"',
            ]) + "\n",
            encoding="utf-8",
        )  # fmt: skip
        env = {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
        }
        async with crew_of(2, config, env) as workers:
            for worker in workers:
                await worker.wait_for_line("workers alive: 2")
            await slack.wait_for_socket()
            holder = next(w for w in workers if "holds the chat connections" in w.stderr)
            other = next(w for w in workers if w is not holder)
            assert len(slack.socket_connections) == 1  # one connection for the two workers
            first = await slack.send_slash_command("/news", "help", channel_id=channel)
            await slack.wait_for_ack(first)
            assert len(slack.acks(first)) == 1

            await holder.kill()
            await other.wait_for_line("now holds the chat connections", TAKEOVER_TIMEOUT_S)
            await slack.wait_for_socket(count=2, timeout=TAKEOVER_TIMEOUT_S)
            second = await slack.send_slash_command("/news", "help", channel_id=channel)
            ack = await slack.wait_for_ack(second)
            assert len(slack.acks(second)) == 1 and ack["payload"]["response_type"] == "ephemeral"


@pytest.mark.timeout(120)
async def test_one_worker_holds_the_discord_gateway_and_another_takes_it_over(
    tmp_path: Path, discord: FakeDiscord, postgres_server: PostgresServer
) -> None:
    url = await asyncio.to_thread(postgres_server.create_database, "gateway_once")
    config = config_file(tmp_path, discord, url)
    config.write_text(
        config.read_text(encoding="utf-8").replace("commands = false", "commands = true"),
        encoding="utf-8",
    )
    env = {"DISCORD_TOKEN": discord.bot_token}
    async with crew_of(2, config, env) as workers:
        for worker in workers:
            await worker.wait_for_line("workers alive: 2")
        await discord.wait_for_session(timeout=30)
        holder = next(w for w in workers if "holds the chat connections" in w.stderr)
        other = next(w for w in workers if w is not holder)
        assert len([s for s in discord.sessions if not s.closed]) == 1  # one gateway
        first = await discord.dispatch_interaction("news", {"topic": "AI"}, channel_id=CHANNELS[0])
        answered = await discord.wait_for_interaction_response(first.id, timeout=10)
        assert answered.callback_type == 4

        await holder.kill()
        await other.wait_for_line("now holds the chat connections", TAKEOVER_TIMEOUT_S)
        await discord.wait_for(
            lambda: any(not s.closed and s.identified for s in discord.sessions[1:]),
            timeout=30,
            what="the second worker's gateway session",
        )
        second = await discord.dispatch_interaction("news", {"topic": "AI"}, channel_id=CHANNELS[0])
        answered = await discord.wait_for_interaction_response(second.id, timeout=10)
        assert answered.callback_type == 4
        assert len([s for s in discord.sessions if not s.closed]) == 1


@pytest.mark.timeout(120)
async def test_a_worker_killed_after_discord_stored_its_post_leaves_it_posted_once(
    tmp_path: Path, discord: FakeDiscord, postgres_server: PostgresServer
) -> None:
    """The worst moment: Discord stored the post, its answer never reached the worker, and the
    worker died. Its row stays `sending` under its claim; when it is seen gone, another worker
    sends it again with the same nonce, and Discord answers with the message it already has:
    one message in the channel."""
    from bot.partition import owner

    url = await asyncio.to_thread(postgres_server.create_database, "worst_moment")
    config = config_file(tmp_path, discord, url)
    env = {"DISCORD_TOKEN": discord.bot_token}
    first = await BotProcess.spawn("run", "--once", "--config", str(config), environ=env)
    assert await first.finish() == 0, first.stderr
    async with crew_of(2, config, env) as workers:
        alive = [await w.wait_for_line("workers alive: 2") for w in workers]
        ids = alive[0].split("(", 1)[1].rstrip(")").split(", ")
        by_pid = {w.proc.pid: w for w in workers}
        worker_of = {i: next(w for p, w in by_pid.items() if f"-{p}-" in i) for i in ids}
        target = CHANNELS[0]
        victim = worker_of[owner("discord", str(target), ids)]
        survivor = next(w for w in workers if w is not victim)
        held = discord.hold("POST", f"/channels/{target}/messages", process_first=True)
        write_articles(tmp_path / "store", [1])
        await held.wait_hit(timeout=30)
        assert len(discord.messages(target)) == 1  # stored at Discord; no answer came back
        await victim.kill()
        held.cancel()
        await discord.wait_for(
            lambda: all(len(discord.messages(c)) >= 1 for c in CHANNELS),
            timeout=TAKEOVER_TIMEOUT_S,
            what="the story in every channel",
        )
        resent = await survivor.wait_for_line(
            f"delivery sent platform=discord channel={target}", TAKEOVER_TIMEOUT_S
        )
        assert "attempt=2" in resent  # the dead worker's attempt was the first
        assert await outbox_states(url) == {"sent": len(CHANNELS)}
        assert [len(discord.messages(c)) for c in CHANNELS] == [1] * len(CHANNELS)


@pytest.mark.timeout(120)
async def test_a_worker_killed_after_slack_stored_its_post_leaves_it_posted_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """The same moment on Slack, which has no nonce: the scanning worker finds the message by
    its metadata (conversations.history) and records it as sent without posting again."""
    from bot.partition import owner
    from tests.fakes.slack_server import FakeSlack

    channels = [f"C0WORKER{n:02d}" for n in range(8)]
    url = await asyncio.to_thread(postgres_server.create_database, "worst_moment_slack")
    async with FakeSlack() as slack:
        for channel in channels:
            slack.add_channel(channel)
        store = tmp_path / "store"
        store.mkdir()
        lines = [
            "[store]", f'path = "{store}"', "rescan_interval_s = 0.2", "watch = false",
            "[database]", f'url = "{url}"',
            "[slack]", f'api_base_url = "{slack.api_url}"', 'commands = "off"',
        ]  # fmt: skip
        for channel in channels:
            lines += ["[[subscriptions]]", 'platform = "slack"', f'channel = "{channel}"']
        config = tmp_path / "newsbot.toml"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = {"SLACK_BOT_TOKEN": slack.bot_token}
        first = await BotProcess.spawn("run", "--once", "--config", str(config), environ=env)
        assert await first.finish() == 0, first.stderr
        async with crew_of(2, config, env) as workers:
            alive = [await w.wait_for_line("workers alive: 2") for w in workers]
            ids = alive[0].split("(", 1)[1].rstrip(")").split(", ")
            worker_of = {i: next(w for w in workers if f"-{w.proc.pid}-" in i) for i in ids}
            target = channels[0]
            victim = worker_of[owner("slack", target, ids)]
            survivor = next(w for w in workers if w is not victim)
            held = slack.inject("chat.postMessage", hold=True, process=True, channel=target)
            write_articles(store, [1])
            await held.wait_hit(timeout=30)
            assert len(slack.messages(target)) == 1  # stored by Slack; no answer came back
            await victim.kill()
            held.release()
            await survivor.wait_for_line(
                f"interrupted send found posted platform=slack channel={target}",
                TAKEOVER_TIMEOUT_S,
            )
            for channel in channels:
                await slack.wait_for_message(channel, timeout=TAKEOVER_TIMEOUT_S)
            assert [len(slack.messages(c)) for c in channels] == [1] * len(channels)
            assert await outbox_states(url) == {"sent": len(channels)}
