"""Slack end to end: the real bot (`bot.app.run_bot`, or `python -m bot` where a real process
matters: exit codes, SIGTERM, kill -9) with a real store folder and SQLite, talking through the
real slack_sdk to FakeSlack. Nothing sleeps: waits are on the fake's records and asyncio events.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import RunningBot, run_bot
from bot.articles import Article, parse_article
from bot.clock import SystemClock
from bot.config import (
    Config,
    ConfigError,
    DatabaseConfig,
    HttpConfig,
    SlackConfig,
    StoreConfig,
    SubscriptionSpec,
)
from bot.render import RenderStyle, render_slack
from bot.state import DeliveryState, State
from tests.conftest import REPO
from tests.fakes.slack_server import FakeSlack, sign_slash_command, validate_blocks

NEWS = "C0NEWS0001"
OTHER = "C0OTHER001"
GONE = "C0GONE0001"
SOCKET_CHANNEL = "C0SOCKET01"
START_TIMEOUT_S = 20.0


def article_text(n: int, topic: str = "AI", published: str = "2026-11-20T08:00:00Z") -> str:
    return "\n".join(
        [
            "---",
            f'title: "Story {n} about {topic}"',
            f"webUrl: https://example.com/news/{n}",
            f"publishedDateTime: {published}",
            "quality: 80",
            f'excerpt: "What happened in story {n}, in a sentence or two."',
            "provider:",
            "  name: Example News",
            "  domain: example.com",
            "topics:",
            f"  - {topic}",
            "---",
            "",
        ]
    )


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write(self, n: int, topic: str = "AI", published: str = "2026-11-20T08:00:00Z") -> Article:
        """Write atomically (temp name, then rename), as a well-behaved producer does."""
        text = article_text(n, topic, published)
        tmp = self.root / f".{n}.md.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.rename(tmp, self.root / f"{n}.md")
        return parse_article(text.encode(), f"{n}.md")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        for channel in (NEWS, OTHER, SOCKET_CHANNEL):
            server.add_channel(channel)
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def make_config(
    tmp_path: Path,
    fake: FakeSlack,
    subscriptions: Sequence[SubscriptionSpec] = (),
    commands: str = "off",
    http: bool = False,
) -> Config:
    return Config(
        store=StoreConfig(path=tmp_path / "store", rescan_interval_s=0.2, watch=False),
        database=DatabaseConfig(path=tmp_path / "newsbot.db"),
        subscriptions=tuple(subscriptions),
        slack=SlackConfig(api_base_url=fake.api_url, commands=commands),
        http=HttpConfig(enabled=http, host="127.0.0.1", port=0),
    )


def slack_env(fake: FakeSlack) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_SIGNING_SECRET": fake.signing_secret,
    }


def ai_sub(channel: str) -> SubscriptionSpec:
    return SubscriptionSpec(platform="slack", channel=channel, topics=("AI",))


@asynccontextmanager
async def running(config: Config, environ: Mapping[str, str]) -> AsyncIterator[RunningBot]:
    """The bot running in this loop until the block ends; yields once it is fully started."""
    stop = asyncio.Event()
    ready: asyncio.Future[RunningBot] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_bot(config, once=False, out=io.StringIO(), stop=stop, environ=environ,
                on_ready=ready.set_result)
    )
    either: set[asyncio.Future[Any]] = {task, ready}
    await asyncio.wait(either, timeout=START_TIMEOUT_S, return_when="FIRST_COMPLETED")
    if task.done():
        task.result()  # raises what stopped start-up
        pytest.fail("the bot stopped during start-up")
    assert ready.done(), "the bot did not start in time"
    try:
        yield ready.result()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0


def delivery_key(channel: str, article: Article) -> str:
    return f"slack:{channel}:{article.key}"


def metadata_key(message: Mapping[str, Any]) -> str:
    return str(message["metadata"]["event_payload"]["delivery_key"])


# --- (1) a new article reaches Slack ----------------------------------------------------------


async def test_a_new_article_is_posted_with_its_blocks_and_metadata(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config = make_config(tmp_path, fake, [ai_sub(NEWS)])
    async with running(config, slack_env(fake)):
        article = store.write(1)
        (message,) = await fake.wait_for_message(NEWS)
    expected = render_slack(article, RenderStyle()).to_payload()
    assert message["blocks"] == expected["blocks"]
    assert message["text"] == expected["text"]
    assert message["metadata"] == {
        "event_type": "newsbot_delivery",
        "event_payload": {"delivery_key": delivery_key(NEWS, article)},
    }
    (call,) = fake.calls("chat.postMessage")
    assert call.token == fake.bot_token
    assert validate_blocks(call.body["blocks"]) == []
    assert fake.messages(OTHER) == []


# --- (2) restarts post nothing twice ---------------------------------------------------------


async def test_a_restart_posts_nothing_twice(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config = make_config(tmp_path, fake, [ai_sub(NEWS)])
    async with running(config, slack_env(fake)):
        first = store.write(1)
        await fake.wait_for_message(NEWS)
    async with running(config, slack_env(fake)):
        second = store.write(2)
        await fake.wait_for_message(NEWS, count=2)
    # Once the later article is through, the earlier one would have been resent before it.
    keys = [metadata_key(m) for m in fake.messages(NEWS)]
    assert keys == [delivery_key(NEWS, first), delivery_key(NEWS, second)]


def write_toml(tmp_path: Path, fake: FakeSlack, commands: str = "off") -> Path:
    path = tmp_path / "newsbot.toml"
    path.write_text(
        "\n".join(
            [
                "[store]",
                f'path = "{tmp_path / "store"}"',
                "rescan_interval_s = 0.2",
                "watch = false",
                "[database]",
                f'path = "{tmp_path / "newsbot.db"}"',
                "[slack]",
                f'api_base_url = "{fake.api_url}"',
                f'commands = "{commands}"',
                "[[subscriptions]]",
                'platform = "slack"',
                f'channel = "{NEWS}"',
                'topics = ["AI"]',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return path


async def spawn_bot(config: Path, environ: Mapping[str, str]) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSBOT_", "SLACK_"))}
    env.update(environ)
    env["PYTHONIOENCODING"] = "utf-8"
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def first_of(proc: asyncio.subprocess.Process, event: asyncio.Future[Any]) -> None:
    """Wait for `event`; fail with the process's output if it ends first."""
    ended = asyncio.ensure_future(proc.wait())
    await asyncio.wait({ended, event}, timeout=START_TIMEOUT_S, return_when="FIRST_COMPLETED")
    if not event.done():
        ended.cancel()
        if proc.returncode is None:
            proc.kill()
        _, err = await proc.communicate()
        pytest.fail(f"the bot ended or stalled (rc={proc.returncode}):\n{err.decode()}")
    ended.cancel()


# In-process runs and a real process share its database: a SQLite file either way.
@pytest.mark.sqlite_only
async def test_kill_9_mid_post_then_restart_posts_once(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config_path = write_toml(tmp_path, fake)
    from bot.config import load_config

    config = load_config(config_path)
    # The first run records the empty store, so the next article counts as new.
    assert await run_bot(config, once=True, out=io.StringIO(), environ=slack_env(fake)) == 0
    article = store.write(1)
    # Slack stores the post, but its answer never reaches the bot: killed while waiting.
    fault = fake.inject("chat.postMessage", hold=True, process=True)
    proc = await spawn_bot(config_path, slack_env(fake))
    await first_of(proc, asyncio.ensure_future(fault.wait_hit(timeout=START_TIMEOUT_S)))
    await fake.wait_for_message(NEWS)
    proc.kill()
    assert await proc.wait() == -signal.SIGKILL
    await proc.communicate()
    fault.release()

    async with running(config, slack_env(fake)):
        later = store.write(2)
        await fake.wait_for_message(NEWS, count=2)
    keys = [metadata_key(m) for m in fake.messages(NEWS)]
    assert keys == [delivery_key(NEWS, article), delivery_key(NEWS, later)]
    history = fake.calls("conversations.history")
    assert history and history[0].query["include_all_metadata"] == "1"
    state = await State.open(config.database.path, SystemClock())
    try:
        rows = await state.outbox.rows_for("slack", NEWS)
    finally:
        await state.aclose()
    assert [r.state for r in rows] == [DeliveryState.SENT, DeliveryState.SENT]
    assert rows[0].message_ref == fake.messages(NEWS)[0]["ts"]


async def test_sigterm_stops_cleanly(tmp_path: Path, fake: FakeSlack, store: Store) -> None:
    proc = await spawn_bot(write_toml(tmp_path, fake, commands="socket"), slack_env(fake))
    await first_of(proc, asyncio.ensure_future(fake.wait_for_socket(timeout=START_TIMEOUT_S)))
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert "stopped cleanly" in err.decode()


# --- (3, 4) /news over HTTP, signed, forged and stale ----------------------------------------


async def post_command(
    port: int, body: bytes, headers: Mapping[str, str]
) -> tuple[int, dict[str, Any] | str]:
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{port}/slack/commands", data=body, headers=dict(headers)
    ) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_signed_news_over_http(tmp_path: Path, fake: FakeSlack, store: Store) -> None:
    store.write(1, "AI", "2026-11-01T08:00:00Z")
    store.write(2, "AI", "2026-11-03T08:00:00Z")
    store.write(3, "Robotics", "2026-11-04T08:00:00Z")
    config = make_config(tmp_path, fake, commands="http")
    async with running(config, slack_env(fake)) as bot:
        assert bot.http_port
        form = fake.slash_command_form("/news", "AI", channel_id=NEWS)
        status, payload = await post_command(bot.http_port, *fake.sign(form))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{bot.http_port}/healthz") as health:
                assert (health.status, await health.text()) == (200, "ok")
            async with session.get(f"http://127.0.0.1:{bot.http_port}/readyz") as ready:
                assert ready.status == 200
                assert (await ready.json())["checks"]["platform:slack"] is True
    assert status == 200 and isinstance(payload, dict)
    assert validate_blocks(payload["blocks"]) == []
    text = str(payload["blocks"])
    assert text.index("Story 2 about AI") < text.index("Story 1 about AI")
    assert "Robotics" not in text
    assert fake.messages(NEWS) == []  # the first scan records, it does not post


async def test_forged_and_stale_commands_get_401_and_change_nothing(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config = make_config(tmp_path, fake, commands="http")
    async with running(config, slack_env(fake)) as bot:
        assert bot.http_port
        now = int(time.time())

        def subscribe_form() -> dict[str, str]:
            return fake.slash_command_form("/news", "subscribe AI", channel_id=NEWS)

        forged = sign_slash_command("not-the-signing-secret", subscribe_form(), now)
        stale = fake.sign(subscribe_form(), timestamp=now - 5 * 60 - 10)
        body, headers = fake.sign(subscribe_form(), timestamp=now)
        tampered = (body.replace(b"subscribe", b"unsubscribe"), headers)
        unsigned = (body, {"Content-Type": "application/x-www-form-urlencoded"})
        garbage_ts = (body, {**headers, "X-Slack-Request-Timestamp": "soon"})
        for attempt in (forged, stale, tampered, unsigned, garbage_ts):
            status, _ = await post_command(bot.http_port, *attempt)
            assert status == 401
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{bot.http_port}/metrics"
        ) as scraped:
            metrics = await scraped.text()
        for reason, count in (
            ("bad_signature", 2), ("stale", 1), ("missing_headers", 1), ("malformed", 1)
        ):
            assert f'newsbot_http_rejected_total{{reason="{reason}"}} {count}.0' in metrics
        # A proper request in the same channel shows nothing was subscribed.
        status, listed = await post_command(
            bot.http_port, *fake.sign(fake.slash_command_form("/news", "list", channel_id=NEWS))
        )
        assert status == 200 and isinstance(listed, dict)
        assert "no subscriptions" in listed["text"]
        state = await State.open(config.database.path, SystemClock())
        try:
            assert await state.subscriptions() == []
        finally:
            await state.aclose()
    assert fake.calls("chat.postMessage") == []
    assert fake.calls("response_url") == []


# --- (5) Socket Mode subscribe, then the next article arrives ---------------------------------


async def test_socket_mode_subscribe_then_the_next_article_arrives(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config = make_config(tmp_path, fake, commands="socket")
    async with running(config, slack_env(fake)):
        await fake.wait_for_socket()
        envelope = await fake.send_slash_command(
            "/news", "subscribe AI", channel_id=SOCKET_CHANNEL, user_id="U0ALICE01"
        )
        ack = await fake.wait_for_ack(envelope)
        latency = fake.ack_latency(envelope)
        assert latency is not None and latency < 3.0
        assert ack["payload"]["response_type"] == "in_channel"
        assert "Subscribed" in ack["payload"]["text"]
        assert validate_blocks(ack["payload"]["blocks"]) == []
        store.write(1, "Robotics")
        wanted = store.write(2, "AI")
        (message,) = await fake.wait_for_message(SOCKET_CHANNEL)
        help_envelope = await fake.send_slash_command("/news", "help", channel_id=SOCKET_CHANNEL)
        help_ack = await fake.wait_for_ack(help_envelope)
    assert metadata_key(message) == delivery_key(SOCKET_CHANNEL, wanted)
    assert help_ack["payload"]["response_type"] == "ephemeral"
    assert len(fake.messages(SOCKET_CHANNEL)) == 1
    (opened,) = fake.calls("apps.connections.open")
    assert opened.token == fake.app_token


# --- (6) a 429 delays but loses nothing -------------------------------------------------------


async def test_a_429_delays_the_post_but_does_not_lose_it(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config = make_config(tmp_path, fake, [ai_sub(NEWS)])
    fake.inject("chat.postMessage", status=429, retry_after=1)
    async with running(config, slack_env(fake)):
        article = store.write(1)
        (message,) = await fake.wait_for_message(NEWS, timeout=10)
    limited, retried = fake.calls("chat.postMessage")
    assert (limited.status, retried.status) == (429, 200)
    assert retried.received_at - limited.received_at >= 1.0  # nothing before Retry-After
    assert metadata_key(message) == delivery_key(NEWS, article)


# --- (7) a vanished channel is parked, the others go on ---------------------------------------


async def test_channel_not_found_parks_that_subscription_only(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config = make_config(tmp_path, fake, [ai_sub(GONE), ai_sub(NEWS)])
    async with running(config, slack_env(fake)):
        store.write(1)
        await fake.wait_for_message(NEWS)
        store.write(2)
        await fake.wait_for_message(NEWS, count=2)
    to_gone = [c for c in fake.calls("chat.postMessage") if c.body["channel"] == GONE]
    assert len(to_gone) == 1 and to_gone[0].error == "channel_not_found"
    state = await State.open(config.database.path, SystemClock())
    try:
        (gone,) = await state.subscriptions("slack", GONE)
        (news,) = await state.subscriptions("slack", NEWS)
        parked_rows = await state.outbox.rows_for("slack", GONE)
    finally:
        await state.aclose()
    assert gone.parked_reason and "channel_not_found" in gone.parked_reason
    assert news.parked_reason is None
    assert all(r.state is DeliveryState.PARKED for r in parked_rows)


# --- (8) a refused token stops start-up with a clear message ---------------------------------


async def test_invalid_auth_at_start_exits_2_naming_the_variable(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    wrong = "xoxb-0000-wrong-token-value"
    proc = await spawn_bot(write_toml(tmp_path, fake), {"SLACK_BOT_TOKEN": wrong})
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    message = err.decode()
    assert proc.returncode == 2, message
    assert "SLACK_BOT_TOKEN" in message and "invalid_auth" in message
    assert wrong not in message and wrong not in out.decode()
    assert "Traceback" not in message
    assert fake.calls("chat.postMessage") == []


async def test_refused_tokens_stop_start_up_and_a_missing_one_parks(
    tmp_path: Path, fake: FakeSlack, store: Store
) -> None:
    config = make_config(tmp_path, fake, [ai_sub(NEWS)], commands="socket")
    env = slack_env(fake)
    cases: list[tuple[dict[str, str], str]] = [
        ({**env, "SLACK_APP_TOKEN": "xapp-1-wrong"}, "SLACK_APP_TOKEN"),
        ({**env, "SLACK_APP_TOKEN": fake.bot_token}, "SLACK_APP_TOKEN"),
    ]
    for environ, variable in cases:
        with pytest.raises(ConfigError) as raised:
            await run_bot(config, once=False, out=io.StringIO(), environ=environ)
        assert variable in str(raised.value)
        assert fake.bot_token not in str(raised.value)
    assert fake.socket_connections == []
    # Missing, not refused: the channel waits for the token; the run goes on.
    no_bot = {k: v for k, v in env.items() if k != "SLACK_BOT_TOKEN"}
    checks_before = len(fake.calls("auth.test"))
    assert await run_bot(config, once=True, out=io.StringIO(), environ=no_bot) == 0
    state = await State.open(config.database.path, SystemClock())
    try:
        (sub,) = await state.subscriptions("slack", NEWS)
    finally:
        await state.aclose()
    assert sub.parked_reason and "SLACK_BOT_TOKEN (or SLACK_BOT_TOKEN_FILE)" in sub.parked_reason
    assert len(fake.calls("auth.test")) == checks_before  # no token: nothing to check
