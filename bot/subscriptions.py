"""The subscription: which channel on which platform wants which articles."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


_MADE = {
    SubscriptionSource.CONFIG: "from the config file",
    SubscriptionSource.CHAT: "made in chat",
    SubscriptionSource.CLI: "made with the CLI",
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

    @property
    def is_parked(self) -> bool:
        return self.parked_reason is not None

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
        parts.append(_MADE[self.source])
        if self.parked_reason:
            parts.append(f"paused: {self.parked_reason}")
        return "; ".join(parts)


def topics_key(topics: tuple[str, ...]) -> str:
    """One channel has at most one subscription per set of topics, whatever their case/order."""
    return "\x1f".join(sorted({t.casefold() for t in topics}))
