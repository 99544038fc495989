"""SQLite state through aiosqlite: migrations, articles, the store index, subscriptions, and the
delivery outbox.

One connection, one writer: every write runs in a `BEGIN IMMEDIATE` transaction behind an
asyncio lock, so routing and the outbox rows it creates commit together (docs/reliability.md).
WAL lets readers (health checks, `newsbot subscriptions list`) run beside the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.articles import Article, article_from_dict, article_to_dict
from bot.clock import Clock
from bot.routing import Routing
from bot.store import FileOutcome, FileStamp
from bot.subscriptions import Subscription, SubscriptionSource, topics_key

log = logging.getLogger(__name__)
T = TypeVar("T")

# Each entry moves the schema one version up; `PRAGMA user_version` records where a database is.
# SQLite DDL is transactional, so an interrupted migration leaves the previous version intact.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE articles (
        key TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        published_at TEXT,
        quality REAL,
        provider TEXT NOT NULL,
        payload TEXT NOT NULL,
        first_seen_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX articles_recent ON articles (published_at);
    CREATE TABLE article_topics (
        article_key TEXT NOT NULL REFERENCES articles (key) ON DELETE CASCADE,
        folded TEXT NOT NULL,
        topic TEXT NOT NULL,
        PRIMARY KEY (article_key, folded)
    ) WITHOUT ROWID;
    CREATE INDEX article_topics_by_topic ON article_topics (folded);
    CREATE TABLE files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        article_key TEXT,
        error TEXT,
        checked_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        topics TEXT NOT NULL,
        topics_key TEXT NOT NULL,
        min_quality REAL,
        include_unscored INTEGER,
        providers_include TEXT NOT NULL,
        providers_exclude TEXT NOT NULL,
        keywords TEXT NOT NULL,
        max_age_days REAL,
        backfill INTEGER NOT NULL,
        source TEXT NOT NULL,
        created_at REAL NOT NULL,
        parked_reason TEXT,
        parked_at REAL,
        UNIQUE (platform, channel, topics_key)
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        article_key TEXT NOT NULL REFERENCES articles (key),
        subscription_id INTEGER,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        message_ref TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (platform, channel, article_key)
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
    """,
    # Which files carry a story: tells a second file of a known story (a duplicate) from an
    # edit of the file that brought it, without scanning the whole index.
    """
    CREATE INDEX files_by_article ON files (article_key);
    """,
    # A row whose last attempt may have reached the platform without an answer: before it is
    # sent again, the platform is asked whether the post is already there.
    """
    ALTER TABLE deliveries ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
    """,
)

# How long to keep trying when another process holds the write lock.
_LOCKED_RETRIES = 8


class StateError(RuntimeError):
    """The database cannot be used as it is; the message says why and what to do."""


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # committed before the send: found at start-up, it was interrupted
    SENT = "sent"
    FAILED = "failed"  # the platform rejected the payload itself; never retried
    PARKED = "parked"  # the channel refused us for good; waits for the subscription to return


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    platform: str
    channel: str
    article_key: str
    subscription_id: int | None
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    message_ref: str | None
    uncertain: bool = False  # the last attempt may have posted: look before sending again

    @property
    def key(self) -> str:
        """The delivery's identity, stable across retries and restarts."""
        return f"{self.platform}:{self.channel}:{self.article_key}"


@dataclass(frozen=True, slots=True)
class IngestReport:
    new_articles: int = 0
    updated_articles: int = 0
    duplicates: int = 0  # files whose story another file already brought
    bad_files: int = 0
    removed_files: int = 0
    deliveries: int = 0
    held_unscored: int = 0


RouteFn = Callable[[Article], Routing]


def _json_list(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _iso_utc(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


class State:
    """The bot's memory. Construct with `await State.open(path, clock)`; close with `aclose()`."""

    def __init__(self, db: aiosqlite.Connection, clock: Clock, path: Path | None = None) -> None:
        self._db = db
        self._path = path
        self._clock = clock
        self._write_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, clock: Clock) -> State:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None, timeout=5.0)
        try:
            db.row_factory = aiosqlite.Row
            try:
                await db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    raise
                raise StateError(
                    f"{path} is not a newsbot database (SQLite says: {exc}); set "
                    "database.path to another file, or move this one away"
                ) from None
            # FULL: a delivery marked `sent` must stay sent through a power cut.
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            state = cls(db, clock, path)
            await state._migrate()
        except BaseException:
            await db.close()
            raise
        return state

    async def aclose(self) -> None:
        await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StateError(
                f"the database {self._path} is at schema version {version}, newer than this "
                f"newsbot ({len(MIGRATIONS)}); upgrade newsbot or use another database file"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("migrating the database to schema version %d", number)

            async def apply(
                db: aiosqlite.Connection, script: str = script, n: int = number
            ) -> None:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {n}")

            await self._write(apply)

    async def _write(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `body` in one BEGIN IMMEDIATE transaction; wait out another process's lock."""
        async with self._write_lock:
            delay_s = 0.05
            for attempt in range(_LOCKED_RETRIES):
                try:
                    await self._db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == _LOCKED_RETRIES - 1:
                        raise
                    log.warning("the database is locked by another process; retrying")
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, 2.0)
                    continue
                try:
                    result = await body(self._db)
                    await self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        await self._db.execute("ROLLBACK")
                    raise
                return result
        raise AssertionError("unreachable")

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def ping(self) -> bool:
        """Readiness: the database answers a query."""
        try:
            await self._fetchall("SELECT 1")
        except Exception:
            return False
        return True

    # --- meta ----------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._write(body)

    async def delete_meta(self, key: str) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute("DELETE FROM meta WHERE key = ?", (key,))

        await self._write(body)

    # --- the store index and articles -------------------------------------------------------

    async def load_file_index(self) -> dict[str, FileStamp]:
        rows = await self._fetchall("SELECT path, size, mtime_ns FROM files")
        return {r["path"]: FileStamp(r["size"], r["mtime_ns"]) for r in rows}

    async def bad_files(self) -> list[tuple[str, str]]:
        rows = await self._fetchall(
            "SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path"
        )
        return [(r["path"], r["error"]) for r in rows]

    async def record_files(
        self,
        outcomes: Sequence[FileOutcome],
        removed: Sequence[str] = (),
        route: RouteFn | None = None,
    ) -> IngestReport:
        """Record parsed files and their articles; for each story new to us, write the outbox
        rows `route` decides, in the same transaction. `route=None` records without routing
        (the first scan of a store: nothing old is posted)."""
        now = self._clock.time()
        articles = [o.article for o in outcomes if o.article is not None]

        async def body(db: aiosqlite.Connection) -> IngestReport:
            # Removals first: a file renamed within one scan then reads as an edit of its story,
            # not as a duplicate of itself.
            await db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in removed])
            known = await self._existing_keys(db, [a.key for a in articles])
            carriers = await self._carriers(db, known)
            counts = {"new": 0, "updated": 0, "dup": 0, "held": 0}
            seen_now: set[str] = set()
            upserts: list[Article] = []
            outbox: list[tuple[str, Subscription]] = []
            for outcome in outcomes:
                article = outcome.article
                if article is None:
                    continue
                others = carriers.get(article.key, set())
                if article.key in seen_now or (
                    article.key in known and outcome.path not in others and others
                ):
                    # Another file already brought this story: it keeps its record and its
                    # deliveries; this file only joins the index.
                    counts["dup"] += 1
                    continue
                seen_now.add(article.key)
                upserts.append(article)
                if article.key in known:
                    counts["updated"] += 1
                    continue
                counts["new"] += 1
                if route is not None:
                    routing = route(article)
                    counts["held"] += int(routing.held_unscored and not routing.targets)
                    outbox.extend((article.key, sub) for sub in routing.targets)
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
            await self._upsert_articles(db, upserts, now)
            deliveries = await self._enqueue(db, outbox, now)
            return IngestReport(
                new_articles=counts["new"],
                updated_articles=counts["updated"],
                duplicates=counts["dup"],
                bad_files=sum(1 for o in outcomes if o.error is not None),
                removed_files=len(removed),
                deliveries=deliveries,
                held_unscored=counts["held"],
            )

        return await self._write(body)

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
        db: aiosqlite.Connection, articles: Sequence[Article], now: float
    ) -> None:
        await db.executemany(
            "INSERT INTO articles (key, title, published_at, quality, provider, payload, "
            "first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET title = excluded.title, "
            "published_at = excluded.published_at, quality = excluded.quality, "
            "provider = excluded.provider, payload = excluded.payload, "
            "updated_at = excluded.updated_at",
            [
                (
                    a.key,
                    a.title,
                    _iso_utc(a.published_at),
                    a.quality,
                    a.provider.name,
                    json.dumps(article_to_dict(a), ensure_ascii=False),
                    now,
                    now,
                )
                for a in articles
            ],
        )
        await db.executemany(
            "DELETE FROM article_topics WHERE article_key = ?", [(a.key,) for a in articles]
        )
        await db.executemany(
            "INSERT OR IGNORE INTO article_topics (article_key, folded, topic) VALUES (?, ?, ?)",
            [(a.key, t.casefold(), t) for a in articles for t in a.topics],
        )

    @staticmethod
    async def _enqueue(
        db: aiosqlite.Connection, rows: Sequence[tuple[str, Subscription]], now: float
    ) -> int:
        """Outbox rows for (article key, subscription) pairs; returns how many are new (a
        channel already due the story keeps its one row)."""
        cursor = await db.executemany(
            "INSERT OR IGNORE INTO deliveries (platform, channel, article_key, "
            "subscription_id, state, attempts, next_attempt_at, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
            [
                (sub.platform, sub.channel, key, sub.id, DeliveryState.PENDING, now, now, now)
                for key, sub in rows
            ],
        )
        return max(cursor.rowcount, 0)

    async def get_article(self, key: str) -> Article | None:
        rows = await self._fetchall("SELECT payload FROM articles WHERE key = ?", (key,))
        return article_from_dict(json.loads(rows[0]["payload"])) if rows else None

    async def recent_articles(
        self,
        topic: str | None,
        min_quality: float | None,
        include_unscored: bool,
        limit: int,
    ) -> list[Article]:
        """Newest first; `topic` case-insensitive; unscored ones only when asked for."""
        where = []
        params: list[Any] = []
        if topic:
            where.append(
                "key IN (SELECT article_key FROM article_topics WHERE folded = ?)"
            )
            params.append(topic.casefold())
        quality_clause = "quality >= ?" if min_quality is not None else "quality IS NOT NULL"
        if min_quality is not None:
            params.append(min_quality)
        where.append(f"({quality_clause}{' OR quality IS NULL' if include_unscored else ''})")
        params.append(limit)
        rows = await self._fetchall(
            f"SELECT payload FROM articles WHERE {' AND '.join(where)} "
            "ORDER BY published_at DESC, first_seen_at DESC LIMIT ?",
            params,
        )
        return [article_from_dict(json.loads(r["payload"])) for r in rows]

    async def topic_counts(self) -> list[tuple[str, int]]:
        rows = await self._fetchall(
            "SELECT MIN(topic) AS topic, COUNT(*) AS n FROM article_topics "
            "GROUP BY folded ORDER BY n DESC, topic"
        )
        return [(r["topic"], r["n"]) for r in rows]

    async def unscored_articles(self) -> list[Article]:
        rows = await self._fetchall("SELECT payload FROM articles WHERE quality IS NULL")
        return [article_from_dict(json.loads(r["payload"])) for r in rows]

    async def article_count(self) -> int:
        rows = await self._fetchall("SELECT COUNT(*) AS n FROM articles")
        return int(rows[0]["n"])

    # --- subscriptions -------------------------------------------------------------------------

    @staticmethod
    def _subscription(row: aiosqlite.Row) -> Subscription:
        include = row["include_unscored"]
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
            backfill=row["backfill"],
            source=SubscriptionSource(row["source"]),
            created_at=row["created_at"],
            parked_reason=row["parked_reason"],
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
        rows = await self._fetchall(sql + " ORDER BY id", params)
        return [self._subscription(r) for r in rows]

    async def add_subscription(
        self, sub: Subscription, route: Callable[[Subscription, Article], bool] | None = None
    ) -> tuple[Subscription, bool]:
        """Insert `sub` (its id is ignored) or update the one with the same platform, channel
        and topics. Returns the stored subscription and whether it is new. A new one backfills
        up to `sub.backfill` of the most recent articles that `route` accepts."""
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
            )
            if existing is not None:
                await db.execute(
                    "UPDATE subscriptions SET topics = ?, min_quality = ?, include_unscored = ?, "
                    "providers_include = ?, providers_exclude = ?, keywords = ?, "
                    "max_age_days = ?, backfill = ? WHERE id = ?",
                    (*values, existing[0]),
                )
                sub_id, created = int(existing[0]), False
            else:
                cursor = await db.execute(
                    "INSERT INTO subscriptions (topics, min_quality, include_unscored, "
                    "providers_include, providers_exclude, keywords, max_age_days, backfill, "
                    "platform, channel, topics_key, source, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, sub.platform, sub.channel, key, sub.source, now),
                )
                sub_id, created = int(cursor.lastrowid or 0), True
            async with db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)) as cur:
                row = await cur.fetchone()
            assert row is not None
            stored = self._subscription(row)
            if created and stored.backfill > 0 and route is not None:
                await self._backfill(db, stored, route, now)
            return stored, created

        return await self._write(body)

    async def _backfill(
        self,
        db: aiosqlite.Connection,
        sub: Subscription,
        route: Callable[[Subscription, Article], bool],
        now: float,
    ) -> None:
        taken = 0
        async with db.execute(
            "SELECT payload FROM articles ORDER BY published_at DESC, first_seen_at DESC"
        ) as cursor:
            async for row in cursor:
                article = article_from_dict(json.loads(row[0]))
                if route(sub, article):
                    taken += await self._enqueue(db, [(article.key, sub)], now)
                    if taken >= sub.backfill:
                        break

    async def remove_subscriptions(
        self, platform: str, channel: str, topic: str | None = None
    ) -> int:
        """Remove this channel's subscriptions: those carrying `topic`, or all of them.
        A subscription to several topics loses only `topic`. Returns how many changed."""

        async def body(db: aiosqlite.Connection) -> int:
            async with db.execute(
                "SELECT * FROM subscriptions WHERE platform = ? AND channel = ?",
                (platform, channel),
            ) as cur:
                rows = list(await cur.fetchall())
            changed = 0
            for row in rows:
                sub = self._subscription(row)
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

        return await self._write(body)

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

    async def remove_subscription_by_id(self, sub_id: int) -> bool:
        async def body(db: aiosqlite.Connection) -> bool:
            return await self._delete_subscription(db, sub_id)

        return await self._write(body)

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
            await self.remove_subscription_by_id(sub_id)
        return created

    async def park_channel(self, platform: str, channel: str, reason: str) -> int:
        """The platform refused this channel for good: park its subscriptions and its
        undelivered rows, so nothing more is sent there until someone fixes it."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE subscriptions SET parked_reason = ?, parked_at = ? "
                "WHERE platform = ? AND channel = ?",
                (reason, now, platform, channel),
            )
            await db.execute(
                "UPDATE deliveries SET state = ?, last_error = ?, updated_at = ? "
                "WHERE platform = ? AND channel = ? AND state IN (?, ?)",
                (DeliveryState.PARKED, reason, now, platform, channel, DeliveryState.PENDING,
                 DeliveryState.SENDING),
            )
            return cursor.rowcount

        return await self._write(body)

    async def unpark_channel(self, platform: str, channel: str) -> int:
        """Someone fixed the channel (re-subscribed): resume it, parked posts included."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE subscriptions SET parked_reason = NULL, parked_at = NULL "
                "WHERE platform = ? AND channel = ? AND parked_reason IS NOT NULL",
                (platform, channel),
            )
            await db.execute(
                "UPDATE deliveries SET state = ?, next_attempt_at = ?, updated_at = ? "
                "WHERE platform = ? AND channel = ? AND state = ?",
                (DeliveryState.PENDING, now, now, platform, channel, DeliveryState.PARKED),
            )
            return cursor.rowcount

        return await self._write(body)

    # --- the outbox ----------------------------------------------------------------------------

    @staticmethod
    def _delivery(row: aiosqlite.Row) -> Delivery:
        return Delivery(
            id=row["id"],
            platform=row["platform"],
            channel=row["channel"],
            article_key=row["article_key"],
            subscription_id=row["subscription_id"],
            state=DeliveryState(row["state"]),
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            message_ref=row["message_ref"],
            uncertain=bool(row["uncertain"]),
        )

    async def due_deliveries(
        self, now: float, platforms: Sequence[str], limit: int = 100
    ) -> list[Delivery]:
        marks = ",".join("?" * len(platforms))
        rows = await self._fetchall(
            f"SELECT * FROM deliveries WHERE state = ? AND next_attempt_at <= ? "
            f"AND platform IN ({marks}) ORDER BY next_attempt_at, id LIMIT ?",
            (DeliveryState.PENDING, now, *platforms, limit),
        )
        return [self._delivery(r) for r in rows]

    async def interrupted_deliveries(self) -> list[Delivery]:
        rows = await self._fetchall(
            "SELECT * FROM deliveries WHERE state = ? ORDER BY id", (DeliveryState.SENDING,)
        )
        return [self._delivery(r) for r in rows]

    async def next_due_at(self, platforms: Sequence[str]) -> float | None:
        marks = ",".join("?" * len(platforms))
        rows = await self._fetchall(
            "SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE state = ? "
            f"AND platform IN ({marks})",
            (DeliveryState.PENDING, *platforms),
        )
        value = rows[0]["t"]
        return None if value is None else float(value)

    async def delivery_counts(self) -> dict[tuple[str, DeliveryState], int]:
        rows = await self._fetchall(
            "SELECT platform, state, COUNT(*) AS n FROM deliveries GROUP BY platform, state"
        )
        return {(r["platform"], DeliveryState(r["state"])): r["n"] for r in rows}

    async def deliveries_for(self, platform: str, channel: str) -> list[Delivery]:
        rows = await self._fetchall(
            "SELECT * FROM deliveries WHERE platform = ? AND channel = ? ORDER BY id",
            (platform, channel),
        )
        return [self._delivery(r) for r in rows]

    async def _update_delivery(self, delivery_id: int, sql: str, params: Sequence[Any]) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute(
                f"UPDATE deliveries SET {sql}, updated_at = ? WHERE id = ?",
                (*params, self._clock.time(), delivery_id),
            )

        await self._write(body)

    async def mark_sending(self, delivery_id: int) -> None:
        await self._update_delivery(
            delivery_id, "state = ?, attempts = attempts + 1", (DeliveryState.SENDING,)
        )

    async def mark_sent(self, delivery_id: int, message_ref: str | None) -> None:
        await self._update_delivery(
            delivery_id,
            "state = ?, message_ref = ?, last_error = NULL, uncertain = 0",
            (DeliveryState.SENT, message_ref),
        )

    async def mark_retry(
        self, delivery_id: int, next_attempt_at: float, error: str, uncertain: bool = False
    ) -> None:
        """Back to pending. `uncertain`: the attempt may have posted; once set, it stays set
        until the row is sent (a later, clean failure does not undo an earlier doubt)."""
        await self._update_delivery(
            delivery_id,
            "state = ?, next_attempt_at = ?, last_error = ?, uncertain = MAX(uncertain, ?)",
            (DeliveryState.PENDING, next_attempt_at, error, int(uncertain)),
        )

    async def hold_channel(self, platform: str, channel: str, until: float) -> int:
        """A rate limit covers the whole channel: no pending row of it is due before `until`."""

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? "
                "WHERE platform = ? AND channel = ? AND state = ? AND next_attempt_at < ?",
                (until, self._clock.time(), platform, channel, DeliveryState.PENDING, until),
            )
            return cursor.rowcount

        return await self._write(body)

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        await self._update_delivery(
            delivery_id, "state = ?, last_error = ?", (DeliveryState.FAILED, error)
        )
