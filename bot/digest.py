"""One digest: the top stories a digest subscription collected since its last digest, ranked, as
one message lists them. Pure: stories in, a `Digest` out; each renderer (bot/render/) turns it
into its platform's message within that platform's limits.

**Ranking.** A story scores its best quality (unscored: 0) plus `OUTLET_POINTS` for each outlet
beyond the first that covered it, so a story five outlets told at quality 60 (120) goes above
one outlet's story at 100. Ties: more outlets first, then the newer headline, then the older
story. The first `MAX_STORIES` are listed; the rest are counted ("+3 more").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.articles import Article
from bot.breaking import StoryFacts
from bot.schedule_time import DeliveryMode, format_time_of_day, zone

MAX_STORIES = 10
OUTLET_POINTS = 15.0

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class DigestStory:
    story_id: int
    headline: Article  # the story's best article, the others as its related coverage
    facts: StoryFacts
    breaking: bool

    @property
    def score(self) -> float:
        quality = self.facts.quality if self.facts.quality is not None else 0.0
        return quality + OUTLET_POINTS * max(0, self.facts.outlets - 1)


@dataclass(frozen=True, slots=True)
class Digest:
    title: str  # our own words, e.g. "Daily digest · Sun 29 Nov 2026"
    stories: tuple[DigestStory, ...]  # ranked, at most MAX_STORIES
    more: int  # collected but not listed

    @property
    def has_breaking(self) -> bool:
        return any(story.breaking for story in self.stories)


def pick_headline(articles: Sequence[Article]) -> Article:
    """The article a digest names a story by: the best scored (the first seen on a tie)."""
    return max(
        enumerate(articles),
        key=lambda item: (item[1].quality is not None, item[1].quality or 0.0, -item[0]),
    )[1]


def _rank(story: DigestStory) -> tuple[float, int, float, int]:
    published = story.headline.published_at
    when = published.timestamp() if published is not None else 0.0
    return (-story.score, -story.facts.outlets, -when, story.story_id)


def digest_title(mode: DeliveryMode, period_at: datetime, timezone: str) -> str:
    """ "Daily digest · Sun 29 Nov 2026" or "Hourly digest · Sun 29 Nov 2026 09:00 CET", in the
    subscription's zone (built by hand: strftime depends on the locale)."""
    local = period_at.astimezone(zone(timezone))
    day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"
    if mode is DeliveryMode.DAILY:
        return f"Daily digest · {day}"
    # Hourly; or a digest that was collecting when its subscription turned instant.
    label = "Hourly digest" if mode is DeliveryMode.HOURLY else "Digest"
    clock = format_time_of_day(local.time())
    return f"{label} · {day} {clock} {local.tzname() or timezone}"


def build_digest(
    mode: DeliveryMode, period_at: float, timezone: str, stories: Sequence[DigestStory]
) -> Digest:
    ranked = sorted(stories, key=_rank)
    title = digest_title(mode, datetime.fromtimestamp(period_at, UTC), timezone)
    listed = tuple(ranked[:MAX_STORIES])
    return Digest(title, listed, len(ranked) - len(listed))
