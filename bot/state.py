"""The bot's memory of articles, the store index and subscriptions, on the shared `Database`
(connection, migrations, the one writer). The delivery rows live in `bot.outbox`; routing writes
them in the same transaction as the articles that caused them (docs/reliability.md).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from bot.articles import Article, article_from_dict
from bot.carriers import Carriers, Take
from bot.clock import Clock
from bot.config import POSTGRES_SCHEMES
from bot.database import MIGRATIONS, Database, StateDatabase, StateError
from bot.digest_store import drop_open_digests, reschedule_open_digest
from bot.outbox import Delivery, DeliveryState, Outbox, correct, enqueue
from bot.routing import Routing
from bot.schedule_time import DeliveryMode, QuietHours, format_time_of_day, parse_time_of_day
from bot.store import FileOutcome, FileStamp
from bot.stored_article import StoredArticle, stored_article
from bot.stories import Newcomer, compose, story_urls
from bot.story_store import place_articles
from bot.subscriptions import LateCoverage, Subscription, SubscriptionSource, topics_key

log = logging.getLogger(__name__)

__all__ = ["MIGRATIONS", "Delivery", "DeliveryState", "IngestReport", "State", "StateError"]


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


def _json_list(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def peek_subscription_targets(path: Path) -> list[tuple[str, str]]:
    """(platform, channel) of the stored subscriptions, read-only and without migrating, for
    short commands beside a running bot (`check-config`); none when there is no database."""
    if not path.is_file():
        return []
    # A URI for read-only mode, the path percent-quoted so a `#` or `?` cannot cut it short.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True, timeout=2.0) as conn:
            rows = conn.execute(
                "SELECT platform, channel FROM subscriptions GROUP BY platform, channel "
                "ORDER BY MIN(id)"
            ).fetchall()
    except sqlite3.Error:
        return []
    return [(str(platform), str(channel)) for platform, channel in rows]


class State:
    """The bot's memory. Construct with `await State.open(path, clock)`; close with `aclose()`."""

    def __init__(self, database: StateDatabase, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self.outbox = Outbox(database, clock)

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, where: Path | str, clock: Clock) -> State:
        """`where`: the SQLite file, or a `postgresql://` URL (several workers share one)."""
        if isinstance(where, str) and where.startswith(POSTGRES_SCHEMES):
            from bot.postgres import PostgresDatabase  # asyncpg only when it is used

            return cls(await PostgresDatabase.open(where), clock)
        return cls(await Database.open(Path(where)), clock)

    @property
    def database(self) -> StateDatabase:
        return self._database

    async def aclose(self) -> None:
        await self._database.aclose()

    async def ping(self) -> bool:
        """Readiness: the database answers a query."""
        return await self._database.ping()

    # --- meta ----------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        rows = await self._database.fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._database.write(body)

    async def delete_meta(self, key: str) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute("DELETE FROM meta WHERE key = ?", (key,))

        await self._database.write(body)

    # --- the store index and articles -------------------------------------------------------

    async def load_file_index(self) -> dict[str, FileStamp]:
        rows = await self._database.fetchall("SELECT path, size, mtime_ns FROM files")
        return {r["path"]: FileStamp(r["size"], r["mtime_ns"]) for r in rows}

    async def bad_files(self) -> list[tuple[str, str]]:
        rows = await self._database.fetchall(
            "SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path"
        )
        return [(r["path"], r["error"]) for r in rows]

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
            await db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in removed])
            known = await self._existing_keys(
                db, [o.article.key for o in outcomes if o.article is not None]
            )
            carriers = await self._carriers(db, known)
            taking = Carriers({key: carriers.get(key, set()) for key in known})
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
            # One statement per table for the whole batch: a cold scan records thousands of
            # files, and each statement is a round trip to the database thread.
            await db.executemany(
                "INSERT INTO files (path, size, mtime_ns, article_key, error, checked_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "article_key = excluded.article_key, error = excluded.error, "
                "checked_at = excluded.checked_at",
                [
                    (
                        o.path,
                        o.stamp.size,
                        o.stamp.mtime_ns,
                        o.article.key if o.article else None,
                        o.error,
                        now,
                    )
                    for o in outcomes
                ],
            )
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
                "SELECT key, published_s, title_words, payload FROM articles "
                "WHERE story_id IS NULL"
            ) as cursor:
                async for key, published_s, words, payload in cursor:
                    if key not in given:
                        urls = story_urls(article_from_dict(json.loads(payload)))
                        left.append(Newcomer(key, published_s, tuple(words.split()), urls))
            await place_articles(db, [*left, *newcomers], now)

        await self._database.write(body)

    @staticmethod
    async def _carriers(db: aiosqlite.Connection, keys: Iterable[str]) -> dict[str, set[str]]:
        """The files that carry each of these (known) stories."""
        carriers: dict[str, set[str]] = {}
        listed = list(keys)
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with db.execute(
                f"SELECT article_key, path FROM files WHERE article_key IN ({marks})", chunk
            ) as cur:
                for key, path in await cur.fetchall():
                    carriers.setdefault(key, set()).add(path)
        return carriers

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

    async def late_coverage_of(self, subscription_id: int | None) -> LateCoverage:
        """How this subscription shows late coverage (edit, when it is gone)."""
        if subscription_id is None:
            return LateCoverage.EDIT
        rows = await self._database.fetchall(
            "SELECT late_coverage FROM subscriptions WHERE id = ?", (subscription_id,)
        )
        return LateCoverage(rows[0]["late_coverage"]) if rows else LateCoverage.EDIT

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

    # --- subscriptions -------------------------------------------------------------------------

    @staticmethod
    def _subscription(row: aiosqlite.Row) -> Subscription:
        include = row["include_unscored"]
        quiet = row["quiet_hours"]
        return Subscription(
            id=row["id"],
            platform=row["platform"],
            channel=row["channel"],
            topics=tuple(json.loads(row["topics"])),
            min_quality=row["min_quality"],
            include_unscored=None if include is None else bool(include),
            providers_include=tuple(json.loads(row["providers_include"])),
            providers_exclude=tuple(json.loads(row["providers_exclude"])),
            keywords=tuple(json.loads(row["keywords"])),
            max_age_days=row["max_age_days"],
            late_coverage=LateCoverage(row["late_coverage"]),
            headline_margin=row["headline_margin"],
            mode=DeliveryMode(row["mode"]),
            digest_at=parse_time_of_day(row["digest_at"]),
            timezone=row["timezone"],
            quiet_hours=QuietHours.parse(quiet) if quiet else None,
            breaking_quality=row["breaking_quality"],
            breaking_outlets=row["breaking_outlets"],
            mention=row["mention"],
            backfill=row["backfill"],
            source=SubscriptionSource(row["source"]),
            created_at=row["created_at"],
            parked_reason=row["parked_reason"],
            parked_for=row["parked_for"],
        )

    async def subscriptions(
        self, platform: str | None = None, channel: str | None = None
    ) -> list[Subscription]:
        where, params = [], []
        if platform is not None:
            where.append("platform = ?")
            params.append(platform)
        if channel is not None:
            where.append("channel = ?")
            params.append(channel)
        sql = "SELECT * FROM subscriptions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._database.fetchall(sql + " ORDER BY id", params)
        return [self._subscription(r) for r in rows]

    async def backfill_ran(self, platform: str, channel: str, topics: tuple[str, ...]) -> bool:
        """Whether these topics in this channel had their backfill already (it runs once)."""
        rows = await self._database.fetchall(
            "SELECT 1 FROM backfills WHERE platform = ? AND channel = ? AND topics_key = ?",
            (platform, channel, topics_key(topics)),
        )
        return bool(rows)

    async def subscription(self, sub_id: int) -> Subscription | None:
        rows = await self._database.fetchall("SELECT * FROM subscriptions WHERE id = ?", (sub_id,))
        return self._subscription(rows[0]) if rows else None

    async def add_subscription(
        self, sub: Subscription, route: Callable[[Subscription, Article], bool] | None = None
    ) -> tuple[Subscription, bool]:
        """Insert `sub` (its id is ignored) or update the one with the same platform, channel
        and topics. Returns the stored subscription and whether it is new. A new one backfills
        up to `sub.backfill` of the most recent articles that `route` accepts, unless these
        topics in this channel had their backfill before (`backfill_ran`)."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> tuple[Subscription, bool]:
            key = topics_key(sub.topics)
            async with db.execute(
                "SELECT id FROM subscriptions WHERE platform = ? AND channel = ? AND "
                "topics_key = ?",
                (sub.platform, sub.channel, key),
            ) as cur:
                existing = await cur.fetchone()
            values = (
                _json_list(sub.topics),
                sub.min_quality,
                None if sub.include_unscored is None else int(sub.include_unscored),
                _json_list(sub.providers_include),
                _json_list(sub.providers_exclude),
                _json_list(sub.keywords),
                sub.max_age_days,
                sub.backfill,
                str(sub.late_coverage),
                sub.headline_margin,
                str(sub.mode),
                format_time_of_day(sub.digest_at),
                sub.timezone,
                None if sub.quiet_hours is None else str(sub.quiet_hours),
                sub.breaking_quality,
                sub.breaking_outlets,
                sub.mention,
            )
            if existing is not None:
                await db.execute(
                    "UPDATE subscriptions SET topics = ?, min_quality = ?, include_unscored = ?, "
                    "providers_include = ?, providers_exclude = ?, keywords = ?, "
                    "max_age_days = ?, backfill = ?, late_coverage = ?, headline_margin = ?, "
                    "mode = ?, digest_at = ?, timezone = ?, quiet_hours = ?, "
                    "breaking_quality = ?, breaking_outlets = ?, mention = ? "
                    "WHERE id = ?",
                    (*values, existing[0]),
                )
                sub_id, created = int(existing[0]), False
            else:
                cursor = await db.execute(
                    "INSERT INTO subscriptions (topics, min_quality, include_unscored, "
                    "providers_include, providers_exclude, keywords, max_age_days, backfill, "
                    "late_coverage, headline_margin, mode, digest_at, timezone, quiet_hours, "
                    "breaking_quality, breaking_outlets, mention, "
                    "platform, channel, topics_key, source, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id",
                    (*values, sub.platform, sub.channel, key, sub.source, now),
                )
                new_row = await cursor.fetchone()
                assert new_row is not None
                sub_id, created = int(new_row[0]), True
            async with db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)) as cur:
                row = await cur.fetchone()
            assert row is not None
            stored = self._subscription(row)
            if not created:
                # A changed digest time or zone: the digest now collecting goes at the new one.
                await reschedule_open_digest(db, stored, now)
            if created and stored.backfill > 0 and route is not None:
                # Once per channel and topics, ever (a row says it ran, even if it took none).
                cursor = await db.execute(
                    "INSERT INTO backfills (platform, channel, topics_key, ran_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (stored.platform, stored.channel, key, now),
                )
                if cursor.rowcount:
                    await self._backfill(db, stored, route, now)
            return stored, created

        return await self._database.write(body)

    async def _backfill(
        self,
        db: aiosqlite.Connection,
        sub: Subscription,
        route: Callable[[Subscription, Article], bool],
        now: float,
    ) -> None:
        taken = 0
        async with db.execute(
            "SELECT payload, story_id FROM articles "
            "ORDER BY published_at DESC NULLS LAST, first_seen_at DESC"
        ) as cursor:
            async for row in cursor:
                article = article_from_dict(json.loads(row[0]))
                if route(sub, article):
                    # One post per story: a second article of a story already taken adds none.
                    taken += await enqueue(db, [(article, row[1], sub)], now, late=False)
                    if taken >= sub.backfill:
                        break

    async def remove_subscriptions(
        self, platform: str, channel: str, topic: str | None = None
    ) -> int:
        """Remove this channel's subscriptions: those carrying `topic`, or all of them.
        A subscription to several topics loses only `topic`. Those from the config file are
        left alone: the file owns them. Returns how many changed."""

        async def body(db: aiosqlite.Connection) -> int:
            async with db.execute(
                "SELECT * FROM subscriptions WHERE platform = ? AND channel = ?",
                (platform, channel),
            ) as cur:
                rows = list(await cur.fetchall())
            changed = 0
            for row in rows:
                sub = self._subscription(row)
                if sub.source is SubscriptionSource.CONFIG:
                    continue
                if topic is None:
                    remaining: tuple[str, ...] = ()
                else:
                    remaining = tuple(t for t in sub.topics if t.casefold() != topic.casefold())
                    if remaining == sub.topics:
                        continue
                if remaining:
                    key = topics_key(remaining)
                    async with db.execute(
                        "SELECT 1 FROM subscriptions WHERE platform = ? AND channel = ? AND "
                        "topics_key = ? AND id != ?",
                        (platform, channel, key, sub.id),
                    ) as cur:
                        twin = await cur.fetchone()
                    if twin is not None:
                        # What is left equals another subscription of this channel: keep that
                        # one (and its settings) rather than overwrite it.
                        await self._delete_subscription(db, sub.id)
                    else:
                        await db.execute(
                            "UPDATE subscriptions SET topics = ?, topics_key = ? WHERE id = ?",
                            (_json_list(remaining), key, sub.id),
                        )
                else:
                    await self._delete_subscription(db, sub.id)
                changed += 1
            return changed

        return await self._database.write(body)

    async def _delete_subscription(self, db: aiosqlite.Connection, sub_id: int) -> bool:
        """Delete a subscription; when its channel has no other subscription left, its posts
        not yet sent are dropped too (nobody there wants them any more)."""
        async with db.execute(
            "SELECT platform, channel FROM subscriptions WHERE id = ?", (sub_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return False
        await db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
        # Its digest still collecting is nobody's now (one that went out stays recorded).
        await drop_open_digests(db, sub_id)
        async with db.execute(
            "SELECT 1 FROM subscriptions WHERE platform = ? AND channel = ?", (row[0], row[1])
        ) as cur:
            others = await cur.fetchone()
        if others is None:
            await db.execute(
                "DELETE FROM deliveries WHERE platform = ? AND channel = ? AND state IN (?, ?)",
                (row[0], row[1], DeliveryState.PENDING, DeliveryState.PARKED),
            )
        return True

    async def remove_subscription_by_id(self, sub_id: int, *, config_too: bool = False) -> bool:
        """Remove one subscription; one from the config file only with `config_too` (the sync
        with the file), since the file owns it."""

        async def body(db: aiosqlite.Connection) -> bool:
            if not config_too:
                async with db.execute(
                    "SELECT source FROM subscriptions WHERE id = ?", (sub_id,)
                ) as cur:
                    row = await cur.fetchone()
                if row is not None and row[0] == SubscriptionSource.CONFIG:
                    return False
            return await self._delete_subscription(db, sub_id)

        return await self._database.write(body)

    async def sync_config_subscriptions(
        self,
        wanted: Sequence[Subscription],
        route: Callable[[Subscription, Article], bool],
    ) -> list[Subscription]:
        """Make the config-sourced subscriptions match `wanted`; returns the new ones."""
        created = []
        keep: set[int] = set()
        for sub in wanted:
            stored, is_new = await self.add_subscription(sub, route)
            keep.add(stored.id)
            if is_new:
                created.append(stored)
        stale = [
            s.id
            for s in await self.subscriptions()
            if s.source is SubscriptionSource.CONFIG and s.id not in keep
        ]
        for sub_id in stale:
            await self.remove_subscription_by_id(sub_id, config_too=True)
        return created

    async def park_channel(
        self, platform: str, channel: str, reason: str, cause: str | None = None
    ) -> int:
        """The platform refused this channel for good (or, `cause`, the secret posting there
        needs is not set): park its subscriptions and its undelivered rows, so nothing more is
        sent there until someone fixes it."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE subscriptions SET parked_reason = ?, parked_at = ?, parked_for = ? "
                "WHERE platform = ? AND channel = ?",
                (reason, now, cause, platform, channel),
            )
            await db.execute(
                "UPDATE deliveries SET state = ?, last_error = ?, updated_at = ? "
                "WHERE platform = ? AND channel = ? AND state IN (?, ?)",
                (DeliveryState.PARKED, reason, now, platform, channel, DeliveryState.PENDING,
                 DeliveryState.SENDING),
            )
            return cursor.rowcount

        return await self._database.write(body)

    async def unpark_channel(self, platform: str, channel: str) -> int:
        """Someone fixed the channel (re-subscribed): resume it, parked posts included."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE subscriptions SET parked_reason = NULL, parked_at = NULL, "
                "parked_for = NULL WHERE platform = ? AND channel = ? "
                "AND parked_reason IS NOT NULL",
                (platform, channel),
            )
            await db.execute(
                # A digest, or a post held by quiet hours, still waits for its time.
                "UPDATE deliveries SET state = ?, next_attempt_at = CASE WHEN kind = 'digest' "
                "OR (held_by IS NOT NULL AND attempts = 0) THEN CASE WHEN next_attempt_at > ? "
                "THEN next_attempt_at ELSE ? END ELSE ? END, "
                "updated_at = ? WHERE platform = ? AND channel = ? AND state = ?",
                (
                    DeliveryState.PENDING, now, now, now, now, platform, channel,
                    DeliveryState.PARKED,
                ),
            )
            return cursor.rowcount

        return await self._database.write(body)
