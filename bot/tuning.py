"""Reactions in, adjustments out: counts a reaction on one of our posts, asks the rule
(bot/learning.py) what the channel's votes call for, and records, announces, applies,
dismisses or undoes adjustments. Platform-neutral: adapters turn their events into `Reaction`s
and post the `Notice`s this returns through their own `Announcer`."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from bot.clock import Clock
from bot.config import FeedbackConfig
from bot.feedback_store import AdjustmentRow, FeedbackStore, Status, voter_hash
from bot.learning import (
    DAY_S,
    Adjustment,
    Kind,
    Learned,
    LearnMode,
    LearnRule,
    channel_mode,
    combined_tally,
    decide,
    learned_floor,
)
from bot.state import State
from bot.subscriptions import Subscription

log = logging.getLogger(__name__)

# Suggestions are said in the channel at most this often (and whenever someone asks).
SUGGEST_EVERY_S = 7 * DAY_S
DEFAULT_LEARN = LearnMode.SUGGEST
_SKIN_TONE = re.compile(r"::skin-tone-\d$|[\U0001F3FB-\U0001F3FF]")


class ReactionOutcome(StrEnum):
    COUNTED = "counted"
    UNCOUNTED = "uncounted"  # a reaction taken back
    REPEAT = "repeat"  # counted (or uncounted) already
    NOT_A_SIGN = "not a sign"  # an emoji that is neither up nor down
    NOT_OURS = "not ours"  # a message the outbox does not know we posted
    OURSELVES = "ourselves"  # the bot's own reaction
    OFF = "off"  # feedback is not enabled


@dataclass(frozen=True, slots=True)
class Reaction:
    """A reaction added to (or removed from) a message, as an adapter read it."""

    platform: str
    channel: str
    message_ref: str  # the platform's id of the message (Discord: its id; Slack: its ts)
    user_id: str  # hashed before it is stored; never logged
    emoji: str  # Discord: the emoji ("👍"); Slack: the name without colons ("+1")
    added: bool
    by_us: bool = False  # the bot's own reaction


class Action(StrEnum):
    APPLY = "apply"
    DISMISS = "dismiss"
    UNDO = "undo"


@dataclass(frozen=True, slots=True)
class Button:
    action: Action
    adjustment_id: int
    label: str

    @property
    def custom_id(self) -> str:
        """How a button names itself to the platform (and comes back): `newsbot:tune:undo:7`."""
        return f"{BUTTON_PREFIX}{self.action}:{self.adjustment_id}"


BUTTON_PREFIX = "newsbot:tune:"
_BUTTON = re.compile(re.escape(BUTTON_PREFIX) + r"(apply|dismiss|undo):(\d{1,18})")


def parse_button(custom_id: str) -> tuple[Action, int] | None:
    match = _BUTTON.fullmatch(custom_id)
    return (Action(match[1]), int(match[2])) if match else None


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for a channel: plain text (adapters escape it) and buttons."""

    platform: str
    channel: str
    text: str
    buttons: tuple[Button, ...] = ()


# Posts a notice; returns the platform's id of the message (None when it could not).
Announcer = Callable[[Notice], Awaitable[str | None]]


@runtime_checkable
class PostsNotices(Protocol):
    """A platform adapter that can post a notice with buttons in a channel."""

    async def post_notice(self, notice: Notice) -> str | None: ...


def _day(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")


def _votes(adjustments: Sequence[Adjustment]) -> str:
    tally = combined_tally(adjustments)
    parts = []
    if tally.down:
        parts.append(f"{tally.down} thumbs-down")
    if tally.up:
        parts.append(f"{tally.up} thumbs-up")
    people = f"{tally.people} {'person' if tally.people == 1 else 'people'}"
    return f"{' and '.join(parts) or 'no votes'} from {people} since {_day(tally.since)}"


def describe_change(row: AdjustmentRow, base_floor: float | None = None) -> str:
    """One adjustment in words: `Power Apps: the floor here rises by 20 (to 60), after 6
    thumbs-down from 2 people since 2026-12-08`."""
    what = "outlet" if row.kind is Kind.PROVIDER else "topic"
    if row.exclude:
        effect = f"{row.subject} ({what}): not posted here any more"
    else:
        verb = "rises" if row.shift > 0 else "drops"
        to = f" (to {learned_floor(base_floor, row.shift):g})" if base_floor is not None else ""
        effect = f"{row.subject} ({what}): the floor here {verb} by {abs(row.shift):g}{to}"
    return f"{effect}, after {_votes([row.in_force()])}"


def describe_state(row: AdjustmentRow) -> str:
    """For listings: the change, its id and where it stands."""
    status = {
        Status.APPLIED: "in force",
        Status.SUGGESTED: "suggested",
        Status.DISMISSED: "dismissed",
        Status.UNDONE: "undone",
    }[row.status]
    return f"#{row.id} {describe_change(row)} [{status}]"


def explain_hold(adjustments: Sequence[Adjustment], floor: float) -> str:
    """Why an article is held back by what was learned: `Power Apps floor here is 60 after 6
    thumbs-down from 2 people since 2026-12-08`."""
    first = adjustments[0]
    ids = ", ".join(f"#{a.id}" for a in adjustments)
    undo = f"learned from reactions ({ids}); undo with /news tune undo"
    if first.exclude:
        return f"{first.subject} is excluded here after {_votes(adjustments)} ({undo})"
    total = sum(a.shift for a in adjustments)
    return (
        f"{first.subject} floor here is {learned_floor(floor, total):g} after "
        f"{_votes(adjustments)} ({undo})"
    )


class Tuner:
    """Feedback for one running bot (or one CLI command: then without announcers)."""

    def __init__(
        self,
        store: FeedbackStore,
        state: State,
        config: FeedbackConfig,
        clock: Clock,
        *,
        global_floor: float,
        salt: str | None = None,
        announcers: Mapping[str, Announcer] | None = None,
    ) -> None:
        self.store = store
        self._state = state
        self.config = config
        self._clock = clock
        self._global_floor = global_floor
        self._salt = salt
        self._announcers = dict(announcers or {})
        self.rule = LearnRule(window_days=config.window_days, min_people=config.min_people)
        # One evaluation at a time per channel: reactions arrive concurrently (discord.py runs
        # each event in a task of its own), and two evaluations reading the same standing would
        # both apply the same change.
        self._channel_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._up = {self._plain(e) for e in config.up}
        self._down = {self._plain(e) for e in config.down}

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @staticmethod
    def _plain(emoji: str) -> str:
        """Skin tones count as the plain emoji (Slack `+1::skin-tone-3`, Discord 👍🏽)."""
        return _SKIN_TONE.sub("", emoji.strip())

    def sign_of(self, emoji: str) -> int | None:
        plain = self._plain(emoji)
        if plain in self._up:
            return 1
        if plain in self._down:
            return -1
        return None

    # --- reactions ------------------------------------------------------------------------

    async def on_reaction(self, reaction: Reaction) -> ReactionOutcome:
        """Count or uncount a reaction on one of our posts, then see what the votes call for."""
        if not self.enabled:
            return ReactionOutcome.OFF
        if reaction.by_us:
            return ReactionOutcome.OURSELVES
        sign = self.sign_of(reaction.emoji)
        if sign is None:
            return ReactionOutcome.NOT_A_SIGN
        post = await self.store.our_post(
            reaction.platform, reaction.channel, reaction.message_ref
        )
        if post is None:
            return ReactionOutcome.NOT_OURS
        voter = await self._voter(reaction)
        emoji = self._plain(reaction.emoji)
        if reaction.added:
            article = await self._state.get_article(post.article_key)
            topics = article.topics if article else ()
            provider = (article.provider.name or article.provider.domain) if article else ""
            changed = await self.store.add_vote(
                reaction.platform, reaction.channel, post.story_id, (topics, provider), sign,
                voter, emoji, self._clock.time(),
            )
        else:
            changed = await self.store.remove_vote(
                reaction.platform, reaction.channel, post.story_id, sign, voter, emoji
            )
        if not changed:
            return ReactionOutcome.REPEAT
        log.info(
            "feedback: a %s %s on story %d in %s:%s",
            "thumbs-up" if sign > 0 else "thumbs-down",
            "counted" if reaction.added else "taken back",
            post.story_id, reaction.platform, reaction.channel,
        )
        await self.evaluate(reaction.platform, reaction.channel)
        return ReactionOutcome.COUNTED if reaction.added else ReactionOutcome.UNCOUNTED

    async def _voter(self, reaction: Reaction) -> str:
        if self._salt is None:
            self._salt = await self.store.salt()
        return voter_hash(self._salt, reaction.platform, reaction.user_id)

    # --- what the votes call for ---------------------------------------------------------

    async def mode_of(self, platform: str, channel: str) -> LearnMode:
        subs = await self._state.subscriptions(platform, channel)
        modes = await self.store.learn_modes()
        return channel_mode(modes.get(s.id, DEFAULT_LEARN) for s in subs)

    async def base_floor(self, platform: str, channel: str) -> float:
        """The configured floor the channel's notices speak of (its first subscription's)."""
        subs = await self._state.subscriptions(platform, channel)
        floors = [s.min_quality for s in subs if s.min_quality is not None]
        return floors[0] if floors else self._global_floor

    async def evaluate(self, platform: str, channel: str) -> list[AdjustmentRow]:
        """Record what the channel's votes call for now: applied and announced (auto), or
        suggested (said in the channel at most weekly). Returns the new adjustments."""
        lock = self._channel_locks.setdefault((platform, channel), asyncio.Lock())
        async with lock:
            return await self._evaluate(platform, channel)

    async def _evaluate(self, platform: str, channel: str) -> list[AdjustmentRow]:
        mode = await self.mode_of(platform, channel)
        if not self.enabled or mode is LearnMode.OFF:
            return []
        now = self._clock.time()
        since = now - self.rule.window_days * DAY_S
        votes = await self.store.votes(platform, channel, since)
        changes = decide(
            votes, await self.store.standings(platform, channel), self.rule, now,
            await self.store.posts_per_topic(platform, channel, since),
        )
        if not changes:
            return []
        status = Status.APPLIED if mode is LearnMode.AUTO else Status.SUGGESTED
        rows = await self.store.add_adjustments(platform, channel, changes, status, now)
        for row in rows:
            log.info("feedback: %s:%s %s", platform, channel, describe_state(row))
        if mode is LearnMode.AUTO:
            await self._announce(await self.applied_notice(platform, channel, rows), rows)
        else:
            last = await self.store.suggested_at(platform, channel)
            if last is None or now - last >= SUGGEST_EVERY_S:
                pending = await self.store.adjustments(platform, channel, (Status.SUGGESTED,))
                if await self._announce(
                    await self.suggestion_notice(platform, channel, pending), pending
                ):
                    await self.store.mark_suggested(platform, channel, now)
        return rows

    async def due_suggestions(self) -> int:
        """Channels with suggestions not yet said whose week has passed: say them now (the
        periodic half of "at most weekly"). Returns how many channels heard them."""
        told = 0
        now = self._clock.time()
        pending = await self.store.adjustments(statuses=(Status.SUGGESTED,))
        channels: dict[tuple[str, str], list[AdjustmentRow]] = {}
        for row in pending:
            channels.setdefault((row.platform, row.channel), []).append(row)
        for (platform, channel), rows in channels.items():
            if all(r.notice_ref for r in rows):
                continue  # every one of them was said already
            last = await self.store.suggested_at(platform, channel)
            if last is not None and now - last < SUGGEST_EVERY_S:
                continue
            if await self._announce(await self.suggestion_notice(platform, channel, rows), rows):
                await self.store.mark_suggested(platform, channel, now)
                told += 1
        return told

    async def _announce(self, notice: Notice, rows: Sequence[AdjustmentRow]) -> bool:
        announcer = self._announcers.get(notice.platform)
        if announcer is None:
            return False
        try:
            ref = await announcer(notice)
        except Exception:
            log.exception("feedback: could not post a notice in %s:%s", notice.platform,
                          notice.channel)
            return False
        if ref:
            await self.store.set_notice([r.id for r in rows], ref)
        return ref is not None

    async def applied_notice(
        self, platform: str, channel: str, rows: Sequence[AdjustmentRow]
    ) -> Notice:
        floor = await self.base_floor(platform, channel)
        lines = ["Learned from this channel's reactions:"]
        lines += [f"- {describe_change(r, floor)}" for r in rows]
        lines.append("Undo to go back to what it was.")
        buttons = tuple(Button(Action.UNDO, r.id, f"Undo #{r.id}") for r in rows)
        return Notice(platform, channel, "\n".join(lines), buttons)

    async def suggestion_notice(
        self, platform: str, channel: str, rows: Sequence[AdjustmentRow]
    ) -> Notice:
        floor = await self.base_floor(platform, channel)
        if not rows:
            return Notice(platform, channel, "The reactions here suggest no change right now.")
        lines = ["This channel's reactions suggest:"]
        lines += [f"- #{r.id} {describe_change(r, floor)}" for r in rows]
        lines.append("Apply or dismiss each (whoever may change this channel's subscriptions).")
        buttons: list[Button] = []
        for r in rows:
            buttons += [
                Button(Action.APPLY, r.id, f"Apply #{r.id}"),
                Button(Action.DISMISS, r.id, f"Dismiss #{r.id}"),
            ]
        return Notice(platform, channel, "\n".join(lines), tuple(buttons))

    # --- decisions ------------------------------------------------------------------------

    async def act(
        self, action: Action, platform: str, channel: str, adjustment_id: int | None, who: str
    ) -> tuple[list[AdjustmentRow], str]:
        """Apply or dismiss suggestions, or undo adjustments in force, of this channel: the
        one `adjustment_id` names, else all that the action can take. Returns what changed
        and a sentence saying so."""
        wanted_from = Status.APPLIED if action is Action.UNDO else Status.SUGGESTED
        rows = await self.store.adjustments(platform, channel, (wanted_from,))
        if adjustment_id is not None:
            rows = [r for r in rows if r.id == adjustment_id]
            if not rows:
                found = await self.store.adjustment(adjustment_id)
                if found is None or (found.platform, found.channel) != (platform, channel):
                    return [], f"There is no learned adjustment #{adjustment_id} here."
                return [], f"#{adjustment_id} is {found.status} already."
        if not rows:
            what = "in force" if action is Action.UNDO else "waiting for an answer"
            return [], f"No learned adjustment is {what} here."
        to = {Action.APPLY: Status.APPLIED, Action.DISMISS: Status.DISMISSED,
              Action.UNDO: Status.UNDONE}[action]
        now = self._clock.time()
        done = [r for r in [await self.store.decide(r.id, to, who, now) for r in rows] if r]
        verb = {Action.APPLY: "Applied", Action.DISMISS: "Dismissed", Action.UNDO: "Undone"}
        for row in done:
            log.info("feedback: %s:%s %s", platform, channel, describe_state(row))
        text = f"{verb[action]}: " + "; ".join(
            f"#{r.id} {describe_change(r)}" for r in done
        )
        if action is Action.UNDO:
            text += ". New articles are judged as before (articles held back meanwhile stay " \
                "as they were)."
        return done, text


async def learned_for_routing(
    store: FeedbackStore, subscriptions: Iterable[Subscription], enabled: bool
) -> dict[int, Learned]:
    """Per subscription id, what its channel learned, for those that learn (none while
    feedback is off, or for a subscription whose `learn` is "off")."""
    if not enabled:
        return {}
    in_force = await store.learned()
    if not in_force:
        return {}
    modes = await store.learn_modes()
    return {
        sub.id: in_force[(sub.platform, sub.channel)]
        for sub in subscriptions
        if (sub.platform, sub.channel) in in_force
        and modes.get(sub.id, DEFAULT_LEARN) is not LearnMode.OFF
    }
