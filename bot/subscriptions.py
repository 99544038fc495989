"""The subscription: which channel on which platform wants which articles."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SubscriptionSource(StrEnum):
    # Synced from the config file at start-up; removed when it leaves the file. The file owns
    # it: the CLI and chat refuse to remove it.
    CONFIG = "config"
    CHAT = "chat"  # made with a slash command
    CLI = "cli"  # made with `newsbot subscriptions add`


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

    @property
    def is_parked(self) -> bool:
        return self.parked_reason is not None

    def describe(self) -> str:
        topics = ", ".join(self.topics) if self.topics else "all topics"
        floor = "global floor" if self.min_quality is None else f"quality ≥ {self.min_quality:g}"
        return f"{self.platform}:{self.channel} — {topics} ({floor})"


def topics_key(topics: tuple[str, ...]) -> str:
    """One channel has at most one subscription per set of topics, whatever their case/order."""
    return "\x1f".join(sorted({t.casefold() for t in topics}))
