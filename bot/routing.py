"""Who wants this article: pure functions of an article, the subscriptions and `now`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.articles import Article
from bot.subscriptions import Subscription


class Verdict(StrEnum):
    DELIVER = "deliver"
    PARKED = "parked"
    WRONG_TOPIC = "wrong_topic"
    PROVIDER = "provider"
    KEYWORD = "keyword"
    TOO_OLD = "too_old"
    UNSCORED = "unscored"
    BELOW_FLOOR = "below_floor"


@dataclass(frozen=True, slots=True)
class RoutingDefaults:
    """The global settings a subscription falls back to."""

    min_quality: float = 40.0
    include_unscored: bool = False
    max_age_days: float | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    targets: tuple[Subscription, ...]
    # True when some subscription wanted the article but it carries no quality score and that
    # subscription does not take unscored articles: reported so people can change it.
    held_unscored: bool


def _provider_matches(article: Article, wanted: Iterable[str]) -> bool:
    name = article.provider.name.casefold()
    domain = article.provider.domain.casefold()
    for item in wanted:
        item = item.casefold()
        if item == name or domain == item or domain.endswith("." + item):
            return True
    return False


def _keywords_match(article: Article, keywords: Iterable[str]) -> bool:
    text = f"{article.title}\n{article.excerpt}".casefold()
    return any(k.casefold() in text for k in keywords)


def judge(
    article: Article, sub: Subscription, defaults: RoutingDefaults, now: datetime
) -> Verdict:
    """The first reason `sub` does not want `article`, or DELIVER."""
    if sub.is_parked:
        return Verdict.PARKED
    if sub.topics:
        wanted = {t.casefold() for t in sub.topics}
        if not any(t.casefold() in wanted for t in article.topics):
            return Verdict.WRONG_TOPIC
    if sub.providers_include and not _provider_matches(article, sub.providers_include):
        return Verdict.PROVIDER
    if sub.providers_exclude and _provider_matches(article, sub.providers_exclude):
        return Verdict.PROVIDER
    if sub.keywords and not _keywords_match(article, sub.keywords):
        return Verdict.KEYWORD
    max_age = sub.max_age_days if sub.max_age_days is not None else defaults.max_age_days
    if (
        max_age is not None
        and article.published_at is not None
        and now - article.published_at > timedelta(days=max_age)
    ):
        return Verdict.TOO_OLD
    if article.quality is None:
        include = (
            sub.include_unscored if sub.include_unscored is not None else defaults.include_unscored
        )
        return Verdict.DELIVER if include else Verdict.UNSCORED
    floor = sub.min_quality if sub.min_quality is not None else defaults.min_quality
    return Verdict.DELIVER if article.quality >= floor else Verdict.BELOW_FLOOR


def route(
    article: Article,
    subscriptions: Iterable[Subscription],
    defaults: RoutingDefaults,
    now: datetime,
) -> Routing:
    targets = []
    held_unscored = False
    for sub in subscriptions:
        verdict = judge(article, sub, defaults, now)
        if verdict is Verdict.DELIVER:
            targets.append(sub)
        elif verdict is Verdict.UNSCORED:
            held_unscored = True
    return Routing(targets=tuple(targets), held_unscored=held_unscored)
