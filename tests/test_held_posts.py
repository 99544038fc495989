"""Posts held by quiet hours, and posts whose story turns breaking before they go, on real
SQLite: the hold is lifted, a wait the platform asked for is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.articles import Article, RelatedCoverage
from bot.outbox import HELD_BY_QUIET_HOURS
from bot.schedule_time import QuietHours
from bot.state import State
from bot.subscriptions import Subscription
from tests.builders import make_article
from tests.conftest import FakeClock
from tests.test_outbox import route

ROLE = "123456789012345678"
NIGHT = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)
MORNING = datetime(2026, 11, 30, 7, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[State]:
    opened = await State.open(tmp_path / "state.db", FakeClock(NIGHT))
    try:
        yield opened
    finally:
        await opened.aclose()


def story_article(n: int, quality: float, *related: str) -> Article:
    url = f"https://outlet{n}.example/story"
    return make_article(key=url, web_url=url, title=f"Take {n} on the story", quality=quality,
                        related=tuple(RelatedCoverage("x", u) for u in related))


async def test_a_held_post_whose_story_turns_breaking_goes_at_once(state: State) -> None:
    sub, _ = await state.add_subscription(Subscription(
        0, "console", "news", quiet_hours=QuietHours.parse("22:00-07:00"), mention=ROLE,
    ))
    first = story_article(1, 60.0)
    await route(state, [first], sub)
    [held] = await state.outbox.rows_for("console", "news")
    assert (held.next_attempt_at, held.held_by, held.mention) == (
        MORNING, HELD_BY_QUIET_HOURS, None,
    )
    await route(state, [story_article(2, 150.0, first.web_url)], sub)
    [released] = await state.outbox.rows_for("console", "news")
    assert (released.next_attempt_at, released.held_by, released.mention) == (
        NIGHT.timestamp(), None, ROLE,
    )


async def test_a_post_waiting_for_a_retry_keeps_its_wait_but_gains_its_mention(
    state: State,
) -> None:
    sub, _ = await state.add_subscription(Subscription(0, "console", "news", mention=ROLE))
    first = story_article(1, 60.0)
    await route(state, [first], sub)
    [row] = await state.outbox.rows_for("console", "news")
    await state.outbox.mark_sending(row.id)
    retry_at = NIGHT.timestamp() + 600
    await state.outbox.mark_retry(row.id, retry_at, "HTTP 429", uncertain=False)
    await route(state, [story_article(2, 150.0, first.web_url)], sub)
    [after] = await state.outbox.rows_for("console", "news")
    assert (after.next_attempt_at, after.mention) == (retry_at, ROLE)


async def test_a_held_post_of_a_paused_channel_still_waits_for_the_morning(state: State) -> None:
    sub, _ = await state.add_subscription(Subscription(
        0, "console", "news", quiet_hours=QuietHours.parse("22:00-07:00"),
    ))
    await route(state, [story_article(1, 60.0)], sub)
    await state.park_channel("console", "news", "gone")
    await state.unpark_channel("console", "news")
    [row] = await state.outbox.rows_for("console", "news")
    assert (row.state, row.next_attempt_at) == ("pending", MORNING)
