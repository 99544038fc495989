"""The SQLite database through aiosqlite: the connection, the schema's migrations, and the one
write path (`write`: a `BEGIN IMMEDIATE` transaction behind an asyncio lock).

One connection, one writer: routing and the outbox rows it creates commit together
(docs/reliability.md). WAL lets readers (health checks, `newsbot status`) run beside the worker.
The repositories (`State`, `Outbox`) share one `Database`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from bot.sql import Dialect

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
    # The scheduler's queues: each channel's rows oldest story first (`sort_at`: the article's
    # published time, else when it was queued), and which channels have work.
    """
    ALTER TABLE deliveries ADD COLUMN sort_at REAL NOT NULL DEFAULT 0;
    UPDATE deliveries SET sort_at = COALESCE(
        (SELECT (julianday(a.published_at) - 2440587.5) * 86400.0 FROM articles a
         WHERE a.key = deliveries.article_key),
        created_at);
    CREATE INDEX deliveries_queue ON deliveries (platform, channel, state, sort_at, id);
    CREATE INDEX deliveries_by_channel_due
        ON deliveries (state, platform, channel, next_attempt_at);
    """,
    # A subscription parked because a secret its target needs is not set names that variable:
    # the next start with the secret resumes it.
    """
    ALTER TABLE subscriptions ADD COLUMN parked_for TEXT;
    """,
    # A backfill runs once per (platform, channel, topics), ever: a subscription removed and
    # made again does not post old articles a second time. Those made before already ran theirs.
    """
    CREATE TABLE backfills (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        topics_key TEXT NOT NULL,
        ran_at REAL NOT NULL,
        PRIMARY KEY (platform, channel, topics_key)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO backfills (platform, channel, topics_key, ran_at)
        SELECT platform, channel, topics_key, created_at FROM subscriptions WHERE backfill > 0;
    """,
    # Stories: articles that tell the same news (bot/stories.py) share a story, and a channel
    # gets one post per story, edited (or answered in its thread) as coverage arrives. Every
    # article known so far starts as a story of its own (its words and related URLs are filled
    # in by the data step below). The outbox is rebuilt: a row is a post, an edit of a post, a
    # reply in a post's thread, or the retraction of a post whose story joined an older one
    # that the channel also has; a channel has one post per story.
    """
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        merged_into INTEGER
    );
    ALTER TABLE articles ADD COLUMN story_id INTEGER;
    ALTER TABLE articles ADD COLUMN published_s REAL;
    ALTER TABLE articles ADD COLUMN title_words TEXT NOT NULL DEFAULT '';
    INSERT INTO stories (id, created_at) SELECT rowid, first_seen_at FROM articles;
    UPDATE articles SET story_id = rowid,
        published_s = COALESCE((julianday(published_at) - 2440587.5) * 86400.0, first_seen_at);
    CREATE INDEX articles_by_story ON articles (story_id);
    CREATE INDEX articles_by_time ON articles (published_s);
    CREATE TABLE story_urls (url TEXT PRIMARY KEY, story_id INTEGER NOT NULL) WITHOUT ROWID;
    CREATE INDEX story_urls_by_story ON story_urls (story_id);
    CREATE TABLE title_words (
        word TEXT NOT NULL,
        article_key TEXT NOT NULL,
        PRIMARY KEY (word, article_key)
    ) WITHOUT ROWID;
    CREATE INDEX title_words_by_article ON title_words (article_key);
    CREATE TABLE deliveries_v7 (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        story_id INTEGER NOT NULL,
        kind TEXT NOT NULL DEFAULT 'post',
        article_key TEXT NOT NULL REFERENCES articles (key),
        post_id INTEGER,
        subscription_id INTEGER,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        message_ref TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        uncertain INTEGER NOT NULL DEFAULT 0,
        sort_at REAL NOT NULL DEFAULT 0,
        headline_key TEXT,
        shown_hash TEXT,
        thread_ref TEXT,
        posted_at REAL
    );
    INSERT INTO deliveries_v7 (id, platform, channel, story_id, kind, article_key,
        subscription_id, state, attempts, next_attempt_at, last_error, message_ref, created_at,
        updated_at, uncertain, sort_at, headline_key)
        SELECT d.id, d.platform, d.channel, a.story_id, 'post', d.article_key,
            d.subscription_id, d.state, d.attempts, d.next_attempt_at, d.last_error,
            d.message_ref, d.created_at, d.updated_at, d.uncertain, d.sort_at, d.article_key
        FROM deliveries d JOIN articles a ON a.key = d.article_key;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_v7 RENAME TO deliveries;
    CREATE UNIQUE INDEX deliveries_one_post ON deliveries (platform, channel, story_id)
        WHERE kind = 'post';
    CREATE UNIQUE INDEX deliveries_one_waiting_edit ON deliveries (post_id)
        WHERE kind = 'edit' AND state = 'pending';
    CREATE UNIQUE INDEX deliveries_one_reply ON deliveries (post_id, article_key)
        WHERE kind = 'reply';
    CREATE UNIQUE INDEX deliveries_one_retract ON deliveries (post_id) WHERE kind = 'retract';
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
    CREATE INDEX deliveries_queue ON deliveries (platform, channel, state, sort_at, id);
    CREATE INDEX deliveries_by_channel_due
        ON deliveries (state, platform, channel, next_attempt_at);
    CREATE INDEX deliveries_by_story ON deliveries (story_id, kind);
    UPDATE deliveries SET posted_at = updated_at WHERE state = 'sent';
    ALTER TABLE subscriptions ADD COLUMN late_coverage TEXT NOT NULL DEFAULT 'edit';
    ALTER TABLE subscriptions ADD COLUMN headline_margin REAL NOT NULL DEFAULT 20;
    """,
    # Digests, quiet hours and breaking mentions (bot/schedule_time.py, bot/breaking.py). A
    # digest subscription's stories are collected (`digest_items`, one per subscription and
    # story, ever) under the outbox row of kind 'digest' that will list them: one row per
    # subscription and digest time (`period_at`), due at that time, so the scheduler sends it
    # like any row and a digest missed while the bot was down goes once when it is back. A
    # post held by quiet hours is due when they end (`held_by` says why it waits); a breaking
    # one carries the id it pings (`mention`).
    """
    ALTER TABLE subscriptions ADD COLUMN mode TEXT NOT NULL DEFAULT 'instant';
    ALTER TABLE subscriptions ADD COLUMN digest_at TEXT NOT NULL DEFAULT '08:00';
    ALTER TABLE subscriptions ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
    ALTER TABLE subscriptions ADD COLUMN quiet_hours TEXT;
    ALTER TABLE subscriptions ADD COLUMN breaking_quality REAL NOT NULL DEFAULT 120;
    ALTER TABLE subscriptions ADD COLUMN breaking_outlets INTEGER NOT NULL DEFAULT 4;
    ALTER TABLE subscriptions ADD COLUMN mention TEXT;
    ALTER TABLE deliveries ADD COLUMN period_at REAL;
    ALTER TABLE deliveries ADD COLUMN mention TEXT;
    ALTER TABLE deliveries ADD COLUMN held_by TEXT;
    CREATE UNIQUE INDEX deliveries_one_digest ON deliveries (subscription_id, period_at)
        WHERE kind = 'digest';
    CREATE TABLE digest_items (
        subscription_id INTEGER NOT NULL,
        story_id INTEGER NOT NULL,
        delivery_id INTEGER NOT NULL,
        article_key TEXT NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY (subscription_id, story_id)
    ) WITHOUT ROWID;
    CREATE INDEX digest_items_by_delivery ON digest_items (delivery_id);
    CREATE INDEX digest_items_by_story ON digest_items (story_id);
    """,
    # Story placement finds earlier articles by publication time (articles_by_time) and
    # compares their words in memory: the word index cost a first scan more than it saved.
    """
    DROP TABLE title_words;
    """,
    # Learning from reactions (bot/feedback_store.py, bot/learning.py): the votes on our own
    # posts (a salted hash of the person, never their id), what each voted post was about, each
    # subscription's `learn` mode, and every learned adjustment with the votes that caused it.
    """
    CREATE TABLE feedback_posts (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        story_id INTEGER NOT NULL,
        topics TEXT NOT NULL,
        provider TEXT NOT NULL,
        PRIMARY KEY (platform, channel, story_id)
    );
    CREATE TABLE feedback_votes (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        story_id INTEGER NOT NULL,
        sign INTEGER NOT NULL,
        voter TEXT NOT NULL,
        emoji TEXT NOT NULL,
        voted_at REAL NOT NULL,
        PRIMARY KEY (platform, channel, story_id, sign, voter, emoji)
    );
    CREATE INDEX feedback_votes_by_time ON feedback_votes (platform, channel, voted_at);
    CREATE TABLE learn_modes (
        subscription_id INTEGER PRIMARY KEY,
        mode TEXT NOT NULL
    );
    CREATE TABLE learned_adjustments (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        shift REAL NOT NULL,
        exclude INTEGER NOT NULL,
        status TEXT NOT NULL,
        up INTEGER NOT NULL,
        down INTEGER NOT NULL,
        people INTEGER NOT NULL,
        votes_since REAL NOT NULL,
        votes_until REAL NOT NULL,
        created_at REAL NOT NULL,
        decided_at REAL,
        decided_by TEXT,
        notice_ref TEXT
    );
    CREATE INDEX learned_by_channel ON learned_adjustments (platform, channel, status);
    CREATE TABLE feedback_channels (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        suggested_at REAL NOT NULL,
        PRIMARY KEY (platform, channel)
    );
    """,
    # Several workers on one PostgreSQL database (bot/crew.py): who is alive, who holds which
    # lease, and which worker claimed a send and until when its claim holds.
    """
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN lease_until REAL;
    """,
)

async def _story_data(db: aiosqlite.Connection) -> None:
    """Version 7: the title words and related URLs of every article already known, so that
    what arrives after the upgrade can join those stories too. (Its word index, dropped by
    version 9, is left empty.)"""
    from bot.articles import article_from_dict
    from bot.stories import story_urls, title_words

    async with db.execute("SELECT key, story_id, payload FROM articles") as cursor:
        rows = list(await cursor.fetchall())
    words_rows = []
    url_rows = [(key, story_id) for key, story_id, _ in rows]
    for key, story_id, payload in rows:
        try:
            article = article_from_dict(json.loads(payload))
        except (KeyError, TypeError, ValueError):
            continue  # unreadable: it stays a story of its own, found by its own URL only
        words = title_words(article.title)
        words_rows.append((" ".join(words), key))
        url_rows += [(url, story_id) for url in story_urls(article)]
    await db.executemany("UPDATE articles SET title_words = ? WHERE key = ?", words_rows)
    await db.executemany(
        "INSERT OR IGNORE INTO story_urls (url, story_id) VALUES (?, ?)", url_rows
    )


# Python steps that run after a version's SQL, in the same transaction.
DATA_MIGRATIONS: dict[int, Callable[[aiosqlite.Connection], Awaitable[None]]] = {
    7: _story_data,
}

# How long to keep trying when another process holds the write lock.
_LOCKED_RETRIES = 8


class StateError(RuntimeError):
    """The database cannot be used as it is; the message says why and what to do."""


Body = Callable[[aiosqlite.Connection], Awaitable[T]]


class StateDatabase(Protocol):
    """What the repositories need of a database, SQLite (`Database`) or PostgreSQL
    (bot/postgres.py): one writer transaction at a time, and reads."""

    dialect: Dialect

    async def write(self, body: Body[T]) -> T: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def ping(self) -> bool: ...

    async def sync_each_commit(self, on: bool) -> None:
        """Off: commits may wait for the next one to reach the disk (a first scan, which
        posts nothing; turning it on again makes everything before durable)."""
        ...

    async def aclose(self) -> None: ...


class Database:
    """Open with `await Database.open(path)`; close with `aclose()`."""

    dialect = Dialect.SQLITE

    def __init__(self, db: aiosqlite.Connection, path: Path | None = None) -> None:
        self._db = db
        self.path = path
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
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
            database = cls(db, path)
            await database._migrate()
        except BaseException:
            await db.close()
            raise
        return database

    @property
    def connection(self) -> aiosqlite.Connection:
        """For tests that watch the statements (a trace callback); code goes through write."""
        return self._db

    async def aclose(self) -> None:
        await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StateError(
                f"the database {self.path} is at schema version {version}, newer than this "
                f"newsbot ({len(MIGRATIONS)}); upgrade newsbot or use another database file"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("migrating the database to schema version %d", number)

            async def apply(
                db: aiosqlite.Connection, script: str = script, n: int = number
            ) -> None:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                data_step = DATA_MIGRATIONS.get(n)
                if data_step is not None:
                    await data_step(db)
                await db.execute(f"PRAGMA user_version = {n}")

            await self.write(apply)

    async def write(self, body: Body[T]) -> T:
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

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def sync_each_commit(self, on: bool) -> None:
        # In WAL mode a FULL commit syncs the log, and with it every commit written before.
        await self._db.execute(f"PRAGMA synchronous={'FULL' if on else 'NORMAL'}")

    async def ping(self) -> bool:
        """Readiness: the database answers a query."""
        try:
            await self.fetchall("SELECT 1")
        except Exception:
            return False
        return True
