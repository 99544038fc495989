"""Stories in the database: placing articles in them, inside the caller's transaction. The
rules are bot/stories.py's; this only reads what they need and writes what they decide."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiosqlite

from bot.outbox import merge_posts
from bot.stories import (
    TITLE_WINDOW_S,
    Known,
    Newcomer,
    candidate_words,
    group,
)

_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


async def place_articles(
    db: aiosqlite.Connection, newcomers: Sequence[Newcomer], now: float
) -> dict[str, int]:
    """Put each article (new, or changed; already written with its words and time) in its
    story; returns key -> story id. Stories that an article links together become one (the
    older id stays)."""
    if not newcomers:
        return {}
    url_stories = await _url_stories(db, sorted({u for n in newcomers for u in n.urls}))
    known = await _known_near(db, newcomers)
    grouping = group(newcomers, known, url_stories)
    for absorbed, survivor in sorted(grouping.merged.items()):
        await _merge(db, absorbed, survivor, now)
    story_of = dict(grouping.story_of)
    numbers = sorted(set(grouping.new_group.values()))
    if numbers:
        # Ids given here, in one statement: a first scan creates thousands of stories.
        async with db.execute("SELECT COALESCE(MAX(id), 0) FROM stories") as cursor:
            row = await cursor.fetchone()
        first = int(row[0] if row else 0) + 1
        new_story = {number: first + offset for offset, number in enumerate(numbers)}
        await db.executemany(
            "INSERT INTO stories (id, created_at) VALUES (?, ?)",
            [(story_id, now) for story_id in new_story.values()],
        )
        story_of.update({key: new_story[n] for key, n in grouping.new_group.items()})
    await db.executemany(
        "UPDATE articles SET story_id = ? WHERE key = ?",
        [(story_of[n.key], n.key) for n in newcomers],
    )
    await db.executemany(
        "INSERT INTO story_urls (url, story_id) VALUES (?, ?) "
        "ON CONFLICT (url) DO UPDATE SET story_id = excluded.story_id",
        [(url, story_of[n.key]) for n in newcomers for url in n.urls],
    )
    return story_of


async def _url_stories(db: aiosqlite.Connection, urls: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(urls):
        marks = ",".join("?" * len(chunk))
        async with db.execute(
            f"SELECT url, story_id FROM story_urls WHERE url IN ({marks})", chunk
        ) as cursor:
            found.update({url: story for url, story in await cursor.fetchall()})
    return found


def _time_ranges(newcomers: Sequence[Newcomer]) -> list[tuple[float, float]]:
    """The publication times a newcomer's title can match within: each newcomer's window,
    overlapping windows joined (a batch spread over months reads a few ranges, not all)."""
    ranges: list[tuple[float, float]] = []
    for published_s in sorted(n.published_s for n in newcomers):
        low, high = published_s - TITLE_WINDOW_S, published_s + TITLE_WINDOW_S
        if ranges and low <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], high)
        else:
            ranges.append((low, high))
    return ranges


async def _known_near(db: aiosqlite.Connection, newcomers: Sequence[Newcomer]) -> list[Known]:
    """Articles already placed that could match a newcomer's title: published within its
    window and sharing one of its candidate words (compared here, not indexed: the window
    holds a few days of articles)."""
    words = {w for n in newcomers for w in candidate_words(n.words)}
    if not words or not await _any_placed(db):
        return []
    skip = {n.key for n in newcomers}
    known: dict[str, Known] = {}
    for low, high in _time_ranges(newcomers):
        async with db.execute(
            "SELECT key, story_id, published_s, title_words FROM articles "
            "WHERE published_s BETWEEN ? AND ? AND story_id IS NOT NULL",
            (low, high),
        ) as cursor:
            for key, story_id, published_s, title in await cursor.fetchall():
                title_words = tuple(title.split())
                if key not in skip and words.intersection(title_words):
                    known[key] = Known(key, story_id, published_s, title_words)
    return list(known.values())


async def _any_placed(db: aiosqlite.Connection) -> bool:
    """Whether any article has a story yet (on a first scan, none: nothing to look up)."""
    async with db.execute("SELECT 1 FROM articles WHERE story_id IS NOT NULL LIMIT 1") as cur:
        return await cur.fetchone() is not None


async def _merge(db: aiosqlite.Connection, absorbed: int, survivor: int, now: float) -> None:
    """An article linked two stories: the younger joins the older, and each channel keeps one
    post of it (`merge_posts`)."""
    await db.execute("UPDATE articles SET story_id = ? WHERE story_id = ?", (survivor, absorbed))
    await db.execute("UPDATE story_urls SET story_id = ? WHERE story_id = ?", (survivor, absorbed))
    await db.execute("UPDATE stories SET merged_into = ? WHERE id = ?", (survivor, absorbed))
    await merge_posts(db, absorbed, survivor, now)
