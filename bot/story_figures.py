"""`newsbot scan --stories`: what story clustering does to a store, without touching the
bot's state. The same parsing and the same grouping as `run` (bot/stored_article.py,
bot/stories.py), over every file at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.carriers import Carriers, Take
from bot.printable import printable
from bot.routing import RoutingDefaults, Verdict, judge
from bot.store import FileOutcome, list_store, parse_files
from bot.stored_article import StoredArticle, to_stored
from bot.stories import group
from bot.subscriptions import Subscription

# The channel the figures imagine: every topic, the configured floor, instant mode.
_ALL_TOPICS = Subscription(id=0, platform="figures", channel="all-topics")


@dataclass(frozen=True, slots=True)
class StoryFigures:
    root: str
    articles: int  # distinct articles (files repeating one are counted once)
    stories: int
    largest_size: int
    largest_title: str
    posts_before: int  # an all-topics channel in instant mode, one post per article
    posts_after: int  # the same channel, one post per story
    floor: float
    include_unscored: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "articles": self.articles,
            "stories": self.stories,
            "largest_story": {"articles": self.largest_size, "title": self.largest_title},
            "all_topics_channel_posts": {
                "one_per_article": self.posts_before,
                "one_per_story": self.posts_after,
            },
            "floor": self.floor,
            "include_unscored": self.include_unscored,
        }


def story_figures(
    root: Path, max_bytes: int, parallel_threshold: int, defaults: RoutingDefaults
) -> StoryFigures:
    """Group every article of the store into stories, as a first scan by `run` does. Age
    (`max_age_days`) is left out: the figures describe the store, not one day of it."""
    listing = list_store(root)
    carriers = Carriers()
    stored: list[StoredArticle] = []
    for batch in parse_files(
        root,
        sorted(listing.files),
        max_bytes,
        float("inf"),
        parallel_threshold,
        transform=to_stored,
    ):
        for outcome in batch:
            article = outcome.article if isinstance(outcome, FileOutcome) else None
            if article is not None and carriers.take(article.key, outcome.path) is Take.NEW:
                stored.append(article)
    now_s = datetime.now(UTC).timestamp()
    grouping = group([s.newcomer(now_s) for s in stored], [], {})
    story_of = grouping.new_group
    sizes = Counter(story_of.values())
    largest, largest_size = sizes.most_common(1)[0] if sizes else (None, 0)
    headline = max(
        (s for s in stored if story_of[s.key] == largest),
        key=lambda s: (s.quality or 0.0, s.key),
        default=None,
    )
    ageless = RoutingDefaults(defaults.min_quality, defaults.include_unscored, None)
    now = datetime.now(UTC)
    wanted = [s for s in stored if judge(s.article(), _ALL_TOPICS, ageless, now) is Verdict.DELIVER]
    return StoryFigures(
        root=str(root),
        articles=len(stored),
        stories=len(sizes),
        largest_size=largest_size,
        largest_title=headline.title if headline else "",
        posts_before=len(wanted),
        posts_after=len({story_of[s.key] for s in wanted}),
        floor=defaults.min_quality,
        include_unscored=defaults.include_unscored,
    )


def format_figures(figures: StoryFigures) -> str:
    unscored = "unscored included" if figures.include_unscored else "unscored left out"
    return (
        f"{printable(figures.root)}: {figures.articles} articles in {figures.stories} stories\n"
        f"largest story: {figures.largest_size} articles: "
        f"{printable(figures.largest_title)}\n"
        f"an all-topics channel in instant mode (floor {figures.floor:g}, {unscored}): "
        f"{figures.posts_before} posts one per article, {figures.posts_after} one per story\n"
    )
