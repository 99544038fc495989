"""One story, one post: the worker, the scheduler and the Discord adapter (on our own REST
session) against the fake Discord, with real store folders and SQLite. Articles told by several
outlets, arriving together or late, in any order; late coverage as edits, thread replies or
nothing; corrections edited in, and edits that would change nothing not sent."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import build_delivery
from bot.articles import parse_article
from bot.config import (
    Config,
    DatabaseConfig,
    DiscordConfig,
    SlackConfig,
    StoreConfig,
    SubscriptionSpec,
)
from bot.explain import Fate, explain, format_report
from bot.platforms.discord import DiscordNotifier
from bot.platforms.slack import create_slack_notifier
from bot.render import RenderStyle
from bot.routing import RoutingDefaults
from bot.state import State
from bot.worker import Worker
from tests.conftest import FakeClock, RunningClock
from tests.fakes.discord_server import FakeDiscord, RateLimitPolicy
from tests.fakes.slack_server import FakeSlack

CHANNEL = 1_210_000_000_000_003_001
THREADED = 1_210_000_000_000_003_002
QUIET = 1_210_000_000_000_003_003


def article_text(
    slug: str,
    title: str,
    outlet: str,
    quality: float = 80,
    related: Sequence[str] = (),
    published: str = "2026-11-20T10:00:00Z",
    excerpt: str = "What happened.",
) -> str:
    lines = [
        "---",
        f"title: {json.dumps(title)}",
        f"excerpt: {json.dumps(excerpt)}",
        f"webUrl: https://{outlet}.example/{slug}",
        f"publishedDateTime: {published}",
        f"quality: {quality}",
        "provider:",
        f"  name: {outlet.title()} News",
        f"  domain: {outlet}.example",
        "topics:",
        "  - AI",
    ]
    if related:
        lines.append("related:")
        for url in related:
            lines += ["  - title: The same story", f"    webUrl: {url}"]
    return "\n".join([*lines, "---", ""])


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._mtime = 1_700_000_000

    def write(self, name: str, text: str) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        self._mtime += 1
        os.utime(tmp, (self._mtime, self._mtime))
        os.rename(tmp, self.root / f"{name}.md")


@dataclass
class Bot:
    worker: Worker
    state: State
    fake: FakeDiscord
    store: Store

    async def round(self) -> None:
        """One rescan, and every delivery it leads to."""
        await self.worker.scan()
        left = await self.worker.deliver_until_idle(max_wait_s=10.0)
        assert left == []

    def titles(self, channel: int) -> list[str]:
        return [m["embeds"][0]["title"] for m in self.fake.messages(channel)]

    def coverage(self, channel: int) -> list[str]:
        """The related-coverage field of each message in the channel."""
        found = []
        for message in self.fake.messages(channel):
            fields = message["embeds"][0].get("fields", [])
            found.append(fields[0]["value"] if fields else "")
        return found


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(message_rate_limit=RateLimitPolicy(limit=50, window=1.0)) as server:
        for channel in (CHANNEL, THREADED, QUIET):
            server.add_channel(channel)
        yield server


@asynccontextmanager
async def running(
    tmp_path: Path, fake: FakeDiscord, subscriptions: Sequence[SubscriptionSpec]
) -> AsyncIterator[Bot]:
    store = Store(tmp_path / "store")
    config = Config(
        store=StoreConfig(path=store.root, watch=False),
        database=DatabaseConfig(path=tmp_path / "state.db"),
        subscriptions=tuple(subscriptions),
        discord=DiscordConfig(api_base_url=fake.base_url, commands=False),
    )
    clock: FakeClock = RunningClock()
    state = await State.open(config.database.path, clock)
    notifier = DiscordNotifier(fake.bot_token, config.discord, RenderStyle(), {}.get)
    try:
        await notifier.start()
        _, scheduler = build_delivery(config, state, {"discord": notifier}, clock)
        worker = Worker(config, state, scheduler, clock)
        await worker.prepare()  # the first scan of the (empty) store: nothing old is posted
        yield Bot(worker, state, fake, store)
    finally:
        await notifier.aclose()
        await state.aclose()


def sub(channel: int, **kwargs: object) -> SubscriptionSpec:
    return SubscriptionSpec(platform="discord", channel=str(channel), **kwargs)  # type: ignore[arg-type]


KEYNOTE = "Nvidia unveils Blackwell chips at its GTC keynote"


async def test_one_post_per_story_with_the_other_outlets_as_coverage(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    async with running(tmp_path, fake, [sub(CHANNEL)]) as bot:
        bot.store.write("a", article_text("gtc", KEYNOTE, "alpha"))
        bot.store.write("b", article_text("blackwell", "Nvidia unveils Blackwell chips at GTC "
                                          "keynote", "beta", quality=70))
        bot.store.write("c", article_text("chips", "Chips!", "gamma", quality=60,
                                          related=["https://alpha.example/gtc"]))
        bot.store.write("d", article_text("other", "Something else entirely", "delta"))
        await bot.round()
    assert sorted(bot.titles(CHANNEL)) == sorted([KEYNOTE, "Something else entirely"])
    [keynote] = [c for c, t in zip(bot.coverage(CHANNEL), bot.titles(CHANNEL), strict=True)
                 if t == KEYNOTE]
    assert "beta.example" in keynote and "gamma.example" in keynote


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c"])))
async def test_any_arrival_order_gives_one_post_per_story(
    tmp_path: Path, fake: FakeDiscord, order: tuple[str, ...]
) -> None:
    texts = {
        "a": article_text("gtc", KEYNOTE, "alpha"),
        "b": article_text("b", "Totally different words here", "beta",
                          related=["https://alpha.example/gtc"]),
        "c": article_text("c", "Nvidia unveils Blackwell chips at its GTC keynote!", "gamma"),
    }
    async with running(tmp_path, fake, [sub(CHANNEL)]) as bot:
        for name in order:
            bot.store.write(name, texts[name])
            await bot.round()  # each arrives on its own
    assert len(fake.messages(CHANNEL)) == 1
    [coverage] = bot.coverage(CHANNEL)
    outlet = {"a": "alpha", "b": "beta", "c": "gamma"}
    # Posted when the first arrived; the other two were edited in as they came.
    assert all(f"{outlet[name]}.example" in coverage for name in order[1:])


async def test_late_coverage_edits_threads_or_stays_quiet_as_each_channel_asks(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    subs = [sub(CHANNEL), sub(THREADED, late_coverage="thread"), sub(QUIET, late_coverage="off")]
    async with running(tmp_path, fake, subs) as bot:
        bot.store.write("a", article_text("gtc", KEYNOTE, "alpha", quality=60))
        await bot.round()
        posted = {c: fake.messages(c)[0]["id"] for c in (CHANNEL, THREADED, QUIET)}
        thread = int(posted[THREADED])  # a thread started from a message has its id
        bot.store.write("b", article_text("b", "Blackwell, explained", "beta", quality=100,
                                          related=["https://alpha.example/gtc"]))
        await bot.round()
        # Edit: the same message, now led by the better article, with the first as coverage.
        [edited] = fake.messages(CHANNEL)
        assert edited["id"] == posted[CHANNEL] and edited["edited_timestamp"]
        assert edited["embeds"][0]["title"] == "Blackwell, explained"
        assert "alpha.example" in edited["embeds"][0]["fields"][0]["value"]
        # Thread: the post is left as it was; the newcomer is a reply in its thread.
        [original] = fake.messages(THREADED)
        assert original["embeds"][0]["title"] == KEYNOTE and not original["edited_timestamp"]
        [reply] = fake.messages(thread)
        assert reply["embeds"][0]["title"] == "Blackwell, explained"
        assert fake.thread_parents[thread] == THREADED
        # Off: nothing at all.
        [quiet] = fake.messages(QUIET)
        assert quiet["embeds"][0]["title"] == KEYNOTE and not quiet["edited_timestamp"]
        # A second late article: one more reply in the same thread, one more edit.
        bot.store.write("c", article_text("c", "Another take", "gamma", quality=50,
                                          related=["https://alpha.example/gtc"]))
        await bot.round()
    assert len(fake.messages(thread)) == 2
    assert len(fake.requests_to("POST", f"/channels/{THREADED}/messages/")) == 1  # one thread
    assert "gamma.example" in fake.messages(CHANNEL)[0]["embeds"][0]["fields"][0]["value"]
    assert len(fake.messages(QUIET)) == 1 and len(fake.messages(CHANNEL)) == 1


async def test_a_corrected_file_edits_the_post_and_an_invisible_change_sends_nothing(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    async with running(tmp_path, fake, [sub(CHANNEL)]) as bot:
        bot.store.write("a", article_text("gtc", "Nvidia unvails Blackwel", "alpha"))
        await bot.round()
        bot.store.write("a", article_text("gtc", "Nvidia unveils Blackwell", "alpha"))
        await bot.round()
        [message] = fake.messages(CHANNEL)
        assert message["embeds"][0]["title"] == "Nvidia unveils Blackwell"
        edits = len(fake.requests_to("PATCH", f"/channels/{CHANNEL}/messages/"))
        assert edits == 1
        # The same file again with a change no message shows (its body text): no request.
        bot.store.write("a", article_text("gtc", "Nvidia unveils Blackwell", "alpha") + "Body.")
        await bot.round()
    assert len(fake.requests_to("PATCH", f"/channels/{CHANNEL}/messages/")) == edits
    assert len(fake.requests_to("POST", f"/channels/{CHANNEL}/messages")) == 1


async def test_a_deleted_post_fails_its_edit_and_the_channel_goes_on(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    async with running(tmp_path, fake, [sub(CHANNEL)]) as bot:
        bot.store.write("a", article_text("gtc", KEYNOTE, "alpha"))
        await bot.round()
        [message] = fake.messages(CHANNEL)
        await delete(fake, CHANNEL, message["id"])
        bot.store.write("b", article_text("b", "More", "beta",
                                          related=["https://alpha.example/gtc"]))
        bot.store.write("z", article_text("z", "A new story", "zeta",
                                          published="2026-11-25T10:00:00Z"))
        await bot.round()
        subs = await bot.state.subscriptions()
    assert not any(s.is_parked for s in subs)
    assert bot.titles(CHANNEL) == ["A new story"]


async def delete(fake: FakeDiscord, channel: int, message_id: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.delete(
        f"{fake.base_url}/channels/{channel}/messages/{message_id}",
        headers={"Authorization": f"Bot {fake.bot_token}"},
    ) as response:
        assert response.status == 204



# --- Slack: the same through slack_sdk and the fake Slack ------------------------------------

SLACK_EDIT = "C0EDIT0001"
SLACK_THREAD = "C0THREAD01"


@asynccontextmanager
async def slack_running(tmp_path: Path) -> AsyncIterator[tuple[Worker, FakeSlack, Store]]:
    async with FakeSlack() as fake_slack:
        for channel in (SLACK_EDIT, SLACK_THREAD):
            fake_slack.add_channel(channel)
        store = Store(tmp_path / "store")
        config = Config(
            store=StoreConfig(path=store.root, watch=False),
            database=DatabaseConfig(path=tmp_path / "state.db"),
            subscriptions=(
                SubscriptionSpec(platform="slack", channel=SLACK_EDIT),
                SubscriptionSpec(platform="slack", channel=SLACK_THREAD, late_coverage="thread"),
            ),
            slack=SlackConfig(api_base_url=fake_slack.api_url, commands="off"),
        )
        clock: FakeClock = RunningClock()
        state = await State.open(config.database.path, clock)
        notifier = create_slack_notifier(
            fake_slack.bot_token, config.slack, RenderStyle(), {}, clock
        )
        try:
            await notifier.start()
            _, scheduler = build_delivery(config, state, {"slack": notifier}, clock)
            worker = Worker(config, state, scheduler, clock)
            await worker.prepare()
            yield worker, fake_slack, store
        finally:
            await notifier.aclose()
            await state.aclose()


async def test_slack_late_coverage_updates_the_message_or_replies_in_its_thread(
    tmp_path: Path,
) -> None:
    async with slack_running(tmp_path) as (worker, fake_slack, store):
        store.write("a", article_text("gtc", KEYNOTE, "alpha", quality=60))
        await worker.scan()
        assert await worker.deliver_until_idle(max_wait_s=10.0) == []
        store.write("b", article_text("b", "Blackwell, explained", "beta", quality=100,
                                      related=["https://alpha.example/gtc"]))
        await worker.scan()
        assert await worker.deliver_until_idle(max_wait_s=10.0) == []
        [updated] = fake_slack.messages(SLACK_EDIT)
        assert updated.get("edited") and "Blackwell, explained" in updated["text"]
        assert [c.body["ts"] for c in fake_slack.calls("chat.update")] == [updated["ts"]]
        threaded = fake_slack.messages(SLACK_THREAD)
        parent = next(m for m in threaded if m.get("thread_ts") in (None, m["ts"]))
        replies = [m for m in threaded if m.get("thread_ts") == parent["ts"] and m is not parent]
        assert [KEYNOTE in parent["text"], len(replies)] == [True, 1]
        assert "Blackwell, explained" in replies[0]["text"]


# --- explain agrees with what was sent -----------------------------------------------------


async def test_explain_says_what_each_channel_got_and_why(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    subs = [
        sub(CHANNEL),
        sub(THREADED, late_coverage="thread"),
        sub(QUIET, late_coverage="off", min_quality=90),
    ]
    async with running(tmp_path, fake, subs) as bot:
        bot.store.write("a", article_text("gtc", KEYNOTE, "alpha", quality=95))
        await bot.round()
        bot.store.write("b", article_text("b", "Blackwell, explained", "beta", quality=60,
                                          related=["https://alpha.example/gtc"]))
        await bot.round()
        defaults = RoutingDefaults(min_quality=40.0)
        now = datetime.now(UTC)
        late = parse_article(
            (bot.store.root / "b.md").read_bytes(), "b.md"
        )
        report = await explain(bot.state, late, defaults, now)
        unseen = parse_article(
            article_text("new", "Not scanned yet", "omega").encode(), "new.md"
        )
        not_yet = await explain(bot.state, unseen, defaults, now)
    by_target = {e.target: e for e in report.explanations}
    thread = fake.messages(int(fake.messages(THREADED)[0]["id"]))
    assert report.story.articles == 2 and report.story.outlets == ("Alpha News", "Beta News")
    edit = by_target[f"discord:{CHANNEL}"]
    assert edit.fate is Fate.DELIVERED and "part of story" in edit.reason
    assert edit.message == fake.messages(CHANNEL)[0]["id"]
    reply = by_target[f"discord:{THREADED}"]
    assert reply.fate is Fate.DELIVERED and f"message {thread[0]['id']}" in reply.reason
    quiet = by_target[f"discord:{QUIET}"]
    assert quiet.fate is Fate.NOT_DELIVERED
    assert "below the floor: quality 60 is under 90" in quiet.reason
    assert {e.fate for e in not_yet.explanations} == {Fate.WAITING, Fate.NOT_DELIVERED}
    assert not not_yet.known
    assert "not scanned yet" in format_report(not_yet)
