"""What the chat commands mean, whatever the platform: typed request in, typed reply out.

Adapters (Discord, Slack) only translate: they parse their platform's event into these calls,
decide whether the caller may manage the channel, and render the reply.
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from bot import validation
from bot.articles import Article
from bot.clock import Clock
from bot.credentials import Blocked
from bot.platforms.registry import check_mention
from bot.routing import RoutingDefaults, Verdict, judge
from bot.schedule_time import (
    DEFAULT_DIGEST_AT,
    DEFAULT_TIMEZONE,
    DeliveryMode,
    QuietHours,
    format_time_of_day,
    parse_time_of_day,
)
from bot.state import State
from bot.subscriptions import Subscription, SubscriptionSource
from bot.validation import MAX_NEWS_COUNT as MAX_NEWS_COUNT

DEFAULT_NEWS_COUNT = 5
MAX_TOPIC_LENGTH = 100
MANAGE_REFUSAL = (
    "Only members who can manage this channel may change its subscriptions "
    "(Discord: the Manage Channels permission; Slack: see the bot's `manage` setting)."
)


@dataclass(frozen=True, slots=True)
class Caller:
    platform: str
    channel: str
    user_id: str
    can_manage: bool  # decided by the adapter from the platform's permissions


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    text: str  # plain text, no platform markup: adapters escape and format it


@dataclass(frozen=True, slots=True)
class NewsReply:
    ok: bool
    text: str
    articles: tuple[Article, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionsReply:
    text: str
    subscriptions: tuple[Subscription, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicsReply:
    text: str
    topics: tuple[tuple[str, int], ...] = ()


class BadArgument(ValueError):
    """A user's argument is wrong; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class Timing:
    """How a subscription made in chat delivers, as the command gave it (None: not given)."""

    mode: str | None = None  # "instant", "hourly" or "daily"
    digest_at: str | None = None  # HH:MM
    timezone: str | None = None
    quiet_hours: str | None = None  # HH:MM-HH:MM
    mention: str | None = None  # a role or user group id, or the platform's mention of one


@dataclass(frozen=True, slots=True)
class CheckedTiming:
    mode: DeliveryMode
    digest_at: str
    timezone: str
    quiet_hours: str | None
    mention: str | None


def _checked(value: str, check: Callable[[str], str], what: str) -> str:
    try:
        return check(value)
    except validation.InvalidValue as exc:
        raise BadArgument(f"{what} must be {exc.expected}; got {value!r}.") from None


def check_timing(platform: str, timing: Timing) -> CheckedTiming:
    """Each choice held to the one rule (bot/validation.py). A digest time given without a
    mode means a daily digest at that time."""
    mode = at = quiet = mention = None
    zone_name = DEFAULT_TIMEZONE
    if timing.mode:
        mode = _checked(timing.mode.strip().casefold(), validation.delivery_mode, "The mode")
    if timing.digest_at:
        at = _checked(timing.digest_at, validation.time_of_day, "The digest time")
    if timing.timezone:
        zone_name = _checked(timing.timezone.strip(), validation.timezone, "The time zone")
    if timing.quiet_hours:
        quiet = _checked(timing.quiet_hours, validation.quiet_hours, "Quiet hours")
    if timing.mention:
        mention = _checked(
            timing.mention, lambda value: check_mention(platform, value), "The mention"
        )
    if mode is None:
        mode = "daily" if at is not None else "instant"
    return CheckedTiming(
        mode=DeliveryMode(mode),
        digest_at=at or format_time_of_day(DEFAULT_DIGEST_AT),
        timezone=zone_name,
        quiet_hours=quiet,
        mention=mention,
    )


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def timezone_choices(prefix: str, limit: int = 25) -> list[str]:
    """Autocomplete: IANA zone names containing `prefix` ("berl" -> Europe/Berlin), those
    whose city starts with it first."""
    wanted = prefix.casefold().strip().replace(" ", "_")
    names = [n for n in _zone_names() if wanted in n.casefold()]
    names.sort(key=lambda n: (not n.casefold().rsplit("/", 1)[-1].startswith(wanted), n))
    return names[:limit]


def describe_timing(sub: Subscription) -> str:
    """How a chat reply says when the stories come."""
    if sub.mode is DeliveryMode.DAILY:
        text = f"in a daily digest at {format_time_of_day(sub.digest_at)} ({sub.timezone})"
    elif sub.mode is DeliveryMode.HOURLY:
        text = f"in an hourly digest at :{sub.digest_at.minute:02d} ({sub.timezone})"
    else:
        text = "as they come"
    if sub.quiet_hours is not None:
        text += (
            f"; quiet hours {sub.quiet_hours} ({sub.timezone}) hold them, except breaking "
            f"stories (quality {sub.breaking_quality:g}+ or {sub.breaking_outlets}+ outlets)"
        )
    if sub.mention is not None:
        text += f"; breaking stories mention {sub.mention}"
    return text


def clean_topic(topic: str) -> str:
    cleaned = " ".join(topic.split())
    if not cleaned:
        raise BadArgument("Give a topic, for example `AI` or `Machine Learning`.")
    if len(cleaned) > MAX_TOPIC_LENGTH:
        raise BadArgument(f"A topic is at most {MAX_TOPIC_LENGTH} characters.")
    return cleaned


def check_count(count: int) -> int:
    try:
        return validation.news_count(count)
    except validation.InvalidValue:
        raise BadArgument(f"The count must be between 1 and {MAX_NEWS_COUNT}.") from None


def check_quality(min_quality: float | None) -> float | None:
    if min_quality is None:
        return None
    try:
        return validation.quality_floor(min_quality)
    except validation.InvalidValue as exc:
        raise BadArgument(f"The minimum quality must be {exc.expected}.") from None


# Whether the bot can post to (platform, channel) with the secrets at hand: None, or what is
# missing (bot/credentials.py).
BlockedCheck = Callable[[str, str], Blocked | None]


def _short(where: str) -> str:
    """`/srv/bot/newsbot.toml:5` as `newsbot.toml, line 5`: chat users need the file, not the
    server's folders."""
    path, _, line = where.rpartition(":")
    if path and line.isdigit():
        return f"{path.rsplit('/', 1)[-1]}, line {line}"
    return where.rsplit("/", 1)[-1] if where.startswith("/") else where


class Commands:
    def __init__(
        self,
        state: State,
        defaults: RoutingDefaults,
        clock: Clock,
        *,
        blocked: BlockedCheck | None = None,
        origin: Callable[[Subscription], str] | None = None,
    ) -> None:
        self._state = state
        self._defaults = defaults
        self._clock = clock
        self._blocked = blocked
        self._origin = origin  # where a config subscription is written (file:line)

    async def _known_topics(self) -> list[tuple[str, int]]:
        return await self._state.topic_counts()

    async def _suggest(self, topic: str) -> str:
        names = [name for name, _ in await self._known_topics()]
        lowered = {n.casefold(): n for n in names}
        close = difflib.get_close_matches(topic.casefold(), list(lowered), n=3, cutoff=0.5)
        if close:
            return " Did you mean " + ", ".join(lowered[c] for c in close) + "?"
        if names:
            return " Topics with articles: " + ", ".join(names[:10]) + "."
        return " The store has no articles yet."

    async def news(
        self, topic: str, count: int = DEFAULT_NEWS_COUNT, min_quality: float | None = None
    ) -> NewsReply:
        """The most recent stories for `topic` at or above the floor, newest first: one each,
        led by its best article, with the other outlets as its coverage."""
        try:
            topic = clean_topic(topic)
            count = check_count(count)
            floor = check_quality(min_quality)
        except BadArgument as exc:
            return NewsReply(ok=False, text=str(exc))
        floor = self._defaults.min_quality if floor is None else floor
        articles = await self._state.recent_stories(
            topic, floor, self._defaults.include_unscored, count
        )
        if not articles:
            return NewsReply(
                ok=True,
                text=f"No articles about {topic} at quality {floor:g} or above."
                + await self._suggest(topic),
            )
        return NewsReply(
            ok=True,
            text=f"{len(articles)} most recent on {topic} (quality {floor:g}+)",
            articles=tuple(articles),
        )

    async def subscribe(
        self,
        caller: Caller,
        topic: str,
        min_quality: float | None = None,
        timing: Timing | None = None,
    ) -> Reply:
        if not caller.can_manage:
            return Reply(ok=False, text=MANAGE_REFUSAL)
        try:
            topic = clean_topic(topic)
            floor = check_quality(min_quality)
            chosen = check_timing(caller.platform, timing or Timing())
        except BadArgument as exc:
            return Reply(ok=False, text=str(exc))
        wanted = Subscription(
            id=0,
            platform=caller.platform,
            channel=caller.channel,
            topics=(topic,),
            min_quality=floor,
            source=SubscriptionSource.CHAT,
            mode=chosen.mode,
            digest_at=parse_time_of_day(chosen.digest_at),
            timezone=chosen.timezone,
            quiet_hours=QuietHours.parse(chosen.quiet_hours) if chosen.quiet_hours else None,
            mention=chosen.mention,
        )
        now = self._clock.now()
        stored, created = await self._state.add_subscription(
            wanted, lambda sub, art: judge(art, sub, self._defaults, now) is Verdict.DELIVER
        )
        missing = self._blocked(caller.platform, caller.channel) if self._blocked else None
        resumed = 0
        if missing is not None:
            # Parked like at a start without the secret: the next start with it resumes it.
            await self._state.park_channel(
                caller.platform, caller.channel, missing.reason, cause=missing.variable
            )
        else:
            resumed = await self._state.unpark_channel(caller.platform, caller.channel)
        shown_floor = stored.min_quality if stored.min_quality is not None else (
            self._defaults.min_quality
        )
        verb = "Subscribed" if created else "Updated the subscription"
        text = (
            f"{verb}: new {topic} articles at quality {shown_floor:g}+ will be posted here "
            f"{describe_timing(stored)}."
        )
        if resumed:
            text += " Posting here had been paused after an error; it is resumed."
        if missing is not None:
            text += (
                f" But posting here waits for whoever runs the bot: {missing.reason}."
            )
        if not any(name.casefold() == topic.casefold() for name, _ in await self._known_topics()):
            text += " (No articles carry this topic yet." + (await self._suggest(topic)) + ")"
        return Reply(ok=True, text=text)

    async def unsubscribe(self, caller: Caller, topic: str) -> Reply:
        if not caller.can_manage:
            return Reply(ok=False, text=MANAGE_REFUSAL)
        try:
            topic = clean_topic(topic)
        except BadArgument as exc:
            return Reply(ok=False, text=str(exc))
        owned = [
            s
            for s in await self._state.subscriptions(caller.platform, caller.channel)
            if s.source is SubscriptionSource.CONFIG
            and topic.casefold() in {t.casefold() for t in s.topics}
        ]
        if owned:
            # The config file owns it: removing it here would not last (the next start adds it
            # back), so say where it is instead.
            where = self._origin(owned[0]) if self._origin else "the bot's config file"
            return Reply(
                ok=False,
                text=f"{topic} is subscribed here by the bot's config file ({_short(where)}); "
                "ask whoever runs the bot to remove it there.",
            )
        changed = await self._state.remove_subscriptions(caller.platform, caller.channel, topic)
        if not changed:
            return Reply(ok=False, text=f"This channel is not subscribed to {topic}.")
        return Reply(ok=True, text=f"Unsubscribed: no more {topic} articles here.")

    async def subscriptions(self, caller: Caller) -> SubscriptionsReply:
        subs = tuple(await self._state.subscriptions(caller.platform, caller.channel))
        if not subs:
            return SubscriptionsReply(text="This channel has no subscriptions.")
        lines = [sub.describe_filters(self._defaults.min_quality) for sub in subs]
        return SubscriptionsReply(
            text="This channel is subscribed to:\n" + "\n".join(f"- {x}" for x in lines),
            subscriptions=subs,
        )

    async def topics(self) -> TopicsReply:
        counts = tuple(await self._known_topics())
        if not counts:
            return TopicsReply(text="The store has no articles yet.")
        text = "Topics: " + ", ".join(f"{name} ({n})" for name, n in counts)
        return TopicsReply(text=text, topics=counts)

    async def topic_choices(self, prefix: str, limit: int = 25) -> list[str]:
        """Autocomplete: known topics containing `prefix`, those starting with it first."""
        wanted = prefix.casefold().strip()
        names = [name for name, _ in await self._known_topics()]
        starts = [n for n in names if n.casefold().startswith(wanted)]
        contains = [n for n in names if wanted in n.casefold() and n not in starts]
        return (starts + contains)[:limit]
