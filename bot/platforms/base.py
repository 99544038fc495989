"""The small protocol every platform adapter implements, and the errors it maps its SDK's
errors to, once, so that delivery never sees a platform's own exception types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.articles import Article
from bot.digest import Digest


class RateScope(StrEnum):
    """What a rate limit the platform reported covers."""

    BUCKET = "bucket"  # the route's own bucket (a channel, a webhook): only its sends wait
    PLATFORM = "platform"  # every request of ours to the platform (Discord's global limit)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """What the platform said about the rate-limit bucket a request used, read from its answer
    (headers and body). Adapters report it; `bot.pacing` decides what it means for the next
    send. Every field is optional: a platform says what it says."""

    bucket: str | None = None  # Discord's X-RateLimit-Bucket: routes that share a limit
    limit: int | None = None
    remaining: int | None = None
    reset_after_s: float | None = None
    retry_after_s: float | None = None  # set on a refusal (429)
    scope: RateScope = RateScope.BUCKET


@dataclass(frozen=True, slots=True)
class SentRef:
    """Where a posted message lives on the platform (its message id or timestamp), and what the
    platform said about the bucket the post used."""

    message_id: str
    rate: RateLimit | None = None
    thread_ref: str | None = None  # a reply: the thread it went to (for the next replies)


class FailureScope(StrEnum):
    DELIVERY = "delivery"  # this payload was refused (a rendering bug): never retry it
    CHANNEL = "channel"  # the channel refused us (gone, no access): park its subscriptions
    PLATFORM = "platform"  # the credentials are wrong: stop the platform


class TransientError(Exception):
    """Try again later: after `retry_after_s` when the platform said, else with backoff.
    `maybe_sent`: no answer came (a dropped connection, a timeout, a 5xx after the request was
    read), so the post may exist: the next attempt asks `find_sent` before posting again."""

    def __init__(
        self,
        reason: str,
        retry_after_s: float | None = None,
        maybe_sent: bool = False,
        rate: RateLimit | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.maybe_sent = maybe_sent
        self.rate = rate

    @property
    def rate_limited(self) -> bool:
        """The platform refused for the rate (a 429) and said how long to wait."""
        return self.retry_after_s is not None


class PermanentError(Exception):
    """Retrying cannot help; `scope` says what to stop."""

    def __init__(
        self, reason: str, scope: FailureScope, rate: RateLimit | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.scope = scope
        self.rate = rate  # a refusal still spends the bucket's budget


class Notifier(Protocol):
    """Posts articles to one platform."""

    @property
    def platform(self) -> str: ...

    async def start(self) -> None:
        """Log in; raise PermanentError(scope=PLATFORM) when the credentials are refused."""
        ...

    async def send(
        self, delivery_key: str, channel: str, article: Article, mention: str | None = None
    ) -> SentRef:
        """Post `article` to `channel`. `delivery_key` is the same for every retry, so the
        platform (or we) can recognise a repeat. `mention`: the role or user group id to ping
        (a breaking story); nothing else may ping."""
        ...

    async def send_digest(
        self, delivery_key: str, channel: str, digest: Digest, mention: str | None = None
    ) -> SentRef:
        """Post a digest (its top stories, one message) to `channel`, like `send`."""
        ...

    def fingerprint(self, channel: str, article: Article) -> str:
        """A digest of what a message of `article` shows in `channel`: an edit that would
        show the same is not sent."""
        ...

    async def edit(
        self, channel: str, message_id: str, article: Article, mention: str | None = None
    ) -> SentRef:
        """Make a message already posted show `article` (the story as it is now), keeping the
        `mention` it was posted with (an edit pings nobody anew)."""
        ...

    async def reply(
        self, delivery_key: str, channel: str, parent: SentRef, article: Article
    ) -> SentRef:
        """Post `article` in the thread of the message `parent` (starting the thread if it
        has none yet: `parent.thread_ref`); the answer names the thread."""
        ...

    async def retract(self, channel: str, message_id: str) -> SentRef:
        """Withdraw a posted message (its story turned out to be another post's); a message
        already gone counts as withdrawn."""
        ...

    async def find_sent(self, delivery_key: str, channel: str) -> SentRef | None:
        """After a crash mid-send: the message this delivery already posted, if any can be
        found. None means "not found" (send again)."""
        ...

    async def aclose(self) -> None: ...
