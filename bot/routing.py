"""Who wants this article: pure functions of an article, the subscriptions and `now`."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.articles import Article
from bot.learning import Learned, learned_floor
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
    # Held back only by what the channel's reactions taught (bot/learning.py): the outlet is
    # excluded, or the floor for one of its topics (or its outlet) was raised.
    LEARNED_EXCLUDED = "learned_excluded"
    LEARNED_FLOOR = "learned_floor"


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


def _fold(text: str) -> str:
    """Case and runs of spaces don't matter: "Computer  vision" is "Computer Vision"."""
    return " ".join(text.split()).casefold()


def _provider_matches(article: Article, wanted: Iterable[str]) -> bool:
    name = _fold(article.provider.name)
    domain = _fold(article.provider.domain).removeprefix("www.")
    for item in wanted:
        item = _fold(item)
        if item == name:
            return True
        # "www.forbes.com" names the same outlet as "forbes.com"; subdomains belong to it.
        item = item.removeprefix("www.")
        if domain == item or domain.endswith("." + item):
            return True
    return False


# Scripts written without spaces between words: there a keyword may sit inside a longer run.
_UNSPACED_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR")


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() and not unicodedata.name(ch, "").startswith(_UNSPACED_SCRIPTS)


def _contains_word(text: str, keyword: str) -> bool:
    """`keyword` occurs in `text` as whole words: "AI" is in "AI's rise" and "Big AI-chip",
    not in "said" or "email"; "machine learning" matches across any run of spaces."""
    start = text.find(keyword)
    while start >= 0:
        end = start + len(keyword)
        joined_before = start > 0 and _is_word_char(text[start - 1]) and _is_word_char(keyword[0])
        joined_after = end < len(text) and _is_word_char(text[end]) and _is_word_char(keyword[-1])
        if not (joined_before or joined_after):
            return True
        start = text.find(keyword, start + 1)
    return False


def _keywords_match(article: Article, keywords: Iterable[str]) -> bool:
    text = " ".join(f"{article.title}\n{article.excerpt}".casefold().split())
    wanted = (" ".join(k.casefold().split()) for k in keywords)
    return any(_contains_word(text, k) for k in wanted if k)


def judge(
    article: Article,
    sub: Subscription,
    defaults: RoutingDefaults,
    now: datetime,
    learned: Learned | None = None,
) -> Verdict:
    """The first reason `sub` does not want `article`, or DELIVER. `learned`: what the
    channel's reactions taught, when this subscription learns from them."""
    if sub.is_parked:
        return Verdict.PARKED
    if sub.topics:
        wanted = {_fold(t) for t in sub.topics}
        if not any(_fold(t) in wanted for t in article.topics):
            return Verdict.WRONG_TOPIC
    if sub.providers_include and not _provider_matches(article, sub.providers_include):
        return Verdict.PROVIDER
    if sub.providers_exclude and _provider_matches(article, sub.providers_exclude):
        return Verdict.PROVIDER
    if sub.keywords and not _keywords_match(article, sub.keywords):
        return Verdict.KEYWORD
    if learned and learned.exclusion(article) is not None:
        return Verdict.LEARNED_EXCLUDED
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
    if learned:
        moved = learned_floor(floor, learned.shift_for(article).shift)
        if article.quality >= moved:
            return Verdict.DELIVER
        return Verdict.LEARNED_FLOOR if article.quality >= floor else Verdict.BELOW_FLOOR
    return Verdict.DELIVER if article.quality >= floor else Verdict.BELOW_FLOOR


def route(
    article: Article,
    subscriptions: Iterable[Subscription],
    defaults: RoutingDefaults,
    now: datetime,
    learned: Mapping[int, Learned] | None = None,
) -> Routing:
    """`learned`: per subscription id, what its channel's reactions taught (only those that
    learn from them are in it)."""
    targets = []
    held_unscored = False
    for sub in subscriptions:
        verdict = judge(article, sub, defaults, now, (learned or {}).get(sub.id))
        if verdict is Verdict.DELIVER:
            targets.append(sub)
        elif verdict is Verdict.UNSCORED:
            held_unscored = True
    return Routing(targets=tuple(targets), held_unscored=held_unscored)
