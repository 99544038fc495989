"""bot/delivery.py: outcomes of sends through a fake notifier, on a real SQLite state, driven
by the real scheduler (unpaced) in bounded rounds at one instant of a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.delivery import Deliverer, RetryPolicy
from bot.outbox import Delivery, DeliveryState
from bot.pacing import Unpaced
from bot.platforms.base import FailureScope, PermanentError, SentRef, TransientError
from bot.routing import Routing
from bot.scheduler import LaneStats, Scheduler
from bot.state import State
from bot.store import FileOutcome, FileStamp
from bot.subscriptions import Subscription
from tests.conftest import FakeClock


class FakeNotifier:
    """Records every call; fails on demand, per channel, with the errors given."""

    def __init__(self, platform: str = "console") -> None:
        self._platform = platform
        self.sent: list[tuple[str, str, str]] = []  # (delivery key, channel, title)
        self.attempts: list[tuple[str, str]] = []  # every send call: (delivery key, channel)
        self.failures: dict[str, list[Exception]] = {}  # channel -> errors to raise, in order
        self.always_fail: dict[str, Exception] = {}  # channel -> error raised on every send
        self.posted: dict[str, SentRef] = {}  # what find_sent finds, by delivery key
        self.find_calls: list[tuple[str, str]] = []
        self.edits: list[tuple[str, str, str]] = []  # (channel, message id, title)
        self.retracted: list[tuple[str, str]] = []

    @property
    def platform(self) -> str:
        return self._platform

    async def start(self) -> None:
        return None

    async def send(
        self, delivery_key: str, channel: str, article: Article, mention: str | None = None
    ) -> SentRef:
        self.attempts.append((delivery_key, channel))
        if channel in self.always_fail:
            raise self.always_fail[channel]
        planned = self.failures.get(channel)
        if planned:
            raise planned.pop(0)
        self.sent.append((delivery_key, channel, article.title))
        return SentRef(message_id=f"{self._platform}-msg-{len(self.sent)}")

    async def find_sent(self, delivery_key: str, channel: str) -> SentRef | None:
        self.find_calls.append((delivery_key, channel))
        return self.posted.get(delivery_key)

    def fingerprint(self, channel: str, article: Article) -> str:
        return f"{article.title}|{len(article.related)}"

    async def edit(
        self, channel: str, message_id: str, article: Article, mention: str | None = None
    ) -> SentRef:
        self.edits.append((channel, message_id, article.title))
        return SentRef(message_id)

    async def reply(
        self, delivery_key: str, channel: str, parent: SentRef, article: Article
    ) -> SentRef:
        self.sent.append((delivery_key, channel, article.title))
        return SentRef(f"reply-{len(self.sent)}", thread_ref=parent.message_id)

    async def retract(self, channel: str, message_id: str) -> SentRef:
        self.retracted.append((channel, message_id))
        return SentRef(message_id)

    async def aclose(self) -> None:
        return None


def make_article(n: int) -> Article:
    text = (
        f'---\ntitle: "Story {n}"\nwebUrl: https://example.com/story/{n}\nquality: 80\n'
        f"publishedDateTime: 2026-11-0{1 + n % 9}T08:00:00Z\ntopics: [AI]\n---\n"
    )
    return parse_article(text.encode(), f"{n}.md")


class Harness:
    def __init__(self, state: State, clock: FakeClock) -> None:
        self.state = state
        self.clock = clock
        self._files = 0

    async def subscribe(self, channel: str, platform: str = "console") -> Subscription:
        stored, _ = await self.state.add_subscription(
            Subscription(id=0, platform=platform, channel=channel)
        )
        return stored

    async def enqueue(self, *subs: Subscription, count: int = 1) -> list[Article]:
        articles = []
        for _ in range(count):
            self._files += 1
            articles.append(make_article(self._files))
        await self.state.record_files(
            [FileOutcome(f"{a.title}.md", FileStamp(1, 1), article=a) for a in articles],
            route=lambda article: Routing(targets=subs, held_unscored=False),
        )
        return articles

    async def rows(self, channel: str, platform: str = "console") -> list[Delivery]:
        return await self.state.outbox.rows_for(platform, channel)


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    state = await State.open(tmp_path / "state.db", clock)
    try:
        yield Harness(state, clock)
    finally:
        await state.aclose()


@dataclass
class Round:
    sent: int = 0
    retried: int = 0  # rate limits included
    failed: int = 0
    parked: int = 0


class Driver:
    """The deliverer under a fresh unpaced scheduler per round: one bounded run that sends
    everything due at the clock's present instant."""

    def __init__(self, h: Harness, deliverer: Deliverer) -> None:
        self._h = h
        self.deliverer = deliverer

    @property
    def stopped_platforms(self) -> dict[str, str]:
        return self.deliverer.stopped_platforms

    @property
    def active_platforms(self) -> list[str]:
        return self.deliverer.active_platforms

    async def recover_interrupted(self) -> int:
        return await self.deliverer.recover_interrupted()

    async def deliver_due(self, stop: asyncio.Event | None = None) -> Round:
        pacers = {p: Unpaced() for p in self.deliverer.platforms}
        scheduler = Scheduler(self.deliverer, self._h.state.outbox, pacers, self._h.clock)
        await scheduler.drain(stop or asyncio.Event(), max_wait_s=0.0)
        total = LaneStats()
        for lane in scheduler.lanes.values():
            total.sent += lane.stats.sent
            total.retried += lane.stats.retried + lane.stats.rate_limited
            total.failed += lane.stats.failed
            total.parked += lane.stats.parked
        return Round(total.sent, total.retried, total.failed, total.parked)

    async def next_due_at(self) -> float | None:
        return await self._h.state.outbox.next_due_at(self.deliverer.active_platforms)


def deliverer(
    h: Harness, *notifiers: FakeNotifier, policy: RetryPolicy | None = None, jitter: float = 0.5
) -> Driver:
    return Driver(
        h,
        Deliverer(
            h.state, {n.platform: n for n in notifiers}, h.clock, policy=policy,
            jitter=lambda: jitter,
        ),
    )


async def test_sent_rows_are_marked_sent_with_message_ref(harness: Harness) -> None:
    fake = FakeNotifier()
    news = await harness.subscribe("news")
    articles = await harness.enqueue(news, count=3)
    d = deliverer(harness, fake)
    report = await d.deliver_due()
    assert (report.sent, report.retried, report.failed, report.parked) == (3, 0, 0, 0)
    assert [(k, c, t) for k, c, t in fake.sent] == [
        (f"console:news:{a.key}", "news", a.title) for a in articles
    ]
    rows = await harness.rows("news")
    assert [r.state for r in rows] == [DeliveryState.SENT] * 3
    assert [r.message_ref for r in rows] == ["console-msg-1", "console-msg-2", "console-msg-3"]
    assert all(r.attempts == 1 for r in rows)
    # Nothing is due any more: a second round sends nothing.
    assert (await d.deliver_due()).sent == 0
    assert len(fake.attempts) == 3


async def test_retry_after_is_respected(harness: Harness, clock: FakeClock) -> None:
    fake = FakeNotifier()
    news = await harness.subscribe("news")
    await harness.enqueue(news)
    fake.failures["news"] = [TransientError("429 rate limited", retry_after_s=30.0)]
    d = deliverer(harness, fake)
    report = await d.deliver_due()
    assert (report.sent, report.retried) == (0, 1)
    (row,) = await harness.rows("news")
    assert row.state is DeliveryState.PENDING
    assert row.next_attempt_at == clock.time() + 30.0
    assert (row.attempts, row.last_error) == (1, "429 rate limited")
    assert await d.next_due_at() == clock.time() + 30.0

    assert (await d.deliver_due()).sent == 0
    clock.advance(29.9)
    assert (await d.deliver_due()).sent == 0
    assert len(fake.attempts) == 1  # nothing was resent before the stated wait
    clock.advance(0.1)
    assert (await d.deliver_due()).sent == 1
    (row,) = await harness.rows("news")
    assert (row.state, row.attempts) == (DeliveryState.SENT, 2)


async def test_rate_limit_holds_the_whole_channel(harness: Harness, clock: FakeClock) -> None:
    fake = FakeNotifier()
    news = await harness.subscribe("news")
    other = await harness.subscribe("other")
    await harness.enqueue(news, other, count=3)
    fake.failures["news"] = [TransientError("429", retry_after_s=10.0)]
    d = deliverer(harness, fake)
    for _ in range(3):  # several rounds at the same instant, as deliver_until_idle would run
        await d.deliver_due()
    news_attempts = [a for a in fake.attempts if a[1] == "news"]
    assert len(news_attempts) == 1  # no row of the limited channel was tried during the wait
    assert sum(1 for s in fake.sent if s[1] == "other") == 3  # other channels go on
    clock.advance(10)
    await d.deliver_due()
    assert sum(1 for s in fake.sent if s[1] == "news") == 3


async def test_transient_without_retry_after_backs_off_exponentially(
    harness: Harness, clock: FakeClock
) -> None:
    fake = FakeNotifier()
    news = await harness.subscribe("news")
    await harness.enqueue(news)
    fake.always_fail["news"] = TransientError("HTTP 503")
    policy = RetryPolicy(base_s=2.0, cap_s=10.0, max_attempts=6)
    d = deliverer(harness, fake, policy=policy, jitter=0.5)  # jitter 0.5: factor 0.75
    waits = []
    for _ in range(5):
        before = clock.time()
        report = await d.deliver_due()
        assert report.retried == 1
        (row,) = await harness.rows("news")
        assert row.state is DeliveryState.PENDING
        waits.append(row.next_attempt_at - before)
        # Not retried before its time.
        clock.advance(row.next_attempt_at - before - 0.01)
        assert (await d.deliver_due()).retried == 0
        clock.advance(0.01)
    assert waits == pytest.approx([1.5, 3.0, 6.0, 7.5, 7.5])  # 2, 4, 8, then capped at 10
    # The last allowed attempt fails for good; nothing is retried after that.
    report = await d.deliver_due()
    assert report.failed == 1
    (row,) = await harness.rows("news")
    assert row.state is DeliveryState.FAILED and row.attempts == 6
    assert "HTTP 503" in (row.last_error or "")
    clock.advance(3600)
    await d.deliver_due()
    assert len(fake.attempts) == 6


def test_backoff_has_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_s=2.0, cap_s=900.0)
    low = policy.backoff_s(3, 0.0)
    high = policy.backoff_s(3, 0.999)
    assert 4.0 <= low < high <= 8.0
    assert policy.backoff_s(50, 0.999) <= 900.0


async def test_channel_refusal_parks_it_and_others_go_on(harness: Harness) -> None:
    fake = FakeNotifier()
    gone = await harness.subscribe("gone")
    fine = await harness.subscribe("fine")
    await harness.enqueue(gone, fine, count=3)
    fake.always_fail["gone"] = PermanentError("404 Unknown Channel", FailureScope.CHANNEL)
    d = deliverer(harness, fake)
    report = await d.deliver_due()
    assert (report.sent, report.parked) == (3, 1)
    assert [s[1] for s in fake.sent] == ["fine"] * 3
    assert sum(1 for a in fake.attempts if a[1] == "gone") == 1  # then the channel stops
    assert [r.state for r in await harness.rows("gone")] == [DeliveryState.PARKED] * 3
    assert [r.state for r in await harness.rows("fine")] == [DeliveryState.SENT] * 3
    subs = {s.channel: s for s in await harness.state.subscriptions()}
    assert subs["gone"].parked_reason == "404 Unknown Channel"
    assert subs["fine"].parked_reason is None
    # Parked rows are never tried again, even much later.
    harness.clock.advance(86400)
    await d.deliver_due()
    assert sum(1 for a in fake.attempts if a[1] == "gone") == 1


async def test_delivery_refusal_fails_that_row_only(harness: Harness) -> None:
    fake = FakeNotifier()
    news = await harness.subscribe("news")
    await harness.enqueue(news, count=2)
    fake.failures["news"] = [PermanentError("400 invalid embed", FailureScope.DELIVERY)]
    d = deliverer(harness, fake)
    report = await d.deliver_due()
    assert (report.failed, report.sent) == (1, 1)
    first, second = await harness.rows("news")
    assert (first.state, first.last_error) == (DeliveryState.FAILED, "400 invalid embed")
    assert second.state is DeliveryState.SENT
    harness.clock.advance(86400)
    await d.deliver_due()
    assert len(fake.attempts) == 2  # the refused payload is never retried
    assert not any(s.is_parked for s in await harness.state.subscriptions())


async def test_platform_refusal_stops_the_platform(harness: Harness) -> None:
    discord = FakeNotifier("discord")
    console = FakeNotifier("console")
    d1 = await harness.subscribe("d1", platform="discord")
    d2 = await harness.subscribe("d2", platform="discord")
    c1 = await harness.subscribe("c1", platform="console")
    await harness.enqueue(d1, d2, c1, count=2)
    discord.always_fail["d1"] = PermanentError("401 invalid token", FailureScope.PLATFORM)
    discord.always_fail["d2"] = PermanentError("401 invalid token", FailureScope.PLATFORM)
    d = deliverer(harness, discord, console)
    await d.deliver_due()
    assert d.stopped_platforms == {"discord": "401 invalid token"}
    assert d.active_platforms == ["console"]
    assert len(console.sent) == 2
    rows = await harness.rows("d1", "discord") + await harness.rows("d2", "discord")
    assert {r.state for r in rows} == {DeliveryState.PENDING}  # kept for after the fix
    tried = len(discord.attempts)
    assert 1 <= tried <= 2  # at most the one in flight per channel
    harness.clock.advance(3600)
    await d.deliver_due()
    assert len(discord.attempts) == tried  # a stopped platform is not tried again
    assert not any(s.is_parked for s in await harness.state.subscriptions())


async def test_recover_interrupted_asks_the_platform_first(harness: Harness) -> None:
    fake = FakeNotifier()
    news = await harness.subscribe("news")
    await harness.enqueue(news, count=3)
    first, second, third = await harness.rows("news")
    # A crash left two rows `sending`; the platform did receive the first.
    await harness.state.outbox.mark_sending(first.id)
    await harness.state.outbox.mark_sending(second.id)
    fake.posted[first.key] = SentRef("already-there")
    d = deliverer(harness, fake)
    assert await d.recover_interrupted() == 1
    assert sorted(fake.find_calls) == sorted([(first.key, "news"), (second.key, "news")])
    rows = {r.id: r for r in await harness.rows("news")}
    recovered = rows[first.id]
    assert (recovered.state, recovered.message_ref) == (DeliveryState.SENT, "already-there")
    assert rows[second.id].state is DeliveryState.PENDING
    report = await d.deliver_due()
    assert report.sent == 2
    # The one found already posted was not sent again; the other two were, once each.
    assert [k for k, _, _ in fake.sent] == [second.key, third.key]
    assert await harness.state.outbox.interrupted() == []


async def test_concurrent_channels_are_sent_in_order_within_a_channel(harness: Harness) -> None:
    gate = asyncio.Event()
    fast_done = asyncio.Event()

    class SlowFirst(FakeNotifier):
        async def send(
            self, delivery_key: str, channel: str, article: Article, mention: str | None = None
        ) -> SentRef:
            if channel == "slow" and not gate.is_set():
                await gate.wait()
            ref = await super().send(delivery_key, channel, article)
            if sum(1 for s in self.sent if s[1] == "fast") == 3:
                fast_done.set()
            return ref

    fake = SlowFirst()
    slow = await harness.subscribe("slow")
    fast = await harness.subscribe("fast")
    articles = await harness.enqueue(slow, fast, count=3)
    d = deliverer(harness, fake)
    task = asyncio.create_task(d.deliver_due())
    # The fast channel is not held up by the slow one.
    await asyncio.wait_for(fast_done.wait(), 10)
    assert not task.done()
    gate.set()
    report = await asyncio.wait_for(task, 10)
    assert report.sent == 6
    assert [t for _, c, t in fake.sent if c == "slow"] == [a.title for a in articles]


async def test_unexpected_notifier_error_is_retried_not_left_sending(
    harness: Harness, clock: FakeClock
) -> None:
    fake = FakeNotifier()
    news = await harness.subscribe("news")
    await harness.enqueue(news, count=2)
    fake.failures["news"] = [BrokenPipeError("stdout went away")]
    d = deliverer(harness, fake, policy=RetryPolicy(base_s=2.0), jitter=0.0)
    report = await d.deliver_due()
    assert (report.retried, report.sent) == (1, 1)
    first, second = await harness.rows("news")
    assert first.state is DeliveryState.PENDING  # not stuck in `sending` until a restart
    assert first.next_attempt_at == clock.time() + 1.0
    assert first.last_error is not None and "BrokenPipeError" in first.last_error
    assert second.state is DeliveryState.SENT
    clock.advance(1.0)
    assert (await d.deliver_due()).sent == 1
    assert [t for _, _, t in fake.sent] == ["Story 2", "Story 1"]


async def test_stop_lets_the_send_in_flight_finish_and_starts_no_more(harness: Harness) -> None:
    stop = asyncio.Event()
    in_flight = asyncio.Event()
    finish = asyncio.Event()

    class Slow(FakeNotifier):
        async def send(
            self, delivery_key: str, channel: str, article: Article, mention: str | None = None
        ) -> SentRef:
            in_flight.set()
            await finish.wait()
            return await super().send(delivery_key, channel, article)

    fake = Slow()
    news = await harness.subscribe("news")
    await harness.enqueue(news, count=3)
    d = deliverer(harness, fake)
    task = asyncio.create_task(d.deliver_due(stop=stop))
    await asyncio.wait_for(in_flight.wait(), 10)
    stop.set()
    finish.set()
    report = await asyncio.wait_for(task, 10)
    assert report.sent == 1 and len(fake.attempts) == 1
    states = [r.state for r in await harness.rows("news")]
    assert states == [DeliveryState.SENT, DeliveryState.PENDING, DeliveryState.PENDING]


async def test_a_send_that_may_have_posted_is_looked_up_before_the_next_attempt(
    harness: Harness,
) -> None:
    sub = await harness.subscribe("news")
    await harness.enqueue(sub)
    notifier = FakeNotifier()
    notifier.failures["news"] = [TransientError("no answer", maybe_sent=True)]
    d = deliverer(harness, notifier)
    await d.deliver_due()
    (row,) = await harness.rows("news")
    assert row.state is DeliveryState.PENDING and row.uncertain
    # The platform did store it: the lookup finds it and nothing is posted again.
    notifier.posted[row.key] = SentRef("found-1")
    harness.clock.advance(3600)
    await d.deliver_due()
    (row,) = await harness.rows("news")
    assert row.state is DeliveryState.SENT and row.message_ref == "found-1"
    assert not row.uncertain
    assert notifier.find_calls == [(row.key, "news")]
    assert len(notifier.attempts) == 1 and notifier.sent == []


async def test_a_later_clean_failure_keeps_the_doubt(harness: Harness) -> None:
    sub = await harness.subscribe("news")
    await harness.enqueue(sub)
    notifier = FakeNotifier()
    notifier.failures["news"] = [
        TransientError("no answer", maybe_sent=True),
        TransientError("rate limited", retry_after_s=5),
    ]
    d = deliverer(harness, notifier)
    await d.deliver_due()
    harness.clock.advance(3600)
    await d.deliver_due()  # looked up (not found), sent, rate limited
    (row,) = await harness.rows("news")
    assert row.uncertain and len(notifier.find_calls) == 1
    harness.clock.advance(10)
    await d.deliver_due()
    (row,) = await harness.rows("news")
    assert row.state is DeliveryState.SENT and len(notifier.find_calls) == 2
    assert len(notifier.sent) == 1


async def test_an_interrupted_send_whose_lookup_fails_is_not_resent_blindly(
    harness: Harness,
) -> None:
    sub = await harness.subscribe("news")
    await harness.enqueue(sub)
    (row,) = await harness.rows("news")
    await harness.state.outbox.mark_sending(row.id)  # as a crash mid-send leaves it

    class LookupDown(FakeNotifier):
        down = True

        async def find_sent(self, delivery_key: str, channel: str) -> SentRef | None:
            self.find_calls.append((delivery_key, channel))
            if self.down:
                raise TransientError("history unavailable")
            return None

    notifier = LookupDown()
    d = deliverer(harness, notifier)
    await d.recover_interrupted()
    await d.deliver_due()
    assert notifier.attempts == []  # the lookup failed again in the round: no blind resend
    (row,) = await harness.rows("news")
    assert row.state is DeliveryState.PENDING and row.uncertain
    notifier.down = False
    harness.clock.advance(3600)
    await d.deliver_due()
    assert len(notifier.sent) == 1
