"""Operating the bot: the whole flow at DEBUG with every kind of secret in play (no log line
may carry one), and the HTTP face (health, readiness, Prometheus metrics) scraped while the
worker runs. Real discord.py and slack_sdk against the fakes; real store folder and SQLite."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bot.app import RunningBot, run_bot
from bot.config import (
    Config,
    DatabaseConfig,
    DiscordConfig,
    HttpConfig,
    SlackConfig,
    StoreConfig,
    SubscriptionSpec,
)
from tests.fakes.discord_server import FakeDiscord, RateLimitPolicy, patch_discord_py
from tests.fakes.slack_server import FakeSlack

DISCORD_CHANNEL = 111111111111111111
GUILD = 222222222222222222
SLACK_CHANNEL = "C0NEWS0001"


def write_article(store: Path, n: int, quality: int = 80) -> str:
    title = f"Story {n} about AI"
    text = (
        f'---\ntitle: "{title}"\nwebUrl: https://example.com/news/{n}\n'
        f"publishedDateTime: 2026-11-2{n % 10}T08:00:00Z\nquality: {quality}\n"
        'excerpt: "A sentence or two."\nprovider:\n  name: Example News\n  domain: example.com\n'
        "topics:\n  - AI\n---\n"
    )
    tmp = store / f".{n}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.rename(tmp, store / f"{n}.md")
    return title


@asynccontextmanager
async def running(config: Config, environ: dict[str, str]) -> AsyncIterator[RunningBot]:
    stop = asyncio.Event()
    ready: asyncio.Future[RunningBot] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_bot(config, once=False, out=io.StringIO(), stop=stop, environ=environ,
                on_ready=ready.set_result)
    )
    await asyncio.wait({task, ready}, timeout=20, return_when="FIRST_COMPLETED")
    if task.done():
        task.result()
        pytest.fail("the bot stopped during start-up")
    try:
        yield ready.result()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=5, window=0.5)) as server:
        server.add_channel(DISCORD_CHANNEL, guild_id=GUILD)
        with patch_discord_py(server):
            yield server


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(SLACK_CHANNEL)
        yield server


def every_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Each record as formatted, its raw arguments, and any traceback text."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_text:
            parts.append(record.exc_text)
    return "\n".join(parts)


async def test_no_secret_reaches_any_log_line_even_at_debug(
    tmp_path: Path,
    discord_fake: FakeDiscord,
    slack_fake: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = tmp_path / "store"
    store.mkdir()
    discord_hook = discord_fake.add_webhook(DISCORD_CHANNEL).url
    slack_hook = slack_fake.add_incoming_webhook(SLACK_CHANNEL)
    environ = {
        "DISCORD_TOKEN": discord_fake.bot_token,
        "DISCORD_WEBHOOK_TEAM": discord_hook,
        "SLACK_BOT_TOKEN": slack_fake.bot_token,
        "SLACK_SIGNING_SECRET": slack_fake.signing_secret,
        "SLACK_WEBHOOK_TEAM": slack_hook,
    }
    subscriptions = tuple(
        SubscriptionSpec(platform=p, channel=c, topics=("AI",))
        for p, c in (
            ("discord", str(DISCORD_CHANNEL)),
            ("discord", "webhook:team"),
            ("slack", SLACK_CHANNEL),
            ("slack", "webhook:team"),
        )
    )
    config = Config(
        store=StoreConfig(path=store, rescan_interval_s=0.2, watch=False),
        database=DatabaseConfig(path=tmp_path / "newsbot.db"),
        subscriptions=subscriptions,
        discord=DiscordConfig(api_base_url=discord_fake.base_url),
        slack=SlackConfig(api_base_url=slack_fake.api_url, commands="http"),
        http=HttpConfig(enabled=True, host="127.0.0.1", port=0),
        log_level="DEBUG",
    )
    async with running(config, environ) as bot:
        title = write_article(store, 1)
        await discord_fake.wait_for_message(DISCORD_CHANNEL, count=2)  # bot post + webhook
        await slack_fake.wait_for_message(SLACK_CHANNEL)
        await slack_fake.wait_for_webhook(slack_hook)
        # Commands on both platforms, so their tokens (interaction tokens too) are in play.
        form = slack_fake.slash_command_form("/news", "AI", channel_id=SLACK_CHANNEL)
        body, headers = slack_fake.sign(form)
        assert bot.http_port
        async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{bot.http_port}/slack/commands", data=body, headers=headers
        ) as answer:
            assert answer.status == 200 and title in await answer.text()
        record = await discord_fake.dispatch_interaction(
            "news", {"topic": "AI"}, channel_id=DISCORD_CHANNEL
        )
        await discord_fake.wait_for_interaction_response(record.id)
    logs = every_log_text(caplog)
    assert len(caplog.records) > 20 and any(r.levelno == logging.DEBUG for r in caplog.records)
    assert "delivery sent platform=discord" in logs and "delivery sent platform=slack" in logs
    interaction_tokens = [i.token for i in discord_fake.interactions.values()]
    secrets = [
        discord_fake.bot_token,
        slack_fake.bot_token,
        slack_fake.signing_secret,
        discord_hook,
        discord_hook.rsplit("/", 1)[1],  # the webhook's token alone
        slack_hook,
        slack_hook.rsplit("/", 1)[1],
        *interaction_tokens,
    ]
    for secret in secrets:
        assert secret and secret not in logs, f"a secret reached the logs: {secret[:6]}…"


async def scrape(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}{path}"
    ) as response:
        return response.status, await response.text()


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    label_part = r"\{" + re.escape(want) + r"\}" if labels else ""
    pattern = "^" + re.escape(name) + label_part + r" (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"{name}{{{want}}} not in the metrics"
    return float(found.group(1))


async def test_health_readiness_and_metrics_while_the_worker_runs(
    tmp_path: Path, slack_fake: FakeSlack
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    os.utime(store / "broken.md", (1, 1))  # old: reported at once, not taken for mid-write
    config = Config(
        store=StoreConfig(path=store, rescan_interval_s=0.2, watch=False),
        database=DatabaseConfig(path=tmp_path / "newsbot.db"),
        subscriptions=(SubscriptionSpec(platform="slack", channel=SLACK_CHANNEL),),
        slack=SlackConfig(api_base_url=slack_fake.api_url, commands="off"),
        http=HttpConfig(enabled=True, host="127.0.0.1", port=0),
    )
    environ = {"SLACK_BOT_TOKEN": slack_fake.bot_token}
    slack_fake.inject("chat.postMessage", status=429, retry_after=1)
    async with running(config, environ) as bot:
        port = bot.http_port
        assert port
        assert await scrape(port, "/healthz") == (200, "ok")
        status, ready = await scrape(port, "/readyz")
        assert status == 200
        assert '"database": true' in ready and '"store": true' in ready
        assert '"platform:slack": true' in ready
        write_article(store, 1)
        await slack_fake.wait_for_message(SLACK_CHANNEL)
        # A second post, held by Slack: once it is in flight the first is surely recorded
        # (a channel's posts go one after another), so the figures below are settled.
        held = slack_fake.inject("chat.postMessage", hold=True)
        write_article(store, 2)
        await held.wait_hit()
        status, text = await scrape(port, "/metrics")
        held.release()
        assert status == 200
        assert metric(text, "newsbot_articles_parsed_total") == 2
        assert metric(text, "newsbot_bad_files_total") == 1
        assert metric(text, "newsbot_rate_limited_total", platform="slack") == 1
        sent = metric(text, "newsbot_delivery_outcomes_total", outcome="sent", platform="slack")
        assert sent == 1
        assert metric(text, "newsbot_send_latency_seconds_count", platform="slack") == 2
        assert metric(text, "newsbot_deliveries", platform="slack", state="sent") == 1
        assert metric(text, "newsbot_deliveries", platform="slack", state="sending") == 1
        assert metric(text, "newsbot_parked_subscriptions") == 0
        assert metric(text, "newsbot_store_lag_seconds") == 0
        assert "# TYPE newsbot_send_latency_seconds histogram" in text
        # The store goes away (an unmounted volume): readiness says so.
        for child in store.iterdir():
            child.unlink()
        store.rmdir()
        status, ready = await scrape(port, "/readyz")
        assert status == 503 and '"store": false' in ready
        assert await scrape(port, "/healthz") == (200, "ok")  # alive, just not ready
