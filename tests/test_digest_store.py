"""bot/digest_store.py on real SQLite: what a digest subscription collects, under which row,
and what becomes of it when the subscription changes, goes, or its channel is paused."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from bot.articles import Article, RelatedCoverage
from bot.outbox import DeliveryKind, DeliveryState
from bot.schedule_time import DeliveryMode
from bot.state import State
from bot.subscriptions import Subscription
from tests.builders import make_article
from tests.conftest import FakeClock
from tests.test_outbox import article, route

# Sunday 29 November 2026, 12:00 UTC (the FakeClock's start).
NEXT_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC).timestamp()
NEXT_0900 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def state(tmp_path: Path, clock: FakeClock) -> AsyncIterator[State]:
    opened = await State.open(tmp_path / "state.db", clock)
    try:
        yield opened
    finally:
        await opened.aclose()


DAILY = Subscription(0, "console", "news", mode=DeliveryMode.DAILY, digest_at=time(8, 0))


async def digests(state: State) -> list[tuple[float | None, DeliveryState, list[str]]]:
    rows = [r for r in await state.outbox.rows_for("console", "news")
            if r.kind is DeliveryKind.DIGEST]
    found = []
    for row in rows:
        keys = [key for _, key in await state.outbox.digest_items(row.id)]
        found.append((row.period_at, row.state, keys))
    return found


def keys(*articles: Article) -> list[str]:
    return [a.key for a in articles]


async def test_stories_are_collected_under_the_next_digest_once_each(
    state: State, clock: FakeClock
) -> None:
    sub, _ = await state.add_subscription(DAILY)
    one, two = article(1), article(2)
    await route(state, [one], sub)
    await route(state, [two], sub)
    await route(state, [one], sub)  # the same story again: listed once
    assert await digests(state) == [(NEXT_0800, DeliveryState.PENDING, keys(one, two))]
    [row] = await state.outbox.rows_for("console", "news")
    assert row.next_attempt_at == NEXT_0800 and row.key == (
        f"console:news:digest:{sub.id}:{int(NEXT_0800)}"
    )
    # Once its time has come, the next story goes under tomorrow's digest, even while this
    # one has not gone out yet: what a digest lists is settled when it is due.
    clock.advance(NEXT_0800 - clock.time())
    three = article(3)
    await route(state, [three], sub)
    tomorrow = NEXT_0800 + 24 * 3600
    assert await digests(state) == [
        (NEXT_0800, DeliveryState.PENDING, keys(one, two)),
        (tomorrow, DeliveryState.PENDING, keys(three)),
    ]


async def test_a_changed_digest_time_moves_the_digest_collecting(
    state: State, clock: FakeClock
) -> None:
    sub, _ = await state.add_subscription(DAILY)
    await route(state, [article(1)], sub)
    await state.add_subscription(dataclasses.replace(DAILY, digest_at=time(9, 0)))
    [(period, _, _)] = await digests(state)
    assert period == NEXT_0900
    [row] = await state.outbox.rows_for("console", "news")
    assert row.next_attempt_at == NEXT_0900


async def test_a_removed_subscription_takes_its_digest_along(
    state: State, clock: FakeClock
) -> None:
    sub, _ = await state.add_subscription(DAILY)
    await route(state, [article(1)], sub)
    assert await state.remove_subscription_by_id(sub.id)
    assert await state.outbox.rows_for("console", "news") == []
    # Made again, it collects afresh into a digest of its own.
    again, _ = await state.add_subscription(DAILY)
    await route(state, [article(2)], again)
    assert [items for *_, items in await digests(state)] == [keys(article(2))]


async def test_a_paused_channel_keeps_its_digest_waiting_for_its_time(
    state: State, clock: FakeClock
) -> None:
    sub, _ = await state.add_subscription(DAILY)
    await route(state, [article(1)], sub)
    await state.park_channel("console", "news", "gone")
    assert [s for _, s, _ in await digests(state)] == [DeliveryState.PARKED]
    await state.unpark_channel("console", "news")
    [row] = await state.outbox.rows_for("console", "news")
    # Resumed, but not sent before its time.
    assert (row.state, row.next_attempt_at) == (DeliveryState.PENDING, NEXT_0800)


async def test_stories_that_merge_are_listed_once(state: State, clock: FakeClock) -> None:
    def linked(n: int, title: str, *urls: str) -> Article:
        url = f"https://example.com/m{n}"
        return make_article(key=url, web_url=url, title=title,
                            related=tuple(RelatedCoverage("x", u) for u in urls))

    sub, _ = await state.add_subscription(DAILY)
    first = linked(1, "Chipmaker posts record quarter")
    second = linked(2, "Regulators open an inquiry into rail safety")
    await route(state, [first], sub)
    await route(state, [second], sub)
    assert len((await digests(state))[0][2]) == 2
    # A third article names both as its coverage: one story now, listed once.
    await route(state, [linked(3, "A bridge", first.web_url, second.web_url)], sub)
    [(_, _, listed)] = await digests(state)
    assert listed == keys(first)
