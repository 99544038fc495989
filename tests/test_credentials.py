"""One platform without what it needs stops nothing else: its subscriptions are parked with the
reason (and resumed once the secret is there), the rest keeps working, and `check-config`
reports the same problem in the same words. Webhook-only Discord and Slack without command
secrets run. Real processes where a user runs commands; `run_bot` against the fakes where a
platform must answer."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bot.app import RunningBot, run_bot
from bot.clock import SystemClock
from bot.config import (
    Config,
    DatabaseConfig,
    DiscordConfig,
    HttpConfig,
    SlackConfig,
    StoreConfig,
    SubscriptionSpec,
)
from bot.state import State
from tests.fakes.discord_server import FakeDiscord, patch_discord_py
from tests.fakes.slack_server import FakeSlack
from tests.test_process import RULE, article_text, write_atomically, write_config

DISCORD_CHANNEL = 1_310_000_000_000_000_001
GUILD = 1_310_000_000_000_000_100
SLACK_CHANNEL = "C0CRED0001"
SECRET_PREFIXES = ("DISCORD_", "SLACK_", "NEWSBOT_")


def env_with(**secrets: str) -> dict[str, str]:
    """This environment without any platform secret, plus `secrets`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_PREFIXES)}
    env["PYTHONIOENCODING"] = "utf-8"
    return {**env, **secrets}


def newsbot(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=dict(env) if env is not None else env_with(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def write_stories(store: Path, count: int) -> list[str]:
    titles = [f"Credential story {i}" for i in range(count)]
    for i, title in enumerate(titles):
        write_atomically(
            store / f"c{i}.md",
            article_text(title, f"https://example.com/c/{i}", f"2026-11-0{i + 1}T08:00:00Z"),
        )
    return titles


# --- item 2: a platform without its token parks its subscriptions, the rest goes on -----------


def test_a_discord_subscription_without_a_token_is_parked_and_the_console_still_posts(
    tmp_path: Path,
) -> None:
    config = str(write_config(tmp_path, subscription="backfill = 2"))
    titles = write_stories(tmp_path / "store", 2)
    channel = str(DISCORD_CHANNEL)
    added = newsbot(
        ["subscriptions", "add", "--platform", "discord", "--channel", channel,
         "--topic", "AI", "--config", config],
        tmp_path,
    )
    assert added.returncode == 0, added.stderr

    check = newsbot(["check-config", "--config", config], tmp_path)
    assert check.returncode == 1, check.stdout + check.stderr
    [problem] = [line for line in check.stdout.splitlines() if f"discord:{channel}" in line]
    reason = problem.split(f"discord:{channel}: ", 1)[1]
    assert "DISCORD_TOKEN (or DISCORD_TOKEN_FILE)" in reason

    run = newsbot(["run", "--once", "--config", config], tmp_path)
    assert run.returncode == 0, run.stderr
    assert all(title in run.stdout for title in titles)  # the terminal got its backfill
    assert run.stdout.count(RULE) == 2
    assert reason in run.stderr  # the same words as check-config
    assert "Traceback" not in run.stderr

    listed = newsbot(["subscriptions", "list", "--config", config], tmp_path)
    [line] = [line for line in listed.stdout.splitlines() if f"discord:{channel}" in line]
    assert "paused: " in line and reason in line


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_channel(DISCORD_CHANNEL, guild_id=GUILD)
        with patch_discord_py(server):
            yield server


def discord_config(tmp_path: Path, fake: FakeDiscord, *channels: str, http: bool = False) -> Config:
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    return Config(
        store=StoreConfig(path=store, rescan_interval_s=0.2, watch=False),
        database=DatabaseConfig(path=tmp_path / "newsbot.db"),
        subscriptions=(
            SubscriptionSpec(platform="console", channel="terminal"),
            *(SubscriptionSpec(platform="discord", channel=c, backfill=1) for c in channels),
        ),
        discord=DiscordConfig(api_base_url=fake.base_url),
        http=HttpConfig(enabled=http, host="127.0.0.1", port=0),
    )


async def test_parked_for_a_missing_token_resumes_when_the_token_is_there(
    tmp_path: Path, discord_fake: FakeDiscord
) -> None:
    config = discord_config(tmp_path, discord_fake, str(DISCORD_CHANNEL))
    write_stories(config.store.path, 1)
    out = io.StringIO()
    assert await run_bot(config, once=True, out=out, environ={}) == 75  # its backfill waits
    state = await State.open(config.database.path, SystemClock())
    try:
        [parked] = await state.subscriptions("discord")
        rows = await state.outbox.rows_for("discord", str(DISCORD_CHANNEL))
    finally:
        await state.aclose()
    assert parked.parked_reason and "DISCORD_TOKEN" in parked.parked_reason
    assert [str(r.state) for r in rows] == ["parked"]  # kept, not lost
    assert discord_fake.messages(DISCORD_CHANNEL) == []

    environ = {"DISCORD_TOKEN": discord_fake.bot_token}
    assert await run_bot(config, once=True, out=io.StringIO(), environ=environ) == 0
    [message] = discord_fake.messages(DISCORD_CHANNEL)
    assert "Credential story 0" in json.dumps(message)
    state = await State.open(config.database.path, SystemClock())
    try:
        [resumed] = await state.subscriptions("discord")
    finally:
        await state.aclose()
    assert resumed.parked_reason is None


@asynccontextmanager
async def running(config: Config, environ: Mapping[str, str]) -> AsyncIterator[RunningBot]:
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


async def test_readiness_names_the_platform_that_lacks_its_token(
    tmp_path: Path, discord_fake: FakeDiscord
) -> None:
    config = discord_config(tmp_path, discord_fake, str(DISCORD_CHANNEL), http=True)
    async with running(config, {}) as bot, aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{bot.http_port}/readyz") as ready:
            status, body = ready.status, await ready.json()
        async with session.get(f"http://127.0.0.1:{bot.http_port}/metrics") as metrics:
            text = await metrics.text()
    assert status == 503
    assert body["checks"]["platform:discord"] is False
    assert body["checks"]["platform:console"] is True
    assert "DISCORD_TOKEN" in body["reasons"]["platform:discord"]
    assert re.search(r"^newsbot_parked_subscriptions 1(\.0)?$", text, re.M)


# --- item 3: webhook-only Discord runs ----------------------------------------------------------


async def test_webhook_only_discord_posts_with_slash_commands_off(
    tmp_path: Path, discord_fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hook = discord_fake.add_webhook(DISCORD_CHANNEL)
    config = discord_config(tmp_path, discord_fake, "webhook:team")
    write_stories(config.store.path, 1)
    environ = {"DISCORD_WEBHOOK_TEAM": hook.url}
    assert await run_bot(config, once=True, out=io.StringIO(), environ=environ) == 0
    [message] = discord_fake.messages(DISCORD_CHANNEL)
    assert message["webhook_id"] == str(hook.id)
    assert [r.route for r in discord_fake.requests] == [f"/webhooks/{hook.id}/{hook.token}"]
    off = [r.getMessage() for r in caplog.records if "slash commands are off" in r.getMessage()]
    assert len(off) == 1 and "DISCORD_TOKEN" in off[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_check_config_accepts_webhook_only_discord(tmp_path: Path) -> None:
    config = str(
        write_config(tmp_path, subscription='[[subscriptions]]\nplatform = "discord"\n'
                     'channel = "webhook:team"\n')
    )
    env = env_with(DISCORD_WEBHOOK_TEAM="https://discord.com/api/webhooks/1/abc")
    check = newsbot(["check-config", "--config", config], tmp_path, env)
    assert check.returncode == 0, check.stdout
    assert "slash commands are off" in check.stdout and "error" not in check.stdout


# --- item 4: Slack with only its bot token ------------------------------------------------------


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(SLACK_CHANNEL)
        yield server


def slack_config(tmp_path: Path, fake: FakeSlack, commands: str | None) -> Config:
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    return Config(
        store=StoreConfig(path=store, rescan_interval_s=0.2, watch=False),
        database=DatabaseConfig(path=tmp_path / "newsbot.db"),
        subscriptions=(SubscriptionSpec(platform="slack", channel=SLACK_CHANNEL, backfill=1),),
        slack=SlackConfig(api_base_url=fake.api_url, commands=commands),
    )


async def test_slack_with_only_its_bot_token_runs_with_commands_off(
    tmp_path: Path, slack_fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = slack_config(tmp_path, slack_fake, commands=None)
    write_stories(config.store.path, 1)
    async with running(config, {"SLACK_BOT_TOKEN": slack_fake.bot_token}):
        await slack_fake.wait_for_message(SLACK_CHANNEL)
    off = [r.getMessage() for r in caplog.records if "commands are off" in r.getMessage()]
    assert len(off) == 1 and "SLACK_APP_TOKEN" in off[0]
    assert slack_fake.socket_connections == []


@pytest.mark.parametrize(("mode", "variable"), [("socket", "SLACK_APP_TOKEN"),
                                                ("http", "SLACK_SIGNING_SECRET")])
async def test_an_explicit_command_mode_without_its_secret_is_one_error_not_a_stop(
    tmp_path: Path,
    slack_fake: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    variable: str,
) -> None:
    config = slack_config(tmp_path, slack_fake, commands=mode)
    write_stories(config.store.path, 1)
    async with running(config, {"SLACK_BOT_TOKEN": slack_fake.bot_token}) as bot:
        await slack_fake.wait_for_message(SLACK_CHANNEL)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and variable in errors[0] and mode in errors[0]
    assert bot.http_port is None  # no command endpoint was started
    assert slack_fake.socket_connections == []


def test_check_config_reports_an_explicit_command_mode_without_its_secret(
    tmp_path: Path,
) -> None:
    slack = '[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\n'
    unset = str(write_config(tmp_path, subscription=slack))
    env = env_with(SLACK_BOT_TOKEN="xoxb-not-checked-here")
    quiet = newsbot(["check-config", "--config", unset], tmp_path, env)
    assert quiet.returncode == 0, quiet.stdout
    assert "/news commands are off" in quiet.stdout and "SLACK_APP_TOKEN" in quiet.stdout

    explicit = tmp_path / "explicit"
    explicit.mkdir()
    config = write_config(explicit, body='[slack]\ncommands = "socket"', subscription=slack)
    loud = newsbot(["check-config", "--config", str(config)], explicit, env)
    assert loud.returncode == 1, loud.stdout
    [error] = [line for line in loud.stdout.splitlines() if "error" in line]
    assert 'commands = "socket"' in error and "SLACK_APP_TOKEN" in error


def test_compose_demands_no_secret_of_a_platform_not_in_use() -> None:
    import yaml

    from tests.conftest import REPO

    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    service = compose["services"]["newsbot"]
    assert not service.get("secrets") and not compose.get("secrets")
    assert not any(k.endswith("_FILE") for k in (service.get("environment") or {}))
    text = (REPO / "compose.yaml").read_text(encoding="utf-8")
    for variable in ("DISCORD_TOKEN_FILE", "SLACK_BOT_TOKEN_FILE", "SLACK_APP_TOKEN_FILE"):
        assert f"# {variable}" in text.replace("#   ", "# ")  # there, commented, to turn on
