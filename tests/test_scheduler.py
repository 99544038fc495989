"""bot/scheduler.py in virtual time: the real scheduler, deliverer, pacing and SQLite outbox,
against platforms simulated on a FakeClock (tests/simulated.py). A wait with nothing in flight
moves the clock instead of sleeping, so a fan-out of minutes runs in a moment and every figure
(rate, 429s, latency) is exact and repeatable."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.delivery import Deliverer, RetryPolicy
from bot.outbox import DeliveryState
from bot.pacing import DISCORD_GLOBAL_HEADROOM, DiscordPacing, Pacer, SlackPacing, Unpaced
from bot.platforms.base import Notifier, RateLimit, SentRef
from bot.routing import Routing
from bot.scheduler import Scheduler
from bot.state import State
from bot.store import FileOutcome, FileStamp
from bot.subscriptions import Subscription
from tests.builders import store_file_text
from tests.conftest import FakeClock, VirtualTimer
from tests.simulated import SimulatedPlatform

# In virtual time: the database's real latency would show through the virtual clock, so these
# run on SQLite only (the scheduler's rules do not depend on the backend; the outbox's queries
# run on both in test_outbox.py and test_delivery.py).
pytestmark = pytest.mark.sqlite_only


def article(n: int, day: int = 1) -> Article:
    text = store_file_text(
        f"https://example.com/{n}", f"Story {n}", published=f"2026-11-{day:02d}T10:00:00Z"
    )
    return parse_article(text.encode(), f"{n}.md")


class World:
    def __init__(self, state: State, clock: FakeClock) -> None:
        self.state = state
        self.clock = clock
        self.timer = VirtualTimer(clock)
        self._next = 0

    async def channels(self, platform: str, count: int, prefix: str = "") -> list[Subscription]:
        subs = []
        for n in range(count):
            sub, _ = await self.state.add_subscription(
                Subscription(0, platform, f"{prefix}{n + 1000}")
            )
            subs.append(sub)
        return subs

    async def route(self, articles: Sequence[Article], subs: Sequence[Subscription]) -> None:
        await self.state.record_files(
            [FileOutcome(f"{a.key}.md", FileStamp(1, 1), article=a) for a in articles],
            route=lambda _a: Routing(targets=tuple(subs), held_unscored=False),
        )

    def articles(self, count: int) -> list[Article]:
        made = [article(self._next + i) for i in range(count)]
        self._next += count
        return made

    def scheduler(
        self,
        notifier: Notifier,
        pacer: Pacer,
        max_in_flight: int = 32,
        policy: RetryPolicy | None = None,
    ) -> Scheduler:
        deliverer = Deliverer(
            self.state, {notifier.platform: notifier}, self.clock, policy=policy,
            jitter=lambda: 0.0,
        )
        return Scheduler(
            deliverer, self.state.outbox, {notifier.platform: pacer}, self.clock,
            timer=self.timer, max_in_flight={notifier.platform: max_in_flight},
        )


@pytest.fixture
async def world(tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    state = await State.open(tmp_path / "state.db", clock)
    try:
        yield World(state, clock)
    finally:
        await state.aclose()


async def test_discord_fan_out_runs_at_the_global_ceiling_without_a_429(world: World) -> None:
    platform = SimulatedPlatform(world.clock, per_channel=5, window_s=5.0, global_per_s=50)
    channels = await world.channels("discord", 100)
    await world.route(world.articles(10), channels)
    started = world.clock.monotonic()
    left = await world.scheduler(platform, DiscordPacing(50.0)).drain(asyncio.Event(), 300.0)
    elapsed = world.clock.monotonic() - started
    assert left == []
    assert len(platform.sent()) == 1000 and platform.refused() == []
    assert platform.max_in_any_second() <= 50
    assert 1000 / elapsed >= 0.95 * 50 * DISCORD_GLOBAL_HEADROOM
    sent = Counter((r.channel, r.key) for r in platform.sent())
    assert set(sent.values()) == {1}


async def test_a_spent_bucket_never_holds_the_only_send_slot(world: World) -> None:
    platform = SimulatedPlatform(world.clock, per_channel=2, window_s=5.0, global_per_s=None)
    slow, other = await world.channels("discord", 2)
    await world.route(world.articles(4), [slow])
    await world.route(world.articles(2), [other])
    scheduler = world.scheduler(platform, DiscordPacing(1000.0), max_in_flight=1)
    assert await scheduler.drain(asyncio.Event(), 300.0) == []
    started = platform.requests[0].at
    slow_times = [r.at for r in platform.sent() if r.channel == slow.channel]
    other_times = [r.at for r in platform.sent() if r.channel == other.channel]
    assert slow_times[2] >= started + 5.0  # the slow channel did wait for its bucket...
    assert max(other_times) < started + 1.0  # ...and the other went meanwhile, not after it
    assert platform.refused() == []


async def test_a_channel_that_was_idle_is_served_next_during_a_backlog(world: World) -> None:
    platform = SimulatedPlatform(world.clock, per_channel=5, window_s=5.0, global_per_s=50)
    busy = await world.channels("discord", 100)
    await world.route(world.articles(10), busy)
    [quiet] = await world.channels("discord", 1, prefix="q")
    scheduler = world.scheduler(platform, DiscordPacing(50.0))
    # During the first round (while channels not yet served wait their first turn), and later,
    # each sooner than the channels' turn would come round again.
    arrivals = {
        20: world.articles(1), 40: world.articles(1), 300: world.articles(1),
        320: world.articles(1), 340: world.articles(1),
    }
    routed_at: list[float] = []

    async def a_new_article_arrives(request_number: int) -> None:
        fresh = arrivals.pop(request_number, None)
        if fresh is not None:  # well into the drain, and again after it was served
            await world.route(fresh, [quiet])
            routed_at.append(world.clock.monotonic())  # it has arrived once it is routed
            scheduler.notify()

    platform.on_send = a_new_article_arrives
    assert await scheduler.drain(asyncio.Event(), 300.0) == []
    posted = [r.at for r in platform.sent() if r.channel == quiet.channel]
    assert len(posted) == 5 and len(platform.sent()) == 1005
    for arrived, sent in zip(routed_at, posted, strict=True):
        assert sent - arrived <= 0.1  # within a few global tokens, not behind the backlog


async def test_channels_share_the_rate_round_robin(world: World) -> None:
    platform = SimulatedPlatform(world.clock, per_channel=100, window_s=1.0, global_per_s=10)
    channels = await world.channels("discord", 3)
    await world.route(world.articles(6), channels)
    assert await world.scheduler(platform, DiscordPacing(10.0)).drain(asyncio.Event(), 300) == []
    order = [r.channel for r in platform.sent()]
    # Each channel once per turn: no channel gets two before every other got one.
    for turn in range(6):
        assert sorted(order[turn * 3 : turn * 3 + 3]) == sorted(c.channel for c in channels)


async def test_a_channel_gets_its_stories_oldest_first(world: World) -> None:
    platform = SimulatedPlatform(world.clock, global_per_s=None)
    [channel] = await world.channels("discord", 1)
    stories = [article(n, day) for n, day in ((1, 9), (2, 3), (3, 6), (4, 1))]
    await world.route(stories, [channel])
    await world.scheduler(platform, DiscordPacing()).drain(asyncio.Event(), 300.0)
    assert [r.key.rsplit(":", 1)[-1] for r in platform.sent()] == [
        stories[3].key.rsplit(":", 1)[-1],
        stories[1].key.rsplit(":", 1)[-1],
        stories[2].key.rsplit(":", 1)[-1],
        stories[0].key.rsplit(":", 1)[-1],
    ]


async def test_a_429_is_never_hammered_one_per_bucket_until_its_reset(world: World) -> None:
    # A platform that says nothing before it says no (no headers): each channel learns from
    # its first 429 and waits as told.
    platform = SimulatedPlatform(
        world.clock, per_channel=2, window_s=4.0, global_per_s=None, send_headers=False
    )
    channels = await world.channels("discord", 5)
    await world.route(world.articles(6), channels)
    assert await world.scheduler(platform, DiscordPacing(1000.0)).drain(
        asyncio.Event(), 300.0
    ) == []
    assert len(platform.sent()) == 30
    for channel in channels:
        times = [r for r in platform.requests if r.channel == channel.channel]
        refused = [r for r in times if r.status == 429]
        for refusal in refused:
            later = [r.at for r in times if r.at > refusal.at]
            # Nothing to that bucket before the wait it named was over.
            assert all(t >= refusal.at + 0.99 for t in later)
        assert len(refused) <= 3  # one per window at most (6 rows, 2 per window)


async def test_slack_fan_out_stays_under_a_post_per_second_per_channel(world: World) -> None:
    platform = SimulatedPlatform(
        world.clock, name="slack", per_channel=1, window_s=1.0, global_per_s=None,
        send_headers=False,
    )
    channels = await world.channels("slack", 30)
    await world.route(world.articles(10), channels)
    started = world.clock.monotonic()
    assert await world.scheduler(platform, SlackPacing(200.0)).drain(
        asyncio.Event(), 300.0
    ) == []
    elapsed = world.clock.monotonic() - started
    assert len(platform.sent()) == 300 and platform.refused() == []
    assert 300 / elapsed >= 0.9 * 30  # ceiling: 30 channels at one a second


async def test_slack_learns_the_workspace_limit_from_its_first_refusals(world: World) -> None:
    platform = SimulatedPlatform(
        world.clock, name="slack", per_channel=1, window_s=1.0, global_per_s=8,
        send_headers=False,
    )
    channels = await world.channels("slack", 40)
    await world.route(world.articles(5), channels)
    assert await world.scheduler(platform, SlackPacing(200.0)).drain(
        asyncio.Event(), 600.0
    ) == []
    assert len(platform.sent()) == 200
    refusals = Counter(r.channel for r in platform.refused())
    assert all(n <= 1 for n in refusals.values())  # at most one 429 per channel
    assert len(platform.refused()) <= 6


async def test_a_bounded_run_waits_out_short_waits_and_names_what_is_left(
    world: World,
) -> None:
    console = SimulatedPlatform(world.clock, name="console", global_per_s=None, per_channel=100)
    short, long_, gone = await world.channels("console", 3)
    await world.route(world.articles(1), [short, long_, gone])
    rows = {}
    for sub in (short, long_, gone):
        [rows[sub.channel]] = await world.state.outbox.rows_for("console", sub.channel)
    now = world.clock.time()
    for channel, wait_s in ((short.channel, 120.0), (long_.channel, 3600.0)):
        await world.state.outbox.mark_sending(rows[channel].id)
        await world.state.outbox.mark_retry(rows[channel].id, now + wait_s, "HTTP 503")
    await world.state.park_channel("console", gone.channel, "404 Unknown Channel")
    left = await world.scheduler(console, Unpaced()).drain(asyncio.Event(), max_wait_s=300.0)
    assert [r.channel for r in console.sent()] == [short.channel]  # waited 120 s for it
    assert {(item.channel, item.rows) for item in left} == {(long_.channel, 1), (gone.channel, 1)}
    reasons = {item.channel: item.reason for item in left}
    assert "next attempt in" in reasons[long_.channel] and "HTTP 503" in reasons[long_.channel]
    assert reasons[gone.channel].startswith("parked: 404 Unknown Channel")
    [row] = await world.state.outbox.rows_for("console", short.channel)
    assert row.state is DeliveryState.SENT


class RefusingSlack(SimulatedPlatform):
    """Slack answering its first `refusals` posts with a long 429."""

    refusals: int = 2

    async def send(
        self, delivery_key: str, channel: str, article: Article, mention: str | None = None
    ) -> SentRef:
        if self.refusals:
            self.refusals -= 1
            raise self._refuse(
                channel, delivery_key, self.clock.monotonic(), RateLimit(retry_after_s=600.0)
            )
        return await super().send(delivery_key, channel, article)


async def test_a_bounded_run_does_not_wait_out_a_platform_wide_wait_beyond_its_horizon(
    world: World,
) -> None:
    platform = RefusingSlack(world.clock, name="slack", per_channel=1, global_per_s=None,
                             send_headers=False)
    channels = await world.channels("slack", 3)
    await world.route(world.articles(1), channels)
    started = world.clock.monotonic()
    left = await world.scheduler(platform, SlackPacing(200.0)).drain(
        asyncio.Event(), max_wait_s=5.0
    )
    # Two channels refused within seconds: the workspace waits 600 s, beyond this run's 5.
    # (The third channel's post may have left before the second refusal came back.)
    assert len(platform.refused()) == 2
    assert all(r.at < started + 5.0 for r in platform.requests)
    assert world.clock.monotonic() - started < 5.0
    refused = {r.channel for r in platform.refused()}
    assert refused <= {item.channel for item in left}
    assert len(left) + len(platform.sent()) == 3


async def test_a_running_scheduler_picks_up_new_rows_when_told(world: World) -> None:
    platform = SimulatedPlatform(world.clock, global_per_s=None)
    [channel] = await world.channels("discord", 1)
    scheduler = world.scheduler(platform, DiscordPacing())
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop, grace_s=1.0))
    arrived = asyncio.Event()

    async def note(_n: int) -> None:
        arrived.set()

    platform.on_send = note
    await world.route(world.articles(1), [channel])
    scheduler.notify()
    await asyncio.wait_for(arrived.wait(), 5.0)
    stop.set()
    await asyncio.wait_for(running, 5.0)
    assert len(platform.sent()) == 1
