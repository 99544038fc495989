"""What the commands mean, whatever the interface: a typed request in, a typed reply out,
through one entry (`Commands.handle(caller, request)`).

Chat requests (find news, subscribe, unsubscribe, list, topics) act on the caller's channel.
Operator requests (add, edit, remove by id, pause and resume a channel) name their target and
are taken only from an operator: the CLI and the web panel, which run with the whole bot's
authority. The adapters (Discord, Slack), the CLI and the panel only parse their input into
these requests, decide who the caller is (and whether they may manage the channel), and render
the reply.
"""

from __future__ import annotations

import difflib
import functools
import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import overload

from bot import validation
from bot.articles import Article
from bot.clock import Clock
from bot.config import SubscriptionSpec, subscription_from_spec
from bot.credentials import Blocked
from bot.feedback_store import AdjustmentRow, FeedbackStore, Status
from bot.learning import LearnMode
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
from bot.subscriptions import Subscription, SubscriptionSource, topics_key
from bot.tuning import Action, Button, Tuner, describe_state
from bot.validation import MAX_NEWS_COUNT as MAX_NEWS_COUNT

DEFAULT_NEWS_COUNT = 5
MAX_TOPIC_LENGTH = 100
MAX_CHANNEL_LENGTH = 200  # ids are short; a webhook target's name a little longer
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
    # Whoever runs the bot (the CLI, a logged-in panel user): may act on any channel.
    operator: bool = False
    via: SubscriptionSource = SubscriptionSource.CHAT  # marks the subscriptions it makes


def operator(who: str, via: SubscriptionSource) -> Caller:
    """The caller of the CLI or the panel: no channel of its own, every channel to manage."""
    return Caller(platform="", channel="", user_id=who, can_manage=True, operator=True, via=via)


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
    # What reactions taught (in force) or suggest, for the listed channels.
    learned: tuple[AdjustmentRow, ...] = ()


@dataclass(frozen=True, slots=True)
class TuneReply:
    ok: bool
    text: str
    buttons: tuple[Button, ...] = ()  # the apply, dismiss or undo buttons the text speaks of
    public: bool = False  # for the whole channel (what changes what it receives), not only you
    adjustments: tuple[AdjustmentRow, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicsReply:
    text: str
    topics: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ChangeReply:
    """The outcome of an operator's change (CLI, panel)."""

    ok: bool
    text: str
    subscription: Subscription | None = None  # the one added or changed
    created: bool = False
    backfill_skipped: bool = False  # asked for, but it ran before for this channel and topics
    changed: int = 0  # how many subscriptions changed
    refused: tuple[Subscription, ...] = ()  # owned by the config file: left as they are


# --- the requests ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindNews:
    topic: str
    count: int = DEFAULT_NEWS_COUNT
    min_quality: float | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe the caller's channel to a topic."""

    topic: str
    min_quality: float | None = None
    timing: Timing = field(default_factory=lambda: Timing())


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topic: str


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    """The caller's channel's subscriptions; every subscription for an operator."""


@dataclass(frozen=True, slots=True)
class ListTopics:
    pass


@dataclass(frozen=True, slots=True)
class AddSubscription:
    """Add (or update: same channel and topics) a subscription with every setting."""

    spec: SubscriptionSpec


@dataclass(frozen=True, slots=True)
class EditSubscription:
    """Change a subscription's settings (its channel stays; its topics may change)."""

    subscription_id: int
    spec: SubscriptionSpec


@dataclass(frozen=True, slots=True)
class RemoveSubscription:
    subscription_id: int


@dataclass(frozen=True, slots=True)
class RemoveChannelSubscriptions:
    """A channel's subscriptions carrying `topic`, or all of them."""

    platform: str
    channel: str
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class PauseChannel:
    platform: str
    channel: str


@dataclass(frozen=True, slots=True)
class ResumeChannel:
    """Resume a paused channel (also one the platform refused: try it again)."""

    platform: str
    channel: str


@dataclass(frozen=True, slots=True)
class ShowTuning:
    """What a channel's reactions taught and suggest (`/news tune`): the caller's channel, or
    the one an operator names."""

    platform: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Tune:
    """Apply or dismiss a suggestion, or undo an adjustment in force (`/news tune undo`, the
    buttons, `newsbot tune --undo`): the one named, else every one the action can take. Checked
    with the same permission as `/subscribe`."""

    action: Action
    adjustment_id: int | None = None
    platform: str | None = None  # an operator's: which channel
    channel: str | None = None


ChatRequest = (
    FindNews | Subscribe | Unsubscribe | ListSubscriptions | ListTopics | ShowTuning | Tune
)
OperatorRequest = (
    AddSubscription
    | EditSubscription
    | RemoveSubscription
    | RemoveChannelSubscriptions
    | PauseChannel
    | ResumeChannel
)
Request = ChatRequest | OperatorRequest
AnyReply = Reply | NewsReply | SubscriptionsReply | TopicsReply | ChangeReply | TuneReply
OPERATORS_ONLY = "Only whoever runs the bot (the CLI, the web panel) may do that."


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
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        # Topics are words; a control character is a mistake (and PostgreSQL refuses NUL).
        raise BadArgument("A topic is plain text, without control characters.")
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


def _rule(what: str, value: object, check: Callable[[], object]) -> None:
    try:
        check()
    except validation.InvalidValue as exc:
        raise BadArgument(f"{what} must be {exc.expected}; got {value!r}.") from None


def check_spec(spec: SubscriptionSpec) -> SubscriptionSpec:
    """Every setting of a subscription held to the one rule (bot/validation.py), whoever
    built it: the same checks as the config file and the command line. Returns it with its
    topics cleaned and its mention in the platform's bare form."""
    from bot.platforms.registry import PLATFORMS

    if spec.platform not in PLATFORMS:
        raise BadArgument(f"The platform must be one of {', '.join(PLATFORMS)}.")
    channel = spec.channel.strip()
    if not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise BadArgument(
            f"The channel must be the platform's channel id (1 to {MAX_CHANNEL_LENGTH} "
            "characters)."
        )
    s = spec
    _rule("The backfill", s.backfill, lambda: validation.backfill(s.backfill))
    _rule("Late coverage", s.late_coverage, lambda: validation.late_coverage(s.late_coverage))
    _rule("The headline margin", s.headline_margin,
          lambda: validation.headline_margin(s.headline_margin))
    _rule("The mode", s.mode, lambda: validation.delivery_mode(s.mode))
    _rule("The digest time", s.digest_at, lambda: validation.time_of_day(s.digest_at))
    _rule("The time zone", s.timezone, lambda: validation.timezone(s.timezone))
    _rule("The breaking quality", s.breaking_quality,
          lambda: validation.breaking_quality(s.breaking_quality))
    _rule("The breaking outlets", s.breaking_outlets,
          lambda: validation.breaking_outlets(s.breaking_outlets))
    if s.min_quality is not None:
        floor = s.min_quality
        _rule("The minimum quality", floor, lambda: validation.quality_floor(floor))
    if s.max_age_days is not None:
        days = s.max_age_days
        _rule("The maximum age", days, lambda: validation.max_age_days(days))
    if s.quiet_hours is not None:
        quiet = s.quiet_hours
        _rule("Quiet hours", quiet, lambda: validation.quiet_hours(quiet))
    if s.learn is not None:
        learn = s.learn
        _rule("learn", learn, lambda: validation.learn_mode(learn))
    mention = spec.mention
    if mention is not None:
        mention = _checked(mention, lambda v: check_mention(spec.platform, v), "The mention")
    words = (*spec.providers_include, *spec.providers_exclude, *spec.keywords)
    if any(len(w) > MAX_TOPIC_LENGTH for w in words):
        raise BadArgument(f"A provider or keyword is at most {MAX_TOPIC_LENGTH} characters.")
    topics = tuple(dict.fromkeys(clean_topic(t) for t in spec.topics))
    return replace(
        spec,
        channel=channel,
        topics=topics,
        mention=mention,
        digest_at=validation.time_of_day(s.digest_at),
        quiet_hours=None if s.quiet_hours is None else validation.quiet_hours(s.quiet_hours),
    )


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
        tuner: Tuner | None = None,
    ) -> None:
        self._state = state
        self._defaults = defaults
        self._clock = clock
        self._blocked = blocked
        self._origin = origin  # where a config subscription is written (file:line)
        # What reactions taught: listed and undone from anywhere; learned (and announced) only
        # where a running bot passes its tuner with [feedback] on.
        from bot.config import FeedbackConfig

        self._tuner = tuner or Tuner(
            FeedbackStore(state.database), state, FeedbackConfig(), clock,
            global_floor=defaults.min_quality,
        )

    async def _learned(self, platform: str | None = None, channel: str | None = None
                       ) -> tuple[AdjustmentRow, ...]:
        return tuple(await self._tuner.store.adjustments(
            platform, channel, (Status.APPLIED, Status.SUGGESTED)
        ))

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
        learns = await self._learns(subs)
        lines = [
            sub.describe_filters(self._defaults.min_quality) + learns.get(sub.id, "")
            for sub in subs
        ]
        learned = await self._learned(caller.platform, caller.channel)
        text = "This channel is subscribed to:\n" + "\n".join(f"- {x}" for x in lines)
        if learned:
            text += "\nLearned from reactions here:\n" + "\n".join(
                f"- {describe_state(row)}" for row in learned
            )
        return SubscriptionsReply(text=text, subscriptions=subs, learned=learned)

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

    # --- the one entry ---------------------------------------------------------------------

    @overload
    async def handle(self, caller: Caller, request: FindNews) -> NewsReply: ...
    @overload
    async def handle(self, caller: Caller, request: ListSubscriptions) -> SubscriptionsReply: ...
    @overload
    async def handle(self, caller: Caller, request: ListTopics) -> TopicsReply: ...
    @overload
    async def handle(self, caller: Caller, request: Subscribe | Unsubscribe) -> Reply: ...
    @overload
    async def handle(self, caller: Caller, request: OperatorRequest) -> ChangeReply: ...
    @overload
    async def handle(self, caller: Caller, request: ShowTuning | Tune) -> TuneReply: ...

    async def handle(self, caller: Caller, request: Request) -> AnyReply:
        """What `request` means for `caller`: every interface comes in here."""
        match request:
            case FindNews(topic, count, min_quality):
                return await self.news(topic, count, min_quality)
            case Subscribe(topic, min_quality, timing):
                return await self.subscribe(caller, topic, min_quality, timing)
            case Unsubscribe(topic):
                return await self.unsubscribe(caller, topic)
            case ListSubscriptions():
                if caller.operator:
                    return await self._all_subscriptions()
                return await self.subscriptions(caller)
            case ListTopics():
                return await self.topics()
            case ShowTuning(platform, channel):
                return await self._show_tuning(caller, platform, channel)
            case Tune():
                return await self._tune(caller, request)
        if not (caller.operator and caller.can_manage):
            return ChangeReply(ok=False, text=OPERATORS_ONLY)
        try:
            return await self._operate(caller, request)
        except BadArgument as exc:
            return ChangeReply(ok=False, text=str(exc))

    async def _operate(self, caller: Caller, request: OperatorRequest) -> ChangeReply:
        match request:
            case AddSubscription(spec):
                return await self._add(check_spec(spec), caller.via)
            case EditSubscription(sub_id, spec):
                return await self._edit(sub_id, check_spec(spec))
            case RemoveSubscription(sub_id):
                return await self._remove_one(sub_id)
            case RemoveChannelSubscriptions(platform, channel, topic):
                return await self._remove_channel(platform, channel, topic)
            case PauseChannel(platform, channel):
                return await self._pause(platform, channel, caller.user_id)
            case ResumeChannel(platform, channel):
                return await self._resume(platform, channel)
        raise AssertionError(f"unhandled request {request!r}")

    # --- learning from reactions -----------------------------------------------------------

    @staticmethod
    def _where(caller: Caller, platform: str | None, channel: str | None) -> tuple[str, str]:
        """The channel a tuning request is about: an operator's named one, else the caller's."""
        if caller.operator:
            if not (platform and channel):
                raise BadArgument("Name the channel: its platform and channel id.")
            return platform, channel
        return caller.platform, caller.channel

    async def _show_tuning(
        self, caller: Caller, platform: str | None, channel: str | None
    ) -> TuneReply:
        try:
            platform, channel = self._where(caller, platform, channel)
        except BadArgument as exc:
            return TuneReply(ok=False, text=str(exc))
        # On demand: whatever the votes call for now is suggested (or applied) first.
        await self._tuner.evaluate(platform, channel)
        rows = await self._tuner.store.adjustments(
            platform, channel, (Status.APPLIED, Status.SUGGESTED)
        )
        mode = await self._tuner.mode_of(platform, channel)
        pending = [r for r in rows if r.status is Status.SUGGESTED]
        in_force = [r for r in rows if r.status is Status.APPLIED]
        lines = []
        if not self._tuner.enabled:
            lines.append("Learning from reactions is off ([feedback] enabled = false).")
        else:
            lines.append(f"Learning from reactions here: {mode}.")
        if pending:
            notice = await self._tuner.suggestion_notice(platform, channel, pending)
            lines.append(notice.text)
        buttons = list(
            (await self._tuner.suggestion_notice(platform, channel, pending)).buttons
            if pending else ()
        )
        if in_force:
            lines.append("In force:")
            lines += [f"- {describe_state(r)}" for r in in_force]
            buttons += [Button(Action.UNDO, r.id, f"Undo #{r.id}") for r in in_force]
        if not rows:
            lines.append("Nothing learned or suggested yet.")
        return TuneReply(
            ok=True, text="\n".join(lines), buttons=tuple(buttons), public=bool(pending),
            adjustments=tuple(rows),
        )

    async def _tune(self, caller: Caller, request: Tune) -> TuneReply:
        if not caller.can_manage:
            return TuneReply(ok=False, text=MANAGE_REFUSAL)
        try:
            platform, channel = self._where(caller, request.platform, request.channel)
        except BadArgument as exc:
            return TuneReply(ok=False, text=str(exc))
        who = f"{caller.via}:{caller.user_id}" if caller.operator else caller.user_id
        done, text = await self._tuner.act(
            request.action, platform, channel, request.adjustment_id, who
        )
        # Routing reads what is in force at every scan: the next article is judged by it.
        return TuneReply(ok=bool(done), text=text, public=bool(done), adjustments=tuple(done))

    async def _learns(self, subs: tuple[Subscription, ...]) -> dict[int, str]:
        """Per subscription, how it learns from reactions (said only while feedback is on)."""
        if not self._tuner.enabled:
            return {}
        from bot.tuning import DEFAULT_LEARN

        modes = await self._tuner.store.learn_modes()
        return {s.id: f"; learns from reactions: {modes.get(s.id, DEFAULT_LEARN)}" for s in subs}

    # --- operator requests ---------------------------------------------------------------------

    def _owned_text(self, sub: Subscription) -> str:
        where = self._origin(sub) if self._origin else "the bot's config file"
        return (
            f"Subscription {sub.id} ({sub.platform}:{sub.channel}) is defined in {where}; the "
            "config file owns it: edit the file, and the next start applies it here."
        )

    async def _all_subscriptions(self) -> SubscriptionsReply:
        subs = tuple(await self._state.subscriptions())
        if not subs:
            return SubscriptionsReply(text="There are no subscriptions.")
        learns = await self._learns(subs)
        lines = [
            f"{s.id}: {s.describe(self._defaults.min_quality)}{learns.get(s.id, '')}"
            for s in subs
        ]
        learned = await self._learned()
        lines += [f"learned in {r.platform}:{r.channel}: {describe_state(r)}" for r in learned]
        return SubscriptionsReply(text="\n".join(lines), subscriptions=subs, learned=learned)

    async def _store(self, spec: SubscriptionSpec, source: SubscriptionSource) -> ChangeReply:
        now = self._clock.now()
        ran_before = await self._state.backfill_ran(spec.platform, spec.channel, spec.topics)
        stored, created = await self._state.add_subscription(
            subscription_from_spec(spec, source),
            lambda sub, art: judge(art, sub, self._defaults, now) is Verdict.DELIVER,
        )
        stored = await self._keep_channel_state(stored)
        if spec.learn is not None:
            await self._tuner.store.set_learn_mode(stored.id, LearnMode(spec.learn))
        verb = "Added" if created else "Updated"
        return ChangeReply(
            ok=True,
            text=f"{verb} subscription {stored.id}: {stored.describe(self._defaults.min_quality)}",
            subscription=stored,
            created=created,
            backfill_skipped=created and spec.backfill > 0 and ran_before,
            changed=1,
        )

    async def _keep_channel_state(self, stored: Subscription) -> Subscription:
        """A subscription joins its channel as the channel is: parked when the bot cannot post
        there (a missing secret), or while the channel is paused."""
        missing = self._blocked(stored.platform, stored.channel) if self._blocked else None
        if missing is not None:
            await self._state.park_channel(
                stored.platform, stored.channel, missing.reason, cause=missing.variable
            )
        elif not stored.is_parked:
            paused = [
                s for s in await self._state.subscriptions(stored.platform, stored.channel)
                if s.is_parked
            ]
            if paused:
                await self._state.park_channel(
                    stored.platform, stored.channel, paused[0].parked_reason or "paused",
                    cause=paused[0].parked_for,
                )
        return await self._state.subscription(stored.id) or stored

    async def _add(self, spec: SubscriptionSpec, source: SubscriptionSource) -> ChangeReply:
        existing = [
            s for s in await self._state.subscriptions(spec.platform, spec.channel)
            if topics_key(s.topics) == topics_key(spec.topics)
        ]
        if existing and existing[0].source is SubscriptionSource.CONFIG:
            return ChangeReply(ok=False, text=self._owned_text(existing[0]), refused=(existing[0],))
        return await self._store(spec, source)

    async def _edit(self, sub_id: int, spec: SubscriptionSpec) -> ChangeReply:
        current = await self._state.subscription(sub_id)
        if current is None:
            return ChangeReply(ok=False, text=f"There is no subscription {sub_id}.")
        if current.source is SubscriptionSource.CONFIG:
            return ChangeReply(ok=False, text=self._owned_text(current), refused=(current,))
        if (spec.platform, spec.channel) != (current.platform, current.channel):
            raise BadArgument(
                "An edit keeps the subscription's platform and channel; add a new subscription "
                "for another channel."
            )
        if topics_key(spec.topics) == topics_key(current.topics):
            return await self._store(replace(spec, backfill=current.backfill), current.source)
        twins = [
            s for s in await self._state.subscriptions(spec.platform, spec.channel)
            if topics_key(s.topics) == topics_key(spec.topics)
        ]
        if twins:
            raise BadArgument(
                f"This channel already has subscription {twins[0].id} to these topics: edit "
                "that one instead."
            )
        # New topics are a new row (a channel has one per set of topics): made first, so the
        # channel never has none and keeps its queued posts, then the old row goes. An edit
        # does not backfill.
        added = await self._store(replace(spec, backfill=0), current.source)
        await self._state.remove_subscription_by_id(sub_id)
        assert added.subscription is not None
        return replace(
            added,
            created=False,
            text=f"Updated subscription {sub_id}, now {added.subscription.id}: "
            f"{added.subscription.describe(self._defaults.min_quality)}",
        )

    async def _remove_one(self, sub_id: int) -> ChangeReply:
        found = await self._state.subscription(sub_id)
        if found is None:
            return ChangeReply(ok=False, text=f"There is no subscription {sub_id}.")
        if found.source is SubscriptionSource.CONFIG:
            return ChangeReply(ok=False, text=self._owned_text(found), refused=(found,))
        removed = await self._state.remove_subscription_by_id(sub_id)
        if not removed:
            return ChangeReply(ok=False, text=f"There is no subscription {sub_id}.")
        return ChangeReply(ok=True, text=f"Removed subscription {sub_id}.", changed=1)

    async def _remove_channel(self, platform: str, channel: str, topic: str | None) -> ChangeReply:
        owned = tuple(
            s
            for s in await self._state.subscriptions(platform, channel)
            if s.source is SubscriptionSource.CONFIG
            and (topic is None or topic.casefold() in {t.casefold() for t in s.topics})
        )
        count = await self._state.remove_subscriptions(platform, channel, topic)
        text = f"Changed {count} subscription(s)."
        if owned:
            text += " " + " ".join(self._owned_text(s) for s in owned)
        return ChangeReply(ok=count > 0, text=text, changed=count, refused=owned)

    async def _pause(self, platform: str, channel: str, who: str) -> ChangeReply:
        subs = await self._state.subscriptions(platform, channel)
        if not subs:
            return ChangeReply(ok=False, text=f"{platform}:{channel} has no subscriptions.")
        if any(s.is_parked for s in subs):
            return ChangeReply(ok=False, text=f"{platform}:{channel} is paused already.")
        # Paused like a channel the platform refused: its queued posts wait, and nothing new
        # is routed to it until it is resumed (a restart keeps it paused).
        reason = f"paused by {who}"
        count = await self._state.park_channel(platform, channel, reason)
        return ChangeReply(
            ok=True,
            text=f"Paused {platform}:{channel} ({count} subscription(s)); its queued posts wait.",
            changed=count,
        )

    async def _resume(self, platform: str, channel: str) -> ChangeReply:
        missing = self._blocked(platform, channel) if self._blocked else None
        if missing is not None:
            return ChangeReply(
                ok=False,
                text=f"{platform}:{channel} cannot be resumed from here: {missing.reason}.",
            )
        count = await self._state.unpark_channel(platform, channel)
        if not count:
            return ChangeReply(ok=False, text=f"{platform}:{channel} is not paused.")
        return ChangeReply(
            ok=True,
            text=f"Resumed {platform}:{channel} ({count} subscription(s)); its queued posts go "
            "now.",
            changed=count,
        )
