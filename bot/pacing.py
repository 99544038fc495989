"""When may the next send go: rate-limit buckets per platform, from what each platform says.

Pure logic on a passed monotonic `now` (seconds): nothing here sleeps, reads a clock or does
I/O. The scheduler asks `platform_ready_at` and `channel_ready_at` before a send, reports
`dispatched` as it starts one, `take_platform` as its request leaves, and `answered` with what
the platform said (a `RateLimit` read from its headers, or None), and waits on a timer for
whatever is not ready. The aim is to pace
from what a platform says *before* it says no: a 429 still happens at times, but a bucket that
answered 429 gets nothing more until the wait it named is over.

- Discord: each route's bucket from the `X-RateLimit-*` headers (routes that report the same
  `X-RateLimit-Bucket` share one, per channel or webhook), and the bot's global limit as a
  token bucket of our own.
- Slack: one post per channel per second, and a workspace-wide rate that is learned down when
  Slack refuses two channels in a short while (one refusal slows its own channel).
- The terminal: no limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.platforms.base import RateLimit, RateScope

WEBHOOK_PREFIX = "webhook:"
# What a send does, for the platforms whose limits differ by request (Discord: a post, an edit
# and a reply in a thread each have their own bucket per channel).
POST = "post"


class Pacer(Protocol):
    def platform_ready_at(self, now: float) -> float:
        """The earliest moment any send to the platform may go (a global limit)."""
        ...

    def channel_ready_at(self, channel: str, now: float, route: str = POST) -> float:
        """The earliest moment a send to `channel` may go, as far as its own bucket goes."""
        ...

    def dispatched(self, channel: str, now: float, route: str = POST) -> None:
        """A send to `channel` is on its way: it takes the channel's bucket's budget."""
        ...

    def share(self, fraction: float, now: float) -> None:
        """Beside other workers: pace at `fraction` of the platform-wide rate."""
        ...

    def take_platform(self, now: float) -> None:
        """A request leaves now: it takes its share of the platform-wide budget. Taken at the
        last moment before the request, so that whatever delays a send before it (the
        database, the event loop) cannot bunch requests up beyond the platform's limit."""
        ...

    def answered(
        self, channel: str, rate: RateLimit | None, now: float, route: str = POST
    ) -> None:
        """The platform answered that send (success or not), saying `rate` about its bucket."""
        ...

    def prune(self, now: float) -> None:
        """Forget buckets that no longer hold anything back, so memory stays flat in the
        number of channels ever served."""
        ...


class TokenBucket:
    """`rate_per_s` tokens a second, at most `capacity` saved; each send takes one. A refusal
    can block it outright until a given moment."""

    __slots__ = ("blocked_until", "capacity", "rate_per_s", "tokens", "updated_at")

    def __init__(self, rate_per_s: float, capacity: float = 1.0, now: float = 0.0) -> None:
        if rate_per_s <= 0 or capacity < 1:
            raise ValueError("a token bucket needs a positive rate and a capacity of at least 1")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.tokens = capacity
        self.updated_at = now
        self.blocked_until = 0.0

    def _refill(self, now: float) -> None:
        if now > self.updated_at:
            earned = (now - self.updated_at) * self.rate_per_s
            self.tokens = min(self.capacity, self.tokens + earned)
            self.updated_at = now

    def ready_at(self, now: float) -> float:
        self._refill(now)
        start = max(now, self.blocked_until)
        if self.tokens >= 1.0:
            return start
        return max(start, now + (1.0 - self.tokens) / self.rate_per_s)

    def take(self, now: float) -> None:
        self._refill(now)
        # May go below zero when a caller sends early; the debt is then waited out.
        self.tokens -= 1.0

    def block_until(self, until: float, now: float) -> None:
        """Nothing goes before `until`; then one send may go, and the rate resumes (no burst
        saved up during the wait: the refusal said we had used it)."""
        self._refill(now)
        if until <= self.blocked_until:
            return
        self.blocked_until = until
        self.tokens = 1.0
        self.updated_at = until

    def set_rate(self, rate_per_s: float, now: float) -> None:
        self._refill(now)
        self.rate_per_s = rate_per_s

    def is_idle(self, now: float) -> bool:
        """Full and unblocked: forgetting it changes nothing."""
        self._refill(now)
        return self.tokens >= self.capacity and now >= self.blocked_until


class Unpaced:
    """The terminal: everything is ready at once."""

    def platform_ready_at(self, now: float) -> float:
        return now

    def channel_ready_at(self, channel: str, now: float, route: str = POST) -> float:
        return now

    def dispatched(self, channel: str, now: float, route: str = POST) -> None:
        return None

    def take_platform(self, now: float) -> None:
        return None

    def share(self, fraction: float, now: float) -> None:
        return None

    def answered(
        self, channel: str, rate: RateLimit | None, now: float, route: str = POST
    ) -> None:
        return None

    def prune(self, now: float) -> None:
        return None


# --- Discord --------------------------------------------------------------------------------

# Discord's global limit is counted over a rolling second at Discord's end. A token bucket of
# rate r and capacity c lets at most c + r requests into any second. Pacing a little under the
# limit, one request short of it, leaves room for network jitter to bunch requests together;
# the capacity takes up the rest (more than one token at 50/s), which absorbs our own timers
# firing a millisecond late (a capacity of exactly one turns that into lost throughput, about 5 %
# at 50/s).
DISCORD_GLOBAL_HEADROOM = 0.95
# Headers give reset times to the millisecond; a few more keep a send from arriving a hair early.
DISCORD_RESET_MARGIN_S = 0.02


@dataclass(slots=True)
class ReportedBucket:
    """A Discord bucket as its last answer described it."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # monotonic; after it, the bucket is full again
    in_flight: int = 0
    blocked_until: float = 0.0  # a 429 named this wait

    def ready_at(self, now: float) -> float:
        start = max(now, self.blocked_until)
        fresh = self.reset_at is None or start >= self.reset_at
        if fresh:
            # Unknown or reset: as many at once as the last answer said the bucket holds (one
            # at a time until Discord has told us anything).
            capacity = self.limit if self.limit is not None else 1
            return start if self.in_flight < capacity else float("inf")
        assert self.reset_at is not None
        left = (self.remaining if self.remaining is not None else 1) - self.in_flight
        return start if left > 0 else self.reset_at

    def dispatched(self) -> None:
        self.in_flight += 1

    def answered(self, rate: RateLimit | None, now: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if rate is None:
            return
        if rate.limit is not None:
            self.limit = rate.limit
        if rate.remaining is not None and rate.reset_after_s is not None:
            self.remaining = rate.remaining
            self.reset_at = now + rate.reset_after_s + DISCORD_RESET_MARGIN_S
        if rate.retry_after_s is not None and rate.scope is RateScope.BUCKET:
            self.blocked_until = max(
                self.blocked_until, now + rate.retry_after_s + DISCORD_RESET_MARGIN_S
            )
            self.remaining = 0
            self.reset_at = max(self.reset_at or 0.0, self.blocked_until)

    def is_idle(self, now: float) -> bool:
        return self.in_flight == 0 and now >= self.blocked_until and (
            self.reset_at is None or now >= self.reset_at
        )


def discord_route(channel: str, route: str = POST) -> tuple[str, str]:
    """(route, major parameter) of a request to `channel`: to a channel's messages, or to a
    webhook's; a post, an edit or a reply each its own route."""
    if channel.startswith(WEBHOOK_PREFIX):
        return f"webhook-{route}", channel.removeprefix(WEBHOOK_PREFIX)
    return route, channel


@dataclass(slots=True)
class DiscordPacing:
    """Per-bucket pacing from Discord's headers, under the bot's global request rate."""

    global_rate_per_s: float = 50.0
    _global: TokenBucket = field(init=False)
    _buckets: dict[tuple[str, str], ReportedBucket] = field(default_factory=dict)
    # Discord names the bucket each route uses: routes with the same name share a limit.
    _bucket_of_route: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rate = self.global_rate_per_s * DISCORD_GLOBAL_HEADROOM
        self._global = TokenBucket(rate, max(1.0, self.global_rate_per_s - rate - 1.0))

    def share(self, fraction: float, now: float) -> None:
        self._global.set_rate(self.global_rate_per_s * DISCORD_GLOBAL_HEADROOM * fraction, now)

    def _key(self, channel: str, route: str) -> tuple[str, str]:
        kind, major = discord_route(channel, route)
        return self._bucket_of_route.get(kind, kind), major

    def _bucket(self, channel: str, route: str) -> ReportedBucket:
        key = self._key(channel, route)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = ReportedBucket()
        return bucket

    def platform_ready_at(self, now: float) -> float:
        return self._global.ready_at(now)

    def channel_ready_at(self, channel: str, now: float, route: str = POST) -> float:
        bucket = self._buckets.get(self._key(channel, route))
        return now if bucket is None else bucket.ready_at(now)

    def dispatched(self, channel: str, now: float, route: str = POST) -> None:
        self._bucket(channel, route).dispatched()

    def take_platform(self, now: float) -> None:
        self._global.take(now)

    def answered(
        self, channel: str, rate: RateLimit | None, now: float, route: str = POST
    ) -> None:
        bucket = self._bucket(channel, route)
        if rate is not None and rate.bucket:
            self._learn_bucket_name(channel, route, rate.bucket, bucket)
        bucket.answered(rate, now)
        if (
            rate is not None
            and rate.retry_after_s is not None
            and rate.scope is RateScope.PLATFORM
        ):
            self._global.block_until(now + rate.retry_after_s + DISCORD_RESET_MARGIN_S, now)

    def _learn_bucket_name(
        self, channel: str, route: str, name: str, bucket: ReportedBucket
    ) -> None:
        kind, major = discord_route(channel, route)
        if self._bucket_of_route.get(kind) == name:
            return
        old_key = self._key(channel, route)
        self._bucket_of_route[kind] = name
        new_key = (name, major)
        # The bucket this route used so far is now known by Discord's name; one already known
        # by that name (another route's) is the same limit, so it wins.
        self._buckets.pop(old_key, None)
        self._buckets.setdefault(new_key, bucket)

    def prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.is_idle(now)]:
            del self._buckets[key]


# --- Slack ----------------------------------------------------------------------------------

# "About one message per second per channel": paced a little slower, so that a send that leaves
# on time but is delayed on the way does not reach Slack inside the same second as the last.
SLACK_CHANNEL_INTERVAL_S = 1.02
# Slack does not say whether a 429 is the channel's limit or the workspace's. One refusal is
# taken as the channel's; a refusal on a second channel within this long is the workspace's.
SLACK_WORKSPACE_EVIDENCE_S = 10.0
SLACK_INTERVAL_LEARN_FACTOR = 1.5
SLACK_INTERVAL_MAX_S = 30.0
SLACK_WORKSPACE_DECREASE = 0.5
SLACK_WORKSPACE_MIN_RATE = 0.2
# After this long without a workspace 429, the learned rate climbs back by this factor per
# answer, up to the configured rate.
SLACK_WORKSPACE_RECOVERY_AFTER_S = 60.0
SLACK_WORKSPACE_RECOVERY_FACTOR = 1.01


@dataclass(slots=True)
class SlackChannelPace:
    bucket: TokenBucket
    interval_s: float


@dataclass(slots=True)
class SlackPacing:
    """One post per channel per `channel_interval_s`, under a workspace-wide rate."""

    workspace_rate_per_s: float = 200.0
    channel_interval_s: float = SLACK_CHANNEL_INTERVAL_S
    _workspace: TokenBucket = field(init=False)
    _channels: dict[str, SlackChannelPace] = field(default_factory=dict)
    _last_workspace_refusal: float | None = None
    _last_refusal: tuple[str, float] | None = None  # (channel, when)
    learned_workspace_rate: float = field(init=False)
    _share: float = 1.0  # of the workspace rate, beside other workers

    def __post_init__(self) -> None:
        self.learned_workspace_rate = self.workspace_rate_per_s
        # No burst: how much Slack tolerates at once is not documented, and a burst across many
        # channels would earn one 429 per channel before the first refusal is heard.
        self._workspace = TokenBucket(self.workspace_rate_per_s, 1.0)

    def _pace(self, channel: str, now: float) -> SlackChannelPace:
        pace = self._channels.get(channel)
        if pace is None:
            bucket = TokenBucket(1.0 / self.channel_interval_s, 1.0, now)
            pace = self._channels[channel] = SlackChannelPace(bucket, self.channel_interval_s)
        return pace

    def platform_ready_at(self, now: float) -> float:
        return self._workspace.ready_at(now)

    def share(self, fraction: float, now: float) -> None:
        self._share = fraction
        self._workspace.set_rate(self.learned_workspace_rate * fraction, now)

    def channel_ready_at(self, channel: str, now: float, route: str = POST) -> float:
        pace = self._channels.get(channel)
        return now if pace is None else pace.bucket.ready_at(now)

    def dispatched(self, channel: str, now: float, route: str = POST) -> None:
        self._pace(channel, now).bucket.take(now)

    def take_platform(self, now: float) -> None:
        self._workspace.take(now)

    def answered(
        self, channel: str, rate: RateLimit | None, now: float, route: str = POST
    ) -> None:
        pace = self._pace(channel, now)
        if rate is None or rate.retry_after_s is None:
            self._recover(now)
            return
        until = now + rate.retry_after_s
        pace.bucket.block_until(until, now)
        previous, self._last_refusal = self._last_refusal, (channel, now)
        other_channel_refused = (
            previous is not None
            and previous[0] != channel
            and now - previous[1] <= SLACK_WORKSPACE_EVIDENCE_S
        )
        if not other_channel_refused or channel.startswith(WEBHOOK_PREFIX):
            # This channel's (or incoming webhook's) own limit is slower than we thought:
            # learn it, for this channel only.
            pace.interval_s = min(
                SLACK_INTERVAL_MAX_S, pace.interval_s * SLACK_INTERVAL_LEARN_FACTOR
            )
            pace.bucket.set_rate(1.0 / pace.interval_s, now)
            return
        # Two channels refused in a short while: the workspace is over its limit. Everyone
        # waits as told, then goes slower.
        self._workspace.block_until(until, now)
        self.learned_workspace_rate = max(
            SLACK_WORKSPACE_MIN_RATE, self.learned_workspace_rate * SLACK_WORKSPACE_DECREASE
        )
        self._workspace.set_rate(self.learned_workspace_rate * self._share, now)
        self._last_workspace_refusal = now

    def _recover(self, now: float) -> None:
        if self.learned_workspace_rate >= self.workspace_rate_per_s:
            return
        if (
            self._last_workspace_refusal is not None
            and now - self._last_workspace_refusal < SLACK_WORKSPACE_RECOVERY_AFTER_S
        ):
            return
        self.learned_workspace_rate = min(
            self.workspace_rate_per_s,
            self.learned_workspace_rate * SLACK_WORKSPACE_RECOVERY_FACTOR,
        )
        self._workspace.set_rate(self.learned_workspace_rate * self._share, now)

    def prune(self, now: float) -> None:
        for channel in [
            c
            for c, p in self._channels.items()
            if p.bucket.is_idle(now) and p.interval_s == self.channel_interval_s
        ]:
            del self._channels[channel]
