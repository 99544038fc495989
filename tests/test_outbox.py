"""bot/outbox.py: the delivery rows' states and the queries the scheduler reads, on real SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.database import MIGRATIONS
from bot.outbox import DeliveryState
from bot.routing import Routing
from bot.state import State
from bot.store import FileOutcome, FileStamp
from bot.subscriptions import Subscription
from tests.builders import store_file_text
from tests.conftest import FakeClock


def article(n: int, published: str | None = None) -> Article:
    text = store_file_text(
        f"https://example.com/{n}", f"Story {n}", published=published or "2026-11-01T10:00:00Z"
    )
    return parse_article(text.encode(), f"{n}.md")


@pytest.fixture
async def state(tmp_path: Path, clock: FakeClock) -> AsyncIterator[State]:
    opened = await State.open(tmp_path / "state.db", clock)
    try:
        yield opened
    finally:
        await opened.aclose()


async def subscribe(state: State, channel: str, platform: str = "console") -> Subscription:
    stored, _ = await state.add_subscription(Subscription(0, platform, channel))
    return stored


async def route(state: State, articles: list[Article], *subs: Subscription) -> None:
    await state.record_files(
        [FileOutcome(f"{a.title}.md", FileStamp(1, 1), article=a) for a in articles],
        route=lambda _article: Routing(targets=subs, held_unscored=False),
    )


async def test_a_channels_rows_come_oldest_story_first(state: State, clock: FakeClock) -> None:
    news = await subscribe(state, "news")
    newest = article(1, "2026-11-03T10:00:00Z")
    oldest = article(2, "2026-11-01T10:00:00Z")
    middle = article(3, "2026-11-02T10:00:00Z")
    await route(state, [newest, oldest, middle], news)
    rows = await state.outbox.due_rows("console", "news", clock.time(), 10)
    assert [r.article_key for r in rows] == [oldest.key, middle.key, newest.key]
    first_two = await state.outbox.due_rows("console", "news", clock.time(), 2)
    assert [r.article_key for r in first_two] == [oldest.key, middle.key]


async def test_backlog_names_each_channel_with_its_first_due_time(
    state: State, clock: FakeClock
) -> None:
    a, b = await subscribe(state, "a"), await subscribe(state, "b", platform="discord")
    await route(state, [article(1), article(2)], a, b)
    [row_a1, row_a2] = await state.outbox.due_rows("console", "a", clock.time(), 10)
    await state.outbox.mark_sending(row_a1.id)
    await state.outbox.mark_retry(row_a1.id, clock.time() + 60, "HTTP 503")
    await state.outbox.mark_sending(row_a2.id)
    await state.outbox.mark_retry(row_a2.id, clock.time() + 30, "HTTP 502")
    backlog = {(w.platform, w.channel): w for w in await state.outbox.backlog()}
    assert set(backlog) == {("console", "a"), ("discord", "b")}
    assert backlog[("console", "a")].pending == 2
    assert backlog[("console", "a")].next_attempt_at == clock.time() + 30
    assert backlog[("discord", "b")].next_attempt_at == clock.time()
    assert [w.channel for w in await state.outbox.backlog(["discord"])] == ["b"]
    assert await state.outbox.due_rows("console", "a", clock.time(), 10) == []
    assert await state.outbox.next_attempt_at("console", "a") == clock.time() + 30
    assert await state.outbox.next_attempt_at("console", "nobody") is None


async def test_outbox_state_machine(state: State, clock: FakeClock) -> None:
    c1 = await subscribe(state, "c1")
    await route(state, [article(1), article(2)], c1)
    first, second = await state.outbox.due_rows("console", "c1", clock.time(), 10)

    assert await state.outbox.mark_sending(first.id)
    assert not await state.outbox.mark_sending(first.id)  # claimed once only
    [interrupted] = await state.outbox.interrupted()
    assert (interrupted.id, interrupted.state, interrupted.attempts) == (
        first.id, DeliveryState.SENDING, 1
    )
    assert [r.id for r in await state.outbox.due_rows("console", "c1", clock.time(), 10)] == [
        second.id
    ]
    await state.outbox.mark_sent(first.id, "msg-1")
    done = (await state.outbox.rows_for("console", "c1"))[0]
    assert (done.state, done.message_ref, done.attempts) == (DeliveryState.SENT, "msg-1", 1)
    assert await state.outbox.interrupted() == []

    assert await state.outbox.mark_sending(second.id)
    await state.outbox.mark_retry(second.id, clock.time() + 60, "HTTP 503", uncertain=True)
    retried = (await state.outbox.rows_for("console", "c1"))[1]
    assert (retried.state, retried.last_error, retried.uncertain) == (
        DeliveryState.PENDING, "HTTP 503", True
    )
    assert await state.outbox.next_due_at(["console"]) == clock.time() + 60
    # A later clean failure does not undo the doubt.
    clock.advance(60)
    assert await state.outbox.mark_sending(second.id)
    await state.outbox.mark_retry(second.id, clock.time(), "HTTP 502")
    assert (await state.outbox.rows_for("console", "c1"))[1].uncertain

    assert await state.outbox.mark_sending(second.id)
    await state.outbox.mark_failed(second.id, "HTTP 400 payload rejected")
    failed = (await state.outbox.rows_for("console", "c1"))[1]
    assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 3)
    assert not await state.outbox.mark_sending(second.id)  # failed rows are never sent again
    assert await state.outbox.next_due_at(["console"]) is None
    counts = await state.outbox.counts()
    assert counts == {("console", DeliveryState.SENT): 1, ("console", DeliveryState.FAILED): 1}


async def test_hold_channel_delays_every_pending_row_of_the_channel_only(
    state: State, clock: FakeClock
) -> None:
    a, b = await subscribe(state, "a"), await subscribe(state, "b")
    await route(state, [article(1), article(2)], a, b)
    assert await state.outbox.hold_channel("console", "a", clock.time() + 10) == 2
    assert await state.outbox.due_rows("console", "a", clock.time(), 10) == []
    assert len(await state.outbox.due_rows("console", "b", clock.time(), 10)) == 2
    # A hold never brings a row forward.
    assert await state.outbox.hold_channel("console", "a", clock.time() + 5) == 0
    assert await state.outbox.next_attempt_at("console", "a") == clock.time() + 10


async def test_oldest_pending_since_is_when_the_oldest_waiting_row_was_queued(
    state: State, clock: FakeClock
) -> None:
    assert await state.outbox.oldest_pending_since() is None
    a = await subscribe(state, "a")
    queued_at = clock.time()
    await route(state, [article(1)], a)
    clock.advance(100)
    await route(state, [article(2)], a)
    assert await state.outbox.oldest_pending_since() == queued_at


@pytest.mark.sqlite_only
async def test_migration_gives_existing_rows_their_story_time(tmp_path: Path) -> None:
    """A database from before the scheduler (schema 3) keeps its rows, now ordered by story."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:3]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 3")
        conn.execute(
            "INSERT INTO articles VALUES ('k1', 't', '2026-11-01T10:00:00+00:00', 50, 'p', '{}', "
            "1, 1)"
        )
        conn.execute(
            "INSERT INTO deliveries (platform, channel, article_key, state, next_attempt_at, "
            "created_at, updated_at) VALUES ('console', 'c', 'k1', 'pending', 5, 5, 5)"
        )
    state = await State.open(path, FakeClock())
    try:
        [row] = await state.outbox.rows_for("console", "c")
        assert row.sort_at == pytest.approx(1793527200.0)
    finally:
        await state.aclose()
