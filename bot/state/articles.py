"""Articles and their stories: what the ingest of a batch of files records (in one
transaction with the outbox rows routing decides and the edits corrections make), and the reads
of articles and stories (`/news`, `explain`, the panel, backfills)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bot.articles import Article, article_from_dict
from bot.carriers import Carriers, Take
from bot.clock import Clock
from bot.database import StateDatabase
from bot.outbox import correct, enqueue
from bot.routing import Routing
from bot.state.store_index import carriers, index_files, remove_files
from bot.store import FileOutcome
from bot.stored_article import StoredArticle, stored_article
from bot.stories import Newcomer, compose, story_urls
from bot.story_store import place_articles
from bot.subscriptions import Subscription


@dataclass(frozen=True, slots=True)
class IngestReport:
    new_articles: int = 0
    updated_articles: int = 0
    duplicates: int = 0  # files whose story another file already brought
    bad_files: int = 0
    removed_files: int = 0
    deliveries: int = 0
    held_unscored: int = 0
    # New articles recorded without a story yet (`record_stored(..., place_later=True)`), for
    # `place_stories`.
    unplaced: tuple[Newcomer, ...] = ()


RouteFn = Callable[[Article], Routing]


class ArticleRepository:
    def __init__(self, database: StateDatabase, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def record_files(
        self,
        outcomes: Sequence[FileOutcome[Article]],
        removed: Sequence[str] = (),
        route: RouteFn | None = None,
    ) -> IngestReport:
        """Record parsed files and their articles; for each story new to us, write the outbox
        rows `route` decides, in the same transaction. `route=None` records without routing
        (the first scan of a store: nothing old is posted)."""
        stored: list[FileOutcome[StoredArticle]] = [
            FileOutcome(o.path, o.stamp, stored_article(o.article) if o.article else None, o.error)
            for o in outcomes
        ]
        return await self.record_stored(stored, removed, route)

    async def record_stored(
        self,
        outcomes: Sequence[FileOutcome[StoredArticle]],
        removed: Sequence[str] = (),
        route: RouteFn | None = None,
        place_later: bool = False,
    ) -> IngestReport:
        """`record_files` for articles already in the form the database keeps (made where the
        files were parsed). `place_later` (only without `route`: nothing is posted): new
        articles are recorded without a story and returned in `unplaced`, for one
        `place_stories` over a whole first scan instead of a placement per batch."""
        if place_later and route is not None:
            raise ValueError("articles placed later cannot be routed now: they have no story")
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> IngestReport:
            # Removals first: a file renamed within one scan then reads as an edit of its story,
            # not as a duplicate of itself.
            await remove_files(db, removed)
            known = await self._existing_keys(
                db, [o.article.key for o in outcomes if o.article is not None]
            )
            carried = await carriers(db, known)
            taking = Carriers({key: carried.get(key, set()) for key in known})
            duplicates = held = 0
            upserts: list[StoredArticle] = []
            fresh: set[str] = set()
            routed: list[tuple[Article, Subscription]] = []
            for outcome in outcomes:
                stored = outcome.article
                if stored is None:
                    continue
                take = taking.take(stored.key, outcome.path)
                if take is Take.DUPLICATE:
                    # Another file already brought this story: it keeps its record and its
                    # deliveries; this file only joins the index.
                    duplicates += 1
                    continue
                upserts.append(stored)
                if take is Take.UPDATE:
                    continue
                fresh.add(stored.key)
                if route is not None:
                    article = stored.article()
                    routing = route(article)
                    held += int(routing.held_unscored and not routing.targets)
                    routed.extend((article, sub) for sub in routing.targets)
            await index_files(db, outcomes, now)
            await self._upsert_articles(db, upserts, fresh, now)
            later = {key for key in fresh if place_later}
            story_of = await place_articles(
                db, [s.newcomer(now) for s in upserts if s.key not in later], now
            )
            deliveries = await enqueue(
                db, [(article, story_of[article.key], sub) for article, sub in routed], now
            )
            for stored in upserts:
                if stored.key not in fresh:
                    # A changed file (same URL): what was posted of its story is edited to
                    # match.
                    await correct(db, story_of[stored.key], stored.article(), now)
            return IngestReport(
                new_articles=len(fresh),
                updated_articles=len(upserts) - len(fresh),
                duplicates=duplicates,
                bad_files=sum(1 for o in outcomes if o.error is not None),
                removed_files=len(removed),
                deliveries=deliveries,
                held_unscored=held,
                unplaced=tuple(s.newcomer(now) for s in upserts if s.key in later),
            )

        return await self._database.write(body)

    async def place_stories(self, newcomers: Sequence[Newcomer]) -> None:
        """Place in their stories the articles recorded with `place_later`: `newcomers`, and
        any that an interrupted earlier run left without a story."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> None:
            given = {n.key for n in newcomers}
            left: list[Newcomer] = []
            async with db.execute(
                "SELECT key, published_s, title_words, payload FROM articles WHERE story_id IS NULL"
            ) as cursor:
                async for key, published_s, words, payload in cursor:
                    if key not in given:
                        urls = story_urls(article_from_dict(json.loads(payload)))
                        left.append(Newcomer(key, published_s, tuple(words.split()), urls))
            await place_articles(db, [*left, *newcomers], now)

        await self._database.write(body)

    @staticmethod
    async def _existing_keys(db: aiosqlite.Connection, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with db.execute(f"SELECT key FROM articles WHERE key IN ({marks})", chunk) as cur:
                found.update(row[0] for row in await cur.fetchall())
        return found

    @staticmethod
    async def _upsert_articles(
        db: aiosqlite.Connection, articles: Sequence[StoredArticle], fresh: set[str], now: float
    ) -> None:
        """Write the articles with their topics and the candidate words of their titles (the
        index story placement searches). `fresh`: keys new to the database, with no old rows
        to clear."""
        await db.executemany(
            "INSERT INTO articles (key, title, published_at, quality, provider, payload, "
            "first_seen_at, updated_at, published_s, title_words) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET title = excluded.title, "
            "published_at = excluded.published_at, quality = excluded.quality, "
            "provider = excluded.provider, payload = excluded.payload, "
            "updated_at = excluded.updated_at, published_s = excluded.published_s, "
            "title_words = excluded.title_words",
            [
                (
                    a.key,
                    a.title,
                    a.published_at,
                    a.quality,
                    a.provider,
                    a.payload,
                    now,
                    now,
                    a.newcomer(now).published_s,
                    " ".join(a.words),
                )
                for a in articles
            ],
        )
        changed = [(a.key,) for a in articles if a.key not in fresh]
        await db.executemany("DELETE FROM article_topics WHERE article_key = ?", changed)
        await db.executemany(
            "INSERT INTO article_topics (article_key, folded, topic) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(a.key, t.casefold(), t) for a in articles for t in a.topics],
        )

    async def story_of(self, key: str) -> int | None:
        """The story an article (by key) or a URL its story names (related coverage) is in;
        None when the bot has not seen it."""
        rows = await self._database.fetchall(
            "SELECT story_id FROM articles WHERE key = ? UNION ALL "
            "SELECT story_id FROM story_urls WHERE url = ?",
            (key, key),
        )
        found = [r["story_id"] for r in rows if r["story_id"] is not None]
        return int(found[0]) if found else None

    async def story_articles(self, story_id: int) -> list[Article]:
        """Every article of a story, the earliest seen first, each with when it was seen."""
        rows = await self._database.fetchall(
            "SELECT payload FROM articles WHERE story_id = ? ORDER BY first_seen_at, key",
            (story_id,),
        )
        return [article_from_dict(json.loads(r["payload"])) for r in rows]

    async def story_seen(self, story_id: int) -> list[tuple[str, float, float]]:
        """(article key, first seen, last changed) of a story's articles: what changes when
        one joins or is corrected."""
        rows = await self._database.fetchall(
            "SELECT key, first_seen_at, updated_at FROM articles WHERE story_id = ? "
            "ORDER BY first_seen_at, key",
            (story_id,),
        )
        return [(r["key"], r["first_seen_at"], r["updated_at"]) for r in rows]

    async def get_article(self, key: str) -> Article | None:
        rows = await self._database.fetchall("SELECT payload FROM articles WHERE key = ?", (key,))
        return article_from_dict(json.loads(rows[0]["payload"])) if rows else None

    async def recent_articles(
        self,
        topic: str | None,
        min_quality: float | None,
        include_unscored: bool,
        limit: int,
    ) -> list[Article]:
        """Newest first; `topic` case-insensitive; unscored ones only when asked for."""
        return [a for a, _ in await self._matching(topic, min_quality, include_unscored, limit)]

    async def recent_stories(
        self,
        topic: str | None,
        min_quality: float | None,
        include_unscored: bool,
        limit: int,
    ) -> list[Article]:
        """The stories of the most recent matching articles, newest first, one each: its best
        article as the headline and the others as its coverage (so a listing can say how many
        outlets told it)."""
        stories: dict[int, None] = {}  # in order of their newest matching article
        # Enough matching articles to find `limit` distinct stories in all but odd stores.
        matching = await self._matching(topic, min_quality, include_unscored, limit * 10)
        for _, story_id in matching:
            if story_id is not None:
                stories.setdefault(story_id, None)
            if len(stories) >= limit:
                break
        views = []
        for story_id in stories:
            members = await self.story_articles(story_id)
            if not members:
                continue
            best = max(members, key=lambda a: (a.quality is not None, a.quality or 0.0))
            views.append(compose(best, [a for a in members if a.key != best.key]))
        return views

    async def _matching(
        self, topic: str | None, min_quality: float | None, include_unscored: bool, limit: int
    ) -> list[tuple[Article, int | None]]:
        where = []
        params: list[Any] = []
        if topic:
            where.append("key IN (SELECT article_key FROM article_topics WHERE folded = ?)")
            params.append(topic.casefold())
        quality_clause = "quality >= ?" if min_quality is not None else "quality IS NOT NULL"
        if min_quality is not None:
            params.append(min_quality)
        where.append(f"({quality_clause}{' OR quality IS NULL' if include_unscored else ''})")
        params.append(limit)
        rows = await self._database.fetchall(
            f"SELECT payload, story_id FROM articles WHERE {' AND '.join(where)} "
            "ORDER BY published_at DESC NULLS LAST, first_seen_at DESC LIMIT ?",
            params,
        )
        return [(article_from_dict(json.loads(r["payload"])), r["story_id"]) for r in rows]

    async def topic_counts(self) -> list[tuple[str, int]]:
        rows = await self._database.fetchall(
            "SELECT MIN(topic) AS topic, COUNT(*) AS n FROM article_topics "
            "GROUP BY folded ORDER BY n DESC, topic"
        )
        return [(r["topic"], r["n"]) for r in rows]

    async def unscored_articles(self) -> list[Article]:
        rows = await self._database.fetchall("SELECT payload FROM articles WHERE quality IS NULL")
        return [article_from_dict(json.loads(r["payload"])) for r in rows]

    async def article_count(self) -> int:
        rows = await self._database.fetchall("SELECT COUNT(*) AS n FROM articles")
        return int(rows[0]["n"])
