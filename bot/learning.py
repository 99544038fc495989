"""What a channel's reactions teach: the one rule, as pure functions of (votes, now, settings).

The rule (README: "Learning from reactions"). Per channel, for each topic and each outlet
(provider) of the stories it reacted to, over the last `window_days`, counting only votes cast
after that subject's previous adjustment (applied, suggested, dismissed or undone: votes are
spent once):

- net = thumbs-up minus thumbs-down (each person counts once per story and sign), from at
  least `min_people` different people;
- net <= -3: the channel's floor for that topic rises by 20 (an outlet is excluded instead);
- net >= +3: the floor for that topic (or outlet) drops by 10;
- the learned shift of one subject never goes beyond 40 either way from the configured floor,
  and the floor it gives never below 0.

Votes a change already explains do not count again: topics are weighed the most specific first
(on the fewest of the channel's posts), then outlets, so a channel that rejects Power Apps
stories (also tagged AI, all from one outlet) has told us about Power Apps, not about all of AI
or everything the outlet writes.

Routing applies what was learned through `Learned` (one channel's applied adjustments): an
article's floor moves by the largest shift among its topics and its outlet (a raise wins over a
drop), and an excluded outlet is held back whatever its quality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot.articles import Article

DAY_S = 86400.0


class Kind(StrEnum):
    TOPIC = "topic"
    PROVIDER = "provider"


class LearnMode(StrEnum):
    """Per subscription: what the channel's votes may do."""

    OFF = "off"  # nothing: its votes are still counted, its routing ignores what was learned
    SUGGEST = "suggest"  # say what the votes suggest; someone who may manage the channel applies
    AUTO = "auto"  # apply at once, say so in the channel, with an undo button


# When a channel's subscriptions disagree, the most cautious mode decides for the channel.
_CAUTION = {LearnMode.OFF: 0, LearnMode.SUGGEST: 1, LearnMode.AUTO: 2}


def channel_mode(modes: Iterable[LearnMode]) -> LearnMode:
    chosen = list(modes)
    return min(chosen, key=_CAUTION.__getitem__) if chosen else LearnMode.OFF


@dataclass(frozen=True, slots=True)
class LearnRule:
    window_days: float = 30.0
    min_people: int = 2
    threshold: int = 3  # |net| that moves the floor
    raise_by: float = 20.0
    lower_by: float = 10.0
    max_shift: float = 40.0


@dataclass(frozen=True, slots=True)
class Vote:
    """One person's sign (+1 or -1) on one story we posted in the channel."""

    story_id: int
    topics: tuple[str, ...]
    provider: str  # the outlet's name, else its domain
    sign: int
    voter: str  # a salted hash: counts a person once, says nothing about who
    at: float


@dataclass(frozen=True, slots=True)
class Subject:
    kind: Kind
    key: str  # case-folded: "power apps"

    @staticmethod
    def of(kind: Kind, name: str) -> Subject:
        return Subject(kind, fold(name))


@dataclass(frozen=True, slots=True)
class Tally:
    """The votes behind a change: counted once, kept with it."""

    up: int
    down: int
    people: int
    since: float  # the first vote counted
    until: float  # the last

    @property
    def net(self) -> int:
        return self.up - self.down


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a subject stands in a channel before this evaluation."""

    shift: float = 0.0  # the sum of the applied shifts
    excluded: bool = False
    counted_from: float = float("-inf")  # votes after this count (the last adjustment's time)
    pending: bool = False  # a suggestion waits for an answer: no second one meanwhile


@dataclass(frozen=True, slots=True)
class Change:
    """What the rule decides for one subject of one channel."""

    kind: Kind
    subject: str  # as the stories spelled it
    shift: float  # points added to the floor (negative: lowered); 0 for an exclusion
    exclude: bool
    tally: Tally

    @property
    def key(self) -> Subject:
        return Subject.of(self.kind, self.subject)


def fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _tally(votes: Sequence[Vote]) -> Tally:
    return Tally(
        up=sum(1 for v in votes if v.sign > 0),
        down=sum(1 for v in votes if v.sign < 0),
        people=len({v.voter for v in votes}),
        since=min(v.at for v in votes),
        until=max(v.at for v in votes),
    )


def _step(kind: Kind, net: int, standing: Standing, rule: LearnRule) -> tuple[float, bool]:
    """(shift, exclude) one evaluation may take for a subject with this net; (0, False): none."""
    if net <= -rule.threshold:
        if kind is Kind.PROVIDER:
            return (0.0, not standing.excluded)
        return (max(0.0, min(rule.raise_by, rule.max_shift - standing.shift)), False)
    if net >= rule.threshold:
        return (-max(0.0, min(rule.lower_by, rule.max_shift + standing.shift)), False)
    return (0.0, False)


def decide(
    votes: Iterable[Vote],
    standings: Mapping[Subject, Standing],
    rule: LearnRule,
    now: float,
    posts_per_topic: Mapping[str, int] | None = None,
) -> list[Change]:
    """The changes one channel's votes call for now: topics first, the most specific first
    (those on the fewest of the channel's posts, `posts_per_topic` by folded name), then
    outlets. Votes a change already explains do not count again for a broader topic or for
    the outlet: a channel that rejects Power Apps stories (also tagged AI, from one outlet)
    has told us about Power Apps, not about all of AI or all the outlet writes."""
    since = now - rule.window_days * DAY_S
    recent = [v for v in votes if since <= v.at <= now]
    names: dict[Subject, str] = {}
    by_subject: dict[Subject, list[Vote]] = {}
    for vote in sorted(recent, key=lambda v: v.at):
        named = [(Kind.TOPIC, t) for t in vote.topics]
        if vote.provider:
            named.append((Kind.PROVIDER, vote.provider))
        seen: set[Subject] = set()
        for kind, name in named:
            subject = Subject.of(kind, name)
            if subject in seen or not subject.key:
                continue
            seen.add(subject)
            names.setdefault(subject, " ".join(name.split()))
            by_subject.setdefault(subject, []).append(vote)
    counts = posts_per_topic or {}

    def specificity(subject: Subject) -> tuple[int, int]:
        if subject.kind is Kind.PROVIDER:
            return (1, 0)  # after every topic
        return (0, counts.get(subject.key, len({v.story_id for v in by_subject[subject]})))

    changes: list[Change] = []
    # Per sign, the votes (by identity) the changes of earlier groups already explain.
    explained: dict[int, set[int]] = {}
    ordered = sorted(by_subject, key=lambda s: (specificity(s), s.key))
    groups: dict[tuple[int, int], list[Subject]] = {}
    for subject in ordered:
        groups.setdefault(specificity(subject), []).append(subject)
    for group in groups.values():
        found: dict[int, set[int]] = {}
        for subject in group:
            standing = standings.get(subject, Standing())
            mine = [v for v in by_subject[subject] if id(v) not in explained.get(v.sign, set())]
            # Votes an earlier adjustment of this subject spent (applied, dismissed or undone
            # alike) are its own: never blamed on a broader topic or the outlet afterwards.
            for v in mine:
                if v.at <= standing.counted_from:
                    found.setdefault(v.sign, set()).add(id(v))
            counted = [v for v in mine if v.at > standing.counted_from]
            if not counted:
                continue
            tally = _tally(counted)
            if tally.people < rule.min_people or abs(tally.net) < rule.threshold:
                continue
            # The subject explains these votes even when it cannot move further (at its
            # limit, or a suggestion of it waits for an answer).
            sign = -1 if tally.net < 0 else 1
            found.setdefault(sign, set()).update(id(v) for v in counted if v.sign == sign)
            if standing.pending:
                continue
            shift, exclude = _step(subject.kind, tally.net, standing, rule)
            if shift == 0.0 and not exclude:
                continue
            changes.append(Change(subject.kind, names[subject], shift, exclude, tally))
        for sign, ids in found.items():
            explained.setdefault(sign, set()).update(ids)
    return changes


# --- what routing applies ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A learned adjustment in force in a channel, with the votes that caused it."""

    id: int
    kind: Kind
    subject: str
    shift: float
    exclude: bool
    tally: Tally
    applied_at: float

    @property
    def key(self) -> Subject:
        return Subject.of(self.kind, self.subject)


@dataclass(frozen=True, slots=True)
class LearnedShift:
    """An article's floor as the channel's adjustments move it, and which ones do."""

    shift: float
    because: tuple[Adjustment, ...]  # the adjustments of the subject that decides the shift


def _provider_names(article: Article) -> set[str]:
    names = {fold(article.provider.name), fold(article.provider.domain).removeprefix("www.")}
    return names - {""}


@dataclass(frozen=True, slots=True)
class Learned:
    """One channel's adjustments in force, as routing applies them."""

    adjustments: tuple[Adjustment, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.adjustments)

    def _matching(self, article: Article) -> dict[Subject, list[Adjustment]]:
        topics = {fold(t) for t in article.topics}
        providers = _provider_names(article)
        found: dict[Subject, list[Adjustment]] = {}
        for adjustment in self.adjustments:
            key = adjustment.key
            if (key.kind is Kind.TOPIC and key.key in topics) or (
                key.kind is Kind.PROVIDER and key.key in providers
            ):
                found.setdefault(key, []).append(adjustment)
        return found

    def exclusion(self, article: Article) -> Adjustment | None:
        """The adjustment that excludes the article's outlet here, if one does."""
        for adjustments in self._matching(article).values():
            for adjustment in adjustments:
                if adjustment.exclude:
                    return adjustment
        return None

    def shift_for(self, article: Article) -> LearnedShift:
        """The largest summed shift among the article's subjects (a raise wins)."""
        best: LearnedShift | None = None
        for adjustments in self._matching(article).values():
            moving = tuple(a for a in adjustments if not a.exclude)
            if not moving:
                continue
            total = sum(a.shift for a in moving)
            if best is None or total > best.shift:
                best = LearnedShift(total, moving)
        return best or LearnedShift(0.0, ())


def learned_floor(base: float, shift: float) -> float:
    """Never below 0, whatever was learned."""
    return max(0.0, base + shift)


def combined_tally(adjustments: Sequence[Adjustment]) -> Tally:
    """The votes behind several adjustments of one subject, as one line can say them."""
    return Tally(
        up=sum(a.tally.up for a in adjustments),
        down=sum(a.tally.down for a in adjustments),
        people=max((a.tally.people for a in adjustments), default=0),
        since=min((a.tally.since for a in adjustments), default=0.0),
        until=max((a.tally.until for a in adjustments), default=0.0),
    )
