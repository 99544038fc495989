"""The subscription: which channel on which platform wants which articles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from enum import StrEnum

from bot.breaking import BreakingRule
from bot.schedule_time import (
    DEFAULT_DIGEST_AT,
    DEFAULT_TIMEZONE,
    DeliveryMode,
    QuietHours,
    Schedule,
    format_time_of_day,
)
from bot.validation import DEFAULT_BREAKING_OUTLETS, DEFAULT_BREAKING_QUALITY


class LateCoverage(StrEnum):
    """What a channel sees when another outlet's article joins a story it already got."""

    EDIT = "edit"  # the post is edited: the outlet joins its coverage (maybe as the headline)
    THREAD = "thread"  # a reply in the post's thread
    OFF = "off"  # stored, not shown


DEFAULT_HEADLINE_MARGIN = 20.0


class SubscriptionSource(StrEnum):
    # Synced from the config file at start-up; removed when it leaves the file. The file owns
    # it: the CLI and chat refuse to remove it.
    CONFIG = "config"
    CHAT = "chat"  # made with a slash command
    CLI = "cli"  # made with `newsbot subscriptions add`
    PANEL = "panel"  # made in the web panel


_MADE = {
    SubscriptionSource.CONFIG: "from the config file",
    SubscriptionSource.CHAT: "made in chat",
    SubscriptionSource.CLI: "made with the CLI",
    SubscriptionSource.PANEL: "made in the panel",
}


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    platform: str
    channel: str
    topics: tuple[str, ...] = ()  # empty: every topic
    min_quality: float | None = None  # None: the global floor
    include_unscored: bool | None = None  # None: the global setting
    providers_include: tuple[str, ...] = ()
    providers_exclude: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    max_age_days: float | None = None
    backfill: int = 0
    source: SubscriptionSource = SubscriptionSource.CLI
    created_at: float = 0.0
    parked_reason: str | None = None  # set when the platform refused the channel for good
    parked_for: str | None = None  # the secret it waits for, when parked for a missing one
    late_coverage: LateCoverage = LateCoverage.EDIT
    # A late article whose quality beats the headline's by this much becomes the headline.
    headline_margin: float = DEFAULT_HEADLINE_MARGIN
    mode: DeliveryMode = DeliveryMode.INSTANT
    digest_at: time = DEFAULT_DIGEST_AT  # daily: the time; hourly: its minute, each hour
    timezone: str = DEFAULT_TIMEZONE  # of digest_at and quiet_hours
    quiet_hours: QuietHours | None = None
    breaking_quality: float = DEFAULT_BREAKING_QUALITY
    breaking_outlets: int = DEFAULT_BREAKING_OUTLETS
    mention: str | None = None  # a role or user group id, pinged for breaking stories

    @property
    def is_parked(self) -> bool:
        return self.parked_reason is not None

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.mode, self.digest_at, self.timezone, self.quiet_hours)

    @property
    def breaking(self) -> BreakingRule:
        return BreakingRule(self.breaking_quality, self.breaking_outlets)

    def describe(self, global_floor: float | None = None) -> str:
        """`slack:C1 — AI; quality ≥ 60; keywords: model; made in chat`: the target, then every
        filter (`describe_filters`). The one description the CLI and chat show."""
        return f"{self.platform}:{self.channel} — {self.describe_filters(global_floor)}"

    def describe_filters(self, global_floor: float | None = None) -> str:
        """Every filter that is set, where the subscription came from, and why it is paused.
        `global_floor`: the floor it inherits, shown when it has none of its own."""
        parts = [", ".join(self.topics) if self.topics else "all topics"]
        if self.min_quality is not None:
            parts.append(f"quality ≥ {self.min_quality:g}")
        elif global_floor is not None:
            parts.append(f"quality ≥ {global_floor:g} (the global floor)")
        else:
            parts.append("the global quality floor")
        if self.include_unscored is not None:
            parts.append(
                "unscored articles too" if self.include_unscored else "no unscored articles"
            )
        if self.providers_include:
            parts.append("only from " + ", ".join(self.providers_include))
        if self.providers_exclude:
            parts.append("not from " + ", ".join(self.providers_exclude))
        if self.keywords:
            parts.append("keywords: " + ", ".join(self.keywords))
        if self.max_age_days is not None:
            parts.append(f"published within {self.max_age_days:g} days")
        if self.late_coverage is not LateCoverage.EDIT:
            parts.append(f"late coverage: {self.late_coverage}")
        if self.headline_margin != DEFAULT_HEADLINE_MARGIN:
            parts.append(f"a new headline when {self.headline_margin:g} points better")
        parts.extend(self._describe_timing())
        parts.append(_MADE[self.source])
        if self.parked_reason:
            parts.append(f"paused: {self.parked_reason}")
        return "; ".join(parts)


    def _describe_timing(self) -> list[str]:
        """Digests, quiet hours, what is breaking and who it pings: each setting that is set
        (the breaking rule whenever something depends on it)."""
        parts = []
        at = format_time_of_day(self.digest_at)
        if self.mode is DeliveryMode.DAILY:
            parts.append(f"daily digest at {at} {self.timezone}")
        elif self.mode is DeliveryMode.HOURLY:
            parts.append(f"hourly digest at :{at[-2:]} past each hour ({self.timezone})")
        if self.quiet_hours is not None:
            parts.append(f"quiet hours {self.quiet_hours} {self.timezone}")
        if self.mode is DeliveryMode.INSTANT and self.quiet_hours is None and (
            self.timezone != DEFAULT_TIMEZONE or self.digest_at != DEFAULT_DIGEST_AT
        ):
            parts.append(f"digest time {at} {self.timezone} (used in digest mode)")
        if (
            self.quiet_hours is not None
            or self.mention is not None
            or self.breaking_quality != DEFAULT_BREAKING_QUALITY
            or self.breaking_outlets != DEFAULT_BREAKING_OUTLETS
        ):
            parts.append(
                f"breaking: quality ≥ {self.breaking_quality:g} or "
                f"{self.breaking_outlets}+ outlets"
            )
        if self.mention is not None:
            parts.append(f"mentions {self.mention} for breaking stories")
        return parts


def topics_key(topics: tuple[str, ...]) -> str:
    """One channel has at most one subscription per set of topics, whatever their case/order."""
    return "\x1f".join(sorted({t.casefold() for t in topics}))
