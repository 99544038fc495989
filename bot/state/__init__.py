"""The bot's memory, on one database (SQLite, bot/database.py, or PostgreSQL, bot/postgres.py):
one repository per concept, each with its own SQL, and `State`, the one handle the rest of the
bot holds.

- `meta.py`: small named values;
- `store_index.py`: the files of the store as last scanned;
- `articles.py`: articles and stories, and the ingest transaction that records a batch of files
  with the outbox rows routing decides (docs/reliability.md);
- `subscriptions.py`: subscriptions, parking, backfills;
- the outbox (`bot/outbox.py`), stories' placement (`bot/story_store.py`), digests
  (`bot/digest_store.py`), reactions (`bot/feedback_store.py`) and the workers
  (`bot/crew.py`) are repositories of their own, on the same database.

The rules (what is new, who gets what, which articles are one story) are pure modules
(bot/carriers.py, bot/routing.py, bot/stories.py) that the repositories apply.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.clock import Clock
from bot.database import MIGRATIONS, Database, StateDatabase, StateError
from bot.outbox import Delivery, DeliveryState, Outbox
from bot.sql import POSTGRES_SCHEMES
from bot.state.articles import ArticleRepository, IngestReport, RouteFn
from bot.state.meta import MetaRepository
from bot.state.store_index import StoreIndex
from bot.state.subscriptions import SubscriptionRepository

__all__ = [
    "MIGRATIONS",
    "Delivery",
    "DeliveryState",
    "IngestReport",
    "RouteFn",
    "State",
    "StateError",
    "peek_subscription_targets",
]


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
    """The bot's memory. Construct with `await State.open(path_or_url, clock)`; close with
    `aclose()`. Each concept is a repository (`meta`, `files`, `articles`, `subs`, `outbox`);
    their operations are also reachable here by their usual names, so callers hold one handle."""

    def __init__(self, database: StateDatabase, clock: Clock) -> None:
        self._database = database
        self.outbox = Outbox(database, clock)
        self.meta = MetaRepository(database)
        self.files = StoreIndex(database)
        self.articles = ArticleRepository(database, clock)
        self.subs = SubscriptionRepository(database, clock)
        self.get_meta = self.meta.get
        self.set_meta = self.meta.set
        self.delete_meta = self.meta.delete
        self.load_file_index = self.files.load
        self.bad_files = self.files.bad_files
        self.record_files = self.articles.record_files
        self.record_stored = self.articles.record_stored
        self.place_stories = self.articles.place_stories
        self.story_of = self.articles.story_of
        self.story_articles = self.articles.story_articles
        self.story_seen = self.articles.story_seen
        self.get_article = self.articles.get_article
        self.recent_articles = self.articles.recent_articles
        self.recent_stories = self.articles.recent_stories
        self.topic_counts = self.articles.topic_counts
        self.unscored_articles = self.articles.unscored_articles
        self.article_count = self.articles.article_count
        self.late_coverage_of = self.subs.late_coverage_of
        self.subscriptions = self.subs.subscriptions
        self.subscription = self.subs.subscription
        self.backfill_ran = self.subs.backfill_ran
        self.add_subscription = self.subs.add_subscription
        self.remove_subscriptions = self.subs.remove_subscriptions
        self.remove_subscription_by_id = self.subs.remove_subscription_by_id
        self.sync_config_subscriptions = self.subs.sync_config_subscriptions
        self.park_channel = self.subs.park_channel
        self.unpark_channel = self.subs.unpark_channel

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
