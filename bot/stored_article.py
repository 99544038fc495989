"""An article in the form the database keeps it, made where its file is parsed.

A large first scan parses on every core; what the worker processes send back is this (strings,
numbers, tuples: cheap to send), not whole `Article` objects, and the article's JSON and the
words and links that place it in a story are made there, beside the parsing, not in the one
process that writes the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC

from bot.articles import Article, article_from_dict, article_to_dict
from bot.store import FileOutcome, ParseResult, Unsettled
from bot.stories import Newcomer, story_urls, title_words


@dataclass(frozen=True, slots=True)
class StoredArticle:
    key: str
    title: str
    published_at: str | None  # ISO 8601 in UTC
    published_s: float | None  # the same, as seconds since the epoch
    quality: float | None
    provider: str
    topics: tuple[str, ...]
    payload: str  # the whole article as JSON (`article_to_dict`)
    words: tuple[str, ...]  # the title as story grouping sees it (`title_words`)
    urls: frozenset[str]  # the URLs that name its story (`story_urls`)

    def article(self) -> Article:
        return article_from_dict(json.loads(self.payload))

    def newcomer(self, seen_s: float) -> Newcomer:
        """For story placement; an undated article counts as published when it was seen."""
        published_s = self.published_s if self.published_s is not None else seen_s
        return Newcomer(self.key, published_s, self.words, self.urls)


def stored_article(article: Article) -> StoredArticle:
    published = article.published_at
    return StoredArticle(
        key=article.key,
        title=article.title,
        published_at=published.astimezone(UTC).isoformat() if published else None,
        published_s=published.timestamp() if published else None,
        quality=article.quality,
        provider=article.provider.name,
        topics=article.topics,
        payload=json.dumps(article_to_dict(article), ensure_ascii=False),
        words=title_words(article.title),
        urls=story_urls(article),
    )


def to_stored(result: ParseResult) -> FileOutcome[StoredArticle] | Unsettled:
    """`parse_files` transform: runs where the file was parsed (a pool process, for a large
    scan), so that only the stored form travels back."""
    if isinstance(result, Unsettled):
        return result
    stored = stored_article(result.article) if result.article is not None else None
    return FileOutcome(result.path, result.stamp, stored, result.error)
