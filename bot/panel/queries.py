"""The reads the panel needs beyond `State`'s own: the delivery log, the store by topic, the
quality of what it holds. Plain SELECTs with `?` placeholders and nothing one database has and
another lacks, each returning typed rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.database import StateDatabase

MAX_LOG_ROWS = 100


@dataclass(frozen=True, slots=True)
class LogRow:
    """One outbox row as the delivery log shows it."""

    id: int
    platform: str
    channel: str
    kind: str
    state: str
    attempts: int
    article_key: str
    title: str | None  # None: the article is gone from the state
    subscription_id: int | None
    created_at: float
    updated_at: float
    posted_at: float | None
    next_attempt_at: float
    message_ref: str | None
    last_error: str | None
    held_by: str | None


@dataclass(frozen=True, slots=True)
class LogFilter:
    platform: str | None = None
    channel: str | None = None
    state: str | None = None
    since_s: float | None = None  # rows made at or after
    until_s: float | None = None  # rows made before
    before_id: int | None = None  # the next page: rows older than this one
    story_id: int | None = None


async def delivery_log(
    db: StateDatabase, wanted: LogFilter, limit: int = MAX_LOG_ROWS
) -> list[LogRow]:
    """The newest rows first that match every filter given."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("d.platform", wanted.platform),
        ("d.channel", wanted.channel),
        ("d.state", wanted.state),
        ("d.story_id", wanted.story_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if wanted.since_s is not None:
        where.append("d.created_at >= ?")
        params.append(wanted.since_s)
    if wanted.until_s is not None:
        where.append("d.created_at < ?")
        params.append(wanted.until_s)
    if wanted.before_id is not None:
        where.append("d.id < ?")
        params.append(wanted.before_id)
    sql = (
        "SELECT d.id, d.platform, d.channel, d.kind, d.state, d.attempts, d.article_key, "
        "a.title, d.subscription_id, d.created_at, d.updated_at, d.posted_at, "
        "d.next_attempt_at, d.message_ref, d.last_error, d.held_by "
        "FROM deliveries d LEFT JOIN articles a ON a.key = d.article_key"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY d.id DESC LIMIT ?"
    params.append(limit)
    return [
        LogRow(
            id=int(r["id"]),
            platform=str(r["platform"]),
            channel=str(r["channel"]),
            kind=str(r["kind"]),
            state=str(r["state"]),
            attempts=int(r["attempts"]),
            article_key=str(r["article_key"]),
            title=r["title"],
            subscription_id=r["subscription_id"],
            created_at=float(r["created_at"]),
            updated_at=float(r["updated_at"]),
            posted_at=r["posted_at"],
            next_attempt_at=float(r["next_attempt_at"]),
            message_ref=r["message_ref"],
            last_error=r["last_error"],
            held_by=r["held_by"],
        )
        for r in await db.fetchall(sql, params)
    ]


async def delivery_targets(db: StateDatabase) -> list[tuple[str, str]]:
    """Every (platform, channel) that has deliveries or subscriptions, for the log's filter."""
    rows = await db.fetchall(
        "SELECT platform, channel FROM deliveries UNION "
        "SELECT platform, channel FROM subscriptions ORDER BY platform, channel"
    )
    return [(str(r["platform"]), str(r["channel"])) for r in rows]


@dataclass(frozen=True, slots=True)
class TopicCount:
    topic: str
    articles: int
    stories: int


@dataclass(frozen=True, slots=True)
class ArticleRow:
    key: str
    title: str
    quality: float | None
    provider: str
    story_id: int | None
    first_seen_at: float


@dataclass(frozen=True, slots=True)
class StoreFacts:
    articles: int
    stories: int
    unscored: int
    topics: tuple[TopicCount, ...]
    qualities: tuple[float, ...]


async def store_facts(db: StateDatabase) -> StoreFacts:
    [totals] = await db.fetchall(
        "SELECT COUNT(*) AS articles, COUNT(DISTINCT story_id) AS stories, "
        "SUM(CASE WHEN quality IS NULL THEN 1 ELSE 0 END) AS unscored FROM articles"
    )
    topics = await db.fetchall(
        "SELECT MIN(t.topic) AS topic, COUNT(DISTINCT a.key) AS articles, "
        "COUNT(DISTINCT a.story_id) AS stories "
        "FROM article_topics t JOIN articles a ON a.key = t.article_key "
        "GROUP BY t.folded ORDER BY COUNT(DISTINCT a.key) DESC, MIN(t.topic)"
    )
    qualities = await db.fetchall("SELECT quality FROM articles WHERE quality IS NOT NULL")
    return StoreFacts(
        articles=int(totals["articles"] or 0),
        stories=int(totals["stories"] or 0),
        unscored=int(totals["unscored"] or 0),
        topics=tuple(
            TopicCount(str(r["topic"]), int(r["articles"]), int(r["stories"])) for r in topics
        ),
        qualities=tuple(float(r["quality"]) for r in qualities),
    )


def _article_rows(rows: Sequence[Any]) -> list[ArticleRow]:
    return [
        ArticleRow(
            key=str(r["key"]),
            title=str(r["title"]),
            quality=r["quality"],
            provider=str(r["provider"]),
            story_id=r["story_id"],
            first_seen_at=float(r["first_seen_at"]),
        )
        for r in rows
    ]


_ARTICLE_COLUMNS = "a.key, a.title, a.quality, a.provider, a.story_id, a.first_seen_at"


async def recent_articles(
    db: StateDatabase, topic: str | None = None, *, unscored_only: bool = False, limit: int = 50
) -> list[ArticleRow]:
    """The articles the bot saw last, newest first: of one topic (case-insensitive), or
    only those without a quality score."""
    where: list[str] = []
    params: list[Any] = []
    if topic is not None:
        where.append(
            "a.key IN (SELECT t.article_key FROM article_topics t WHERE t.folded = ?)"
        )
        params.append(topic.casefold())
    if unscored_only:
        where.append("a.quality IS NULL")
    sql = f"SELECT {_ARTICLE_COLUMNS} FROM articles a"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY a.first_seen_at DESC, a.key LIMIT ?"
    params.append(limit)
    return _article_rows(await db.fetchall(sql, params))
