"""What a story amounts to, for ranking digests and deciding what is breaking: its best quality
and how many outlets covered it. Pure functions of the story's articles.

**Outlets** are counted by domain (the provider's, else the link's; `www.` dropped), over the
story's articles and the related coverage each of them lists: the outlets we hold an article
from and the ones the articles say also told it.

**Breaking**: the story's best quality is at least the subscription's `breaking_quality`, or
at least `breaking_outlets` outlets covered it. Breaking stories go through quiet hours at once
and ping the subscription's `mention`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.articles import Article
from bot.urls import domain_of


@dataclass(frozen=True, slots=True)
class StoryFacts:
    quality: float | None  # the best score among its articles; None when none is scored
    outlets: int


@dataclass(frozen=True, slots=True)
class BreakingRule:
    quality: float
    outlets: int

    def applies(self, facts: StoryFacts) -> bool:
        return facts.outlets >= self.outlets or (
            facts.quality is not None and facts.quality >= self.quality
        )


def _outlet(domain: str | None, url: str) -> str:
    name = (domain or "").strip().lower().removeprefix("www.")
    return name or domain_of(url)


def outlets_of(articles: Iterable[Article]) -> frozenset[str]:
    found: set[str] = set()
    for article in articles:
        found.add(_outlet(article.provider.domain, article.web_url))
        for related in article.related:
            found.add(_outlet(related.provider.domain if related.provider else None,
                              related.web_url))
    found.discard("")
    return frozenset(found)


def story_facts(articles: Iterable[Article]) -> StoryFacts:
    listed = list(articles)
    scores = [a.quality for a in listed if a.quality is not None]
    return StoryFacts(max(scores) if scores else None, len(outlets_of(listed)))
