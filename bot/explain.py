"""`newsbot explain`: for one article, what every subscription did or will do with it, and why:
posted (on its own, or as part of a story another outlet brought), waiting (with when), or not
delivered (the first rule that kept it out, with the numbers). Read from the state as the
worker left it, so the answer agrees with what was sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum

from bot.articles import Article
from bot.learning import Learned, learned_floor
from bot.outbox import HELD_BY_QUIET_HOURS, Delivery, DeliveryKind, DeliveryState
from bot.printable import json_text, printable
from bot.routing import RoutingDefaults, Verdict, judge
from bot.state import State
from bot.subscriptions import LateCoverage, Subscription


class Fate(StrEnum):
    DELIVERED = "delivered"
    WAITING = "waiting"  # queued, or not scanned yet: it will go
    NOT_DELIVERED = "not delivered"


@dataclass(frozen=True, slots=True)
class Explanation:
    subscription_id: int
    target: str  # platform:channel
    subscription: str  # every filter, as `subscriptions list` shows it
    fate: Fate
    reason: str
    at: float | None = None  # when it was posted, or when it may go (epoch seconds)
    message: str | None = None  # the platform's id of the post


@dataclass(frozen=True, slots=True)
class StoryFacts:
    story_id: int | None
    articles: int
    outlets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    key: str
    title: str
    quality: float | None
    outlet: str
    known: bool  # in the bot's state (scanned), or only read from the file now
    story: StoryFacts
    explanations: tuple[Explanation, ...]

    def to_json(self) -> str:
        return json_text(asdict(self), indent=2) + "\n"


async def explain(
    state: State,
    article: Article,
    defaults: RoutingDefaults,
    now: datetime,
    learned: Mapping[int, Learned] | None = None,
) -> Report:
    """`learned`: per subscription id, what its channel's reactions taught (as routing
    applies it: bot.tuning.learned_for_routing)."""
    learned = learned or {}
    story_id = await state.story_of(article.key)
    members = await state.story_articles(story_id) if story_id is not None else [article]
    outlets = tuple(sorted({m.provider.name or m.provider.domain for m in members} - {""}))
    explanations = []
    for sub in await state.subscriptions():
        post = None
        if story_id is not None:
            post = await state.outbox.post_for(sub.platform, sub.channel, story_id)
            if post is None:
                post = await state.outbox.digest_listing(sub.id, story_id)
        taught = learned.get(sub.id)
        verdict = judge(article, sub, defaults, now, taught)
        explanations.append(
            await _one(state, article, sub, post, verdict, defaults, story_id is not None, now,
                       taught)
        )
    return Report(
        key=article.key,
        title=article.title,
        quality=article.quality,
        outlet=article.provider.name or article.provider.domain,
        known=story_id is not None,
        story=StoryFacts(story_id, len(members), outlets),
        explanations=tuple(explanations),
    )


async def _one(
    state: State,
    article: Article,
    sub: Subscription,
    post: Delivery | None,
    verdict: Verdict,
    defaults: RoutingDefaults,
    known: bool,
    now: datetime,
    learned: Learned | None = None,
) -> Explanation:
    def answer(fate: Fate, reason: str, at: float | None = None, message: str | None = None
               ) -> Explanation:
        return Explanation(
            sub.id, f"{sub.platform}:{sub.channel}", sub.describe(defaults.min_quality), fate,
            reason, at, message,
        )

    def why_not() -> str:
        return _why_not(verdict, article, sub, defaults, now, learned)

    if post is not None and post.kind is DeliveryKind.DIGEST:
        # The story is listed in this subscription's digest (collected under its row).
        if verdict is not Verdict.DELIVER and post.article_key != article.key:
            return answer(Fate.NOT_DELIVERED, why_not())
        if post.state is DeliveryState.SENT:
            return answer(Fate.DELIVERED, f"listed in the digest sent at {_when(post.posted_at)}",
                          post.posted_at, post.message_ref)
        return answer(Fate.WAITING, f"waiting for the digest at {_when(post.next_attempt_at)}",
                      post.next_attempt_at)
    if post is not None:
        story = f"story #{post.story_id}"
        own = post.article_key == article.key
        if not own and verdict is not Verdict.DELIVER:
            # The channel has the story through another article; this one it does not take.
            return answer(
                Fate.NOT_DELIVERED,
                f"{why_not()} (its {story} reached the "
                f"channel through {post.article_key})",
            )
        if post.state is DeliveryState.SENT:
            if own:
                return answer(Fate.DELIVERED, f"posted at {_when(post.posted_at)}",
                              post.posted_at, post.message_ref)
            how = await _late(state, sub, post, article)
            return answer(
                Fate.DELIVERED,
                f"part of {story}, already posted at {_when(post.posted_at)} "
                f"(first told by {post.article_key}); {how}",
                post.posted_at,
                post.message_ref,
            )
        if post.state in (DeliveryState.PENDING, DeliveryState.SENDING):
            why = f" (last try: {post.last_error})" if post.last_error else ""
            what = "queued" if own else f"part of {story}, queued"
            if post.state is DeliveryState.SENDING:
                return answer(Fate.WAITING, f"{what}: being sent{why}")
            if post.held_by == HELD_BY_QUIET_HOURS and post.attempts == 0:
                return answer(
                    Fate.WAITING,
                    f"{what}: held by the subscription's quiet hours until "
                    f"{_when(post.next_attempt_at)}",
                    post.next_attempt_at,
                )
            return answer(
                Fate.WAITING,
                f"{what}: goes at {_when(post.next_attempt_at)} or as soon as the channel's "
                f"turn and rate limit allow{why}",
                post.next_attempt_at,
            )
        if post.state is DeliveryState.PARKED:
            return answer(Fate.NOT_DELIVERED, f"the channel is paused: {post.last_error}")
        return answer(Fate.NOT_DELIVERED, f"the platform refused it: {post.last_error}")
    if verdict is not Verdict.DELIVER:
        return answer(Fate.NOT_DELIVERED, why_not())
    if not known:
        return answer(Fate.WAITING, "not scanned yet: it goes out when the bot next reads the "
                                    "store")
    return answer(
        Fate.NOT_DELIVERED,
        "it matches, but it was in the store before this subscription (or before the bot's "
        "first scan of the store), and was not among the subscription's backfill",
    )


async def _late(state: State, sub: Subscription, post: Delivery, article: Article) -> str:
    """How this later article reached (or did not reach) a post already out."""
    if sub.late_coverage is LateCoverage.OFF:
        return "late coverage is off here: it is not shown"
    kinds = {
        row.kind: row for row in await state.outbox.follow_ups(post.id, article.key)
    }
    if sub.late_coverage is LateCoverage.THREAD:
        reply = kinds.get(DeliveryKind.REPLY)
        if reply is None:
            return "it came before the post went out, which shows it"
        if reply.state is DeliveryState.SENT:
            return f"a reply in its thread (message {reply.message_ref})"
        return f"a reply in its thread, {reply.state}"
    return "its outlet is in the post's coverage (the post is edited as coverage arrives)"


def _why_not(
    verdict: Verdict, article: Article, sub: Subscription, defaults: RoutingDefaults,
    now: datetime, learned: Learned | None = None,
) -> str:
    from bot.tuning import explain_hold

    floor = sub.min_quality if sub.min_quality is not None else defaults.min_quality
    if verdict is Verdict.LEARNED_EXCLUDED and learned:
        excluding = learned.exclusion(article)
        assert excluding is not None
        return f"held back by what this channel taught: {explain_hold([excluding], floor)}"
    if verdict is Verdict.LEARNED_FLOOR and learned:
        moved = learned.shift_for(article)
        return (
            f"held back by what this channel taught: quality {article.quality:g} is under "
            f"{learned_floor(floor, moved.shift):g}: {explain_hold(moved.because, floor)}"
        )
    if verdict is Verdict.PARKED:
        return f"the subscription is paused: {sub.parked_reason}"
    if verdict is Verdict.WRONG_TOPIC:
        has = ", ".join(article.topics) or "no topics"
        return f"no matching topic: the article has {has}; this takes {', '.join(sub.topics)}"
    if verdict is Verdict.PROVIDER:
        outlet = article.provider.name or article.provider.domain
        if sub.providers_include:
            return f"filtered: {outlet} is not among {', '.join(sub.providers_include)}"
        return f"filtered: {outlet} is excluded"
    if verdict is Verdict.KEYWORD:
        return ("filtered: none of the keywords (" + ", ".join(sub.keywords)
                + ") is in the title or excerpt")
    if verdict is Verdict.TOO_OLD:
        max_age = sub.max_age_days if sub.max_age_days is not None else defaults.max_age_days
        age_days = (now - article.published_at).total_seconds() / 86400 if (
            article.published_at
        ) else 0.0
        return f"too old: published {age_days:.1f} days ago; the limit is {max_age:g} days"
    if verdict is Verdict.UNSCORED:
        return ("it has no quality score, and this subscription does not take unscored "
                "articles (include_unscored)")
    if learned and learned.shift_for(article).because:
        moved = learned.shift_for(article)
        return (
            f"below the floor: quality {article.quality:g} is under "
            f"{learned_floor(floor, moved.shift):g} ({explain_hold(moved.because, floor)})"
        )
    return f"below the floor: quality {article.quality:g} is under {floor:g}"


def _when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "an unknown time"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_report(report: Report) -> str:
    quality = "unscored" if report.quality is None else f"quality {report.quality:g}"
    lines = [
        f"{printable(report.title)} ({quality}, {printable(report.outlet)})",
        f"  {printable(report.key)}",
    ]
    story = report.story
    if story.story_id is None:
        lines.append("  not in the bot's state yet (the store has not been scanned since)")
    else:
        lines.append(
            f"  story #{story.story_id}: {story.articles} article"
            f"{'s' if story.articles != 1 else ''} from "
            f"{', '.join(printable(o) for o in story.outlets) or 'no named outlet'}"
        )
    if not report.explanations:
        lines.append("no subscriptions")
    for item in report.explanations:
        lines.append(f"{item.subscription_id:4}  {printable(item.subscription)}")
        lines.append(f"      {item.fate}: {printable(item.reason)}")
    return "\n".join(lines) + "\n"
