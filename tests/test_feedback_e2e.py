"""Learning from reactions, end to end: the real wiring (`run_bot`, a TOML config, a store
folder, SQLite) with the real discord.py and slack_sdk against the fake Discord (gateway
reaction events, button presses) and the fake Slack (Socket Mode events and interactive
payloads). Nothing sleeps to wait: the tests wait on the fakes' records or the database."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import run_bot
from bot.config import load_config
from bot.explain import Fate, explain
from bot.feedback_store import FeedbackStore, Status
from bot.state import State
from bot.tuning import learned_for_routing
from bot.worker import routing_defaults
from tests.conftest import FakeClock, RunningClock
from tests.fakes.discord_server import (
    FakeDiscord,
    Permission,
    RateLimitPolicy,
    patch_discord_py,
    permissions,
)
from tests.fakes.slack_server import FakeSlack
from tests.test_discord_e2e import Store

CHANNEL = 1_210_000_000_000_001_001
GUILD = 1_210_000_000_000_000_100
MANAGER = permissions(Permission.VIEW_CHANNEL, Permission.MANAGE_CHANNELS)
MEMBER = permissions(Permission.VIEW_CHANNEL, Permission.SEND_MESSAGES)
PEOPLE = (1_210_000_000_000_000_301, 1_210_000_000_000_000_302)
SLACK_CHANNEL = "C0NEWS0001"


@pytest.fixture
def clock() -> FakeClock:
    return RunningClock()


RUNNING: list[Bot] = []


async def stop_bots() -> None:
    """A test that fails halfway leaves no bot running (before its fake goes away)."""
    while RUNNING:
        bot = RUNNING.pop()
        if bot.task is not None and not bot.task.done():
            await bot.finish()


class Bot:
    """`newsbot run --config FILE` in this event loop, restartable."""

    def __init__(self, tmp_path: Path, clock: FakeClock, config: str,
                 environ: dict[str, str]) -> None:
        self.clock = clock
        self.store = Store(tmp_path / "store", clock)
        self.db_path = tmp_path / "state.db"
        self.config_path = tmp_path / "newsbot.toml"
        self.config_path.write_text(
            '[store]\npath = "store"\nrescan_interval_s = 0.1\nwatch = false\n'
            '[database]\npath = "state.db"\n' + config,
            encoding="utf-8",
        )
        self.environ = environ
        self.stop = asyncio.Event()
        self.task: asyncio.Task[int] | None = None
        RUNNING.append(self)

    async def start(self, ready: Callable[[], Awaitable[object]]) -> None:
        """Run it; return once `ready()` (waiting on a fake) says it is connected."""
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_bot(load_config(self.config_path), once=False, out=io.StringIO(),
                    clock=self.clock, stop=self.stop, environ=self.environ)
        )
        waiting = asyncio.ensure_future(ready())
        await asyncio.wait({self.task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            raise AssertionError(f"the bot exited with {self.task.result()} during start-up")
        await waiting

    async def finish(self) -> int:
        assert self.task is not None
        self.stop.set()
        return await asyncio.wait_for(self.task, 15.0)

    async def state(self) -> State:
        return await State.open(self.db_path, self.clock)

    async def delivered(self, key: str) -> bool:
        """Whether the outbox has a row for this article (routing decided to post it)."""
        state = await self.state()
        try:
            story = await state.story_of(key)
            return story is not None and any(
                r.story_id == story for r in await state.outbox.rows_for(*self.target)
            )
        finally:
            await state.aclose()

    target: tuple[str, str] = ("", "")


async def adjustments(bot: Bot, *statuses: Status) -> list[Any]:
    state = await bot.state()
    try:
        return await FeedbackStore(state.database).adjustments(
            statuses=statuses or tuple(Status)
        )
    finally:
        await state.aclose()


async def recorded_as_sent(bot: Bot, count: int) -> None:
    """Until the bot has recorded `count` posts as sent (with their message ids). The fake
    holds a message before its answer reaches the bot, and a reaction is only ours once the
    outbox knows the message: a person never reacts within that millisecond, a test would.
    Nothing signals the record, so this looks at the database between turns of the loop."""
    async with asyncio.timeout(10):
        while True:
            state = await bot.state()
            try:
                rows = await state.outbox.rows_for(*bot.target)
            finally:
                await state.aclose()
            if sum(1 for r in rows if r.message_ref) >= count:
                return
            await asyncio.sleep(0.01)


def discord_ready(fake: FakeDiscord) -> Callable[[], Awaitable[object]]:
    before = len(fake.sessions)
    return lambda: fake.wait_for(
        lambda: any(s.identified for s in fake.sessions[before:]), 10.0, "the bot's READY"
    )


async def explained(bot: Bot, key: str) -> str:
    config = load_config(bot.config_path)
    state = await bot.state()
    try:
        article = await state.get_article(key)
        assert article is not None
        learned = await learned_for_routing(
            FeedbackStore(state.database), await state.subscriptions(), True
        )
        report = await explain(state, article, routing_defaults(config), bot.clock.now(), learned)
    finally:
        await state.aclose()
    [item] = report.explanations
    assert item.fate is Fate.NOT_DELIVERED
    return item.reason


# --------------------------------------------------------------------------- Discord, auto


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=50, window=0.5)) as server:
        server.add_channel(CHANNEL, guild_id=GUILD)
        with patch_discord_py(server):
            yield server
            await stop_bots()


async def test_discord_reactions_hold_a_rejected_topic_back_in_auto_and_undo_restores_it(
    discord_fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    fake = discord_fake
    bot = Bot(
        tmp_path, clock,
        f"[discord]\napi_base_url = {json.dumps(fake.base_url)}\n"
        "[feedback]\nenabled = true\n"
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL}"\nlearn = "auto"\n',
        {"DISCORD_TOKEN": fake.bot_token},
    )
    bot.target = ("discord", str(CHANNEL))
    await bot.start(discord_ready(fake))
    session = fake.sessions[-1]
    assert session.intents == 1 | (1 << 10)  # guilds and GUILD_MESSAGE_REACTIONS, no more

    for i in range(3):
        bot.store.add(f"pa-{i}", f"Power Apps story {i}", topics=("Power Apps",), quality=60)
    posts = await fake.wait_for_message(CHANNEL, count=3)
    await recorded_as_sent(bot, 3)

    # Reactions on a message that is not ours change nothing (nor the bot's own).
    stranger = fake.snowflake()
    for person in PEOPLE:
        await fake.dispatch_reaction(stranger, "👎", user_id=person, channel_id=CHANNEL)
    await fake.dispatch_reaction(int(posts[0]["id"]), "👎", user_id=fake.bot_user_id)

    for post in posts:
        for person in PEOPLE:
            await fake.dispatch_reaction(int(post["id"]), "👎", user_id=person)
    # Said in the channel with an undo button, pinging nobody.
    notice = (await fake.wait_for_message(CHANNEL, count=4))[3]
    [applied] = await adjustments(bot, Status.APPLIED)
    assert (applied.subject, applied.shift, applied.tally.people) == ("Power Apps", 20.0, 2)
    # The stranger's and the bot's reactions were not counted.
    state = await bot.state()
    try:
        counts = await FeedbackStore(state.database).vote_counts("discord", str(CHANNEL))
    finally:
        await state.aclose()
    assert sum(down for _, down in counts.values()) <= 6 and len(counts) <= 3
    assert notice["mention_everyone"] is False
    assert "Power Apps" in notice["content"] and "rises by 20 (to 60)" in notice["content"]
    [row] = notice["components"]
    [button] = row["components"]
    assert button["custom_id"] == f"newsbot:tune:undo:{applied.id}" and button["style"] == 4

    # New articles at the same quality: Power Apps is held back, Robotics still arrives.
    held = bot.store.add("pa-new", "Power Apps news", topics=("Power Apps",), quality=55)
    bot.store.add("rb-new", "Robotics news", topics=("Robotics",), quality=55)
    [*_, robotics] = await fake.wait_for_message(CHANNEL, count=5)
    assert robotics["embeds"][0]["title"] == "Robotics news"
    assert not await bot.delivered(held.key)
    why = await explained(bot, held.key)
    assert "Power Apps floor here is 60 after" in why and "from 2 people since" in why

    # A member without Manage Channels cannot undo it; a manager can, with the button.
    refused = await fake.dispatch_component(
        int(notice["id"]), button["custom_id"], member_permissions=MEMBER
    )
    await fake.wait_for_interaction_response(refused.id)
    assert refused.ephemeral and "manage" in refused.callback_data["content"].lower()
    pressed = await fake.dispatch_component(
        int(notice["id"]), button["custom_id"], member_permissions=MANAGER
    )
    await fake.wait_for_interaction_response(pressed.id)
    assert not pressed.ephemeral and "Undone" in pressed.callback_data["content"]
    assert await adjustments(bot, Status.APPLIED) == []

    back = bot.store.add("pa-after", "Power Apps again", topics=("Power Apps",), quality=55)
    [*_, delivered] = await fake.wait_for_message(CHANNEL, count=6)
    assert delivered["embeds"][0]["title"] == back.title
    assert await bot.finish() == 0


async def test_discord_what_was_learned_survives_a_restart_and_slash_tune_undoes_it(
    discord_fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    fake = discord_fake
    bot = Bot(
        tmp_path, clock,
        f"[discord]\napi_base_url = {json.dumps(fake.base_url)}\n"
        "[feedback]\nenabled = true\n"
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL}"\nlearn = "auto"\n',
        {"DISCORD_TOKEN": fake.bot_token},
    )
    bot.target = ("discord", str(CHANNEL))
    await bot.start(discord_ready(fake))
    for i in range(2):
        bot.store.add(f"pa-{i}", f"Power Apps story {i}", topics=("Power Apps",), quality=60)
    posts = await fake.wait_for_message(CHANNEL, count=2)
    await recorded_as_sent(bot, 2)
    for post in posts:
        for person in PEOPLE:
            await fake.dispatch_reaction(int(post["id"]), "👎", user_id=person)
    await fake.wait_for_message(CHANNEL, count=3)  # the notice
    assert len(await adjustments(bot, Status.APPLIED)) == 1
    assert await bot.finish() == 0

    await bot.start(discord_ready(fake))
    held = bot.store.add("pa-new", "Power Apps news", topics=("Power Apps",), quality=55)
    bot.store.add("rb-new", "Robotics news", topics=("Robotics",), quality=55)
    messages = await fake.wait_for_message(CHANNEL, count=4)  # 2 posts, the notice, Robotics
    assert messages[-1]["embeds"][0]["title"] == "Robotics news"
    assert not await bot.delivered(held.key)

    listing = await fake.dispatch_interaction("subscriptions", channel_id=CHANNEL)
    await fake.wait_for_interaction_response(listing.id)
    assert "Learned from reactions here" in listing.callback_data["content"]
    undo = await fake.dispatch_interaction(
        "tune", {"action": "undo"}, channel_id=CHANNEL, member_permissions=MANAGER
    )
    await fake.wait_for_interaction_response(undo.id)
    assert "Undone" in undo.callback_data["content"] and not undo.ephemeral
    bot.store.add("pa-after", "Power Apps again", topics=("Power Apps",), quality=55)
    [*_, delivered] = await fake.wait_for_message(CHANNEL, count=5)
    assert delivered["embeds"][0]["title"] == "Power Apps again"
    assert await bot.finish() == 0


# --------------------------------------------------------------------------- Slack, suggest


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(SLACK_CHANNEL, name="news")
        server.scopes.add("reactions:read")
        yield server
        await stop_bots()


async def test_slack_reactions_suggest_in_suggest_mode_and_apply_on_the_button(
    slack_fake: FakeSlack, tmp_path: Path, clock: FakeClock
) -> None:
    fake = slack_fake
    bot = Bot(
        tmp_path, clock,
        f"[slack]\napi_base_url = {json.dumps(fake.api_url)}\n"
        "[feedback]\nenabled = true\n"
        f'[[subscriptions]]\nplatform = "slack"\nchannel = "{SLACK_CHANNEL}"\n',
        {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token},
    )
    bot.target = ("slack", SLACK_CHANNEL)
    await bot.start(lambda: fake.wait_for_socket(timeout=10.0))

    for i in range(2):
        bot.store.add(f"pa-{i}", f"Power Apps story {i}", topics=("Power Apps",), quality=60)
    posts = await fake.wait_for_message(SLACK_CHANNEL, count=2)
    await recorded_as_sent(bot, 2)
    # Not ours: a person's message in the channel.
    theirs = fake.add_message(SLACK_CHANNEL, "a person's message", user="U0HUMAN09")
    for person in ("U0HUMAN01", "U0HUMAN02"):
        envelope = await fake.send_reaction(SLACK_CHANNEL, theirs["ts"], "-1", user_id=person)
        assert envelope is not None
        await fake.wait_for_ack(envelope)
    for post in posts:
        for person in ("U0HUMAN01", "U0HUMAN02"):
            envelope = await fake.send_reaction(
                SLACK_CHANNEL, post["ts"], "-1::skin-tone-2", user_id=person
            )
            assert envelope is not None
            await fake.wait_for_ack(envelope)
    notice = (await fake.wait_for_message(SLACK_CHANNEL, count=4))[-1]
    [suggested] = await adjustments(bot, Status.SUGGESTED)
    assert suggested.subject == "Power Apps" and suggested.tally.down >= 3
    assert "suggest" in notice["text"] and "Power Apps" in notice["text"]
    actions = [b for b in notice["blocks"] if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions[0]["elements"]]
    assert ids == [f"newsbot:tune:apply:{suggested.id}", f"newsbot:tune:dismiss:{suggested.id}"]

    # Suggested, not applied: Power Apps still arrives.
    bot.store.add("pa-2", "Power Apps still", topics=("Power Apps",), quality=55)
    await fake.wait_for_message(SLACK_CHANNEL, count=5)

    # Whoever may manage the channel (anyone, by default) applies it with the button.
    envelope, payload = await fake.press_button(SLACK_CHANNEL, notice["ts"], ids[0])
    await fake.wait_for_ack(envelope)
    answer = await fake.wait_for_response(payload["response_url"])
    assert answer["response_type"] == "in_channel" and "Applied" in answer["text"]
    held = bot.store.add("pa-3", "Power Apps held", topics=("Power Apps",), quality=55)
    bot.store.add("rb-3", "Robotics arrives", topics=("Robotics",), quality=55)
    [*_, robotics] = await fake.wait_for_message(SLACK_CHANNEL, count=6)
    assert "Robotics arrives" in robotics["text"]
    assert not await bot.delivered(held.key)
    assert "Power Apps floor here is 60" in await explained(bot, held.key)

    # /news tune undo reverts it.
    envelope = await fake.send_slash_command(
        text="tune undo", channel_id=SLACK_CHANNEL, user_id="U0HUMAN01"
    )
    ack = await fake.wait_for_ack(envelope)
    assert "Undone" in ack["payload"]["text"]
    bot.store.add("pa-4", "Power Apps back", topics=("Power Apps",), quality=55)
    [*_, back] = await fake.wait_for_message(SLACK_CHANNEL, count=7)
    assert "Power Apps back" in back["text"]
    assert await bot.finish() == 0
