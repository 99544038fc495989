"""One delivery attempt: send an outbox row through its platform's notifier and record the
outcome: sent, retried later (transient errors, with the platform's wait or capped backoff),
failed (payload refused) or parked (the channel refused us for good). Which row goes when is
the scheduler's business (bot/scheduler.py); this module only does the attempt. See
docs/reliability.md.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.articles import Article
from bot.clock import Clock
from bot.metrics import Metrics
from bot.outbox import Delivery, Outbox
from bot.platforms.base import (
    FailureScope,
    Notifier,
    PermanentError,
    RateLimit,
    SentRef,
    TransientError,
)
from bot.state import State

log = logging.getLogger(__name__)

# Articles rendered recently, by key: a fan-out sends the same few articles to every channel.
ARTICLE_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 2.0
    cap_s: float = 900.0
    max_attempts: int = 12  # about two hours of backoff before giving up on a transient error

    def backoff_s(self, attempts: int, jitter: float) -> float:
        """Capped exponential backoff; `jitter` in [0, 1) spreads retries of many rows."""
        exponential = self.base_s * 2.0 ** max(0, attempts - 1)
        return float(min(self.cap_s, exponential) * (0.5 + jitter / 2))


class Outcome(StrEnum):
    SENT = "sent"
    FOUND = "found"  # an earlier, interrupted attempt had posted it
    RETRY = "retry"  # a transient failure: the row waits for its backoff
    RATE_LIMITED = "rate_limited"  # the platform said wait: the channel's rows wait with it
    FAILED = "failed"
    PARKED = "parked"  # the channel refused us: its rows wait for someone to fix it
    PLATFORM_STOPPED = "platform_stopped"  # the credentials were refused
    SKIPPED = "skipped"  # the row was no longer pending when its turn came


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt came to, for the scheduler: the outcome and what the platform said
    about its rate-limit bucket."""

    outcome: Outcome
    rate: RateLimit | None = None
    reason: str | None = None


def log_outcome(
    level: int,
    outcome: str,
    delivery: Delivery,
    attempt: int,
    latency_ms: float,
    reason: str | None = None,
    wait_s: float | None = None,
) -> None:
    """The one stable line per delivery outcome; with JSON logs its fields are keys too."""
    fields: dict[str, object] = {
        "outcome": outcome,
        "platform": delivery.platform,
        "channel": delivery.channel,
        "article": delivery.article_key,
        "attempt": attempt,
        "latency_ms": round(latency_ms),
    }
    if wait_s is not None:
        fields["wait_s"] = round(wait_s, 2)
    if reason is not None:
        fields["reason"] = reason
    text = " ".join(f"{k}={v}" for k, v in fields.items() if k != "outcome")
    log.log(level, "delivery %s %s", outcome, text, extra={"delivery": fields})


class Deliverer:
    def __init__(
        self,
        state: State,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        policy: RetryPolicy | None = None,
        jitter: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
    ) -> None:
        self._state = state
        self._outbox: Outbox = state.outbox
        self._metrics = metrics or Metrics()
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._jitter = jitter
        self._articles: OrderedDict[str, Article] = OrderedDict()
        self.stopped_platforms: dict[str, str] = {}

    @property
    def platforms(self) -> list[str]:
        return list(self._notifiers)

    @property
    def active_platforms(self) -> list[str]:
        return [p for p in self._notifiers if p not in self.stopped_platforms]

    async def recover_interrupted(self) -> int:
        """Rows left in `sending` by a crash: ask the platform whether the message went out
        (it may have) before sending again. Returns how many were found already posted."""
        found = 0
        for delivery in await self._outbox.interrupted():
            notifier = self._notifiers.get(delivery.platform)
            if notifier is None:
                continue
            try:
                ref = await notifier.find_sent(delivery.key, delivery.channel)
            except (TransientError, PermanentError) as exc:
                # Unknown: keep the doubt, so the lookup is made again before any resend.
                log.warning("could not check whether %s was posted: %s", delivery.key, exc)
                await self._outbox.mark_retry(
                    delivery.id, self._clock.time(), "interrupted", uncertain=True
                )
                continue
            if ref is not None:
                await self._outbox.mark_sent(delivery.id, ref.message_id)
                found += 1
            else:
                await self._outbox.mark_retry(delivery.id, self._clock.time(), "interrupted")
        return found

    async def _article(self, key: str) -> Article | None:
        article = self._articles.get(key)
        if article is not None:
            self._articles.move_to_end(key)
            return article
        article = await self._state.get_article(key)
        if article is not None:
            self._articles[key] = article
            if len(self._articles) > ARTICLE_CACHE_SIZE:
                self._articles.popitem(last=False)
        return article

    def forget_article(self, key: str) -> None:
        """The article changed: render it afresh from the state next time."""
        self._articles.pop(key, None)

    async def attempt(
        self, delivery: Delivery, before_request: Callable[[], Awaitable[None]] | None = None
    ) -> Attempt:
        """Send one row, record what came of it, and say so. `before_request` is awaited
        right before the platform is asked (the scheduler's platform-wide pacing)."""
        notifier = self._notifiers[delivery.platform]
        article = await self._article(delivery.article_key)
        if article is None:
            await self._outbox.mark_failed(delivery.id, "the article is no longer in the state")
            return Attempt(Outcome.FAILED)
        attempt = delivery.attempts + 1
        if delivery.uncertain:
            found = await self._already_posted(delivery)
            if found is not None:
                return found
        if not await self._outbox.mark_sending(delivery.id):
            return Attempt(Outcome.SKIPPED)
        if before_request is not None:
            await before_request()
        started = self._clock.monotonic()
        try:
            ref = await notifier.send(delivery.key, delivery.channel, article)
        except TransientError as exc:
            self._observe(delivery, "rate_limited" if exc.rate_limited else "retry", started)
            return await self._retry(delivery, attempt, exc, started)
        except PermanentError as exc:
            self._observe(delivery, f"refused_{exc.scope}", started)
            return await self._give_up(delivery, attempt, exc, started)
        except Exception as exc:
            # An error the adapter did not map (a bug, or an SDK surprise): whether the message
            # went out is unknown, so retry with backoff rather than leave the row `sending`
            # until a restart. Only the type is recorded: SDK messages can carry URLs.
            self._observe(delivery, "error", started)
            unexpected = TransientError(
                f"unexpected {type(exc).__name__} from the notifier", maybe_sent=True
            )
            return await self._retry(delivery, attempt, unexpected, started)
        return await self._sent(delivery, attempt, ref, started)

    async def _sent(
        self, delivery: Delivery, attempt: int, ref: SentRef, started: float
    ) -> Attempt:
        latency_ms = self._observe(delivery, "sent", started)
        await self._outbox.mark_sent(delivery.id, ref.message_id)
        log_outcome(logging.INFO, "sent", delivery, attempt, latency_ms)
        return Attempt(Outcome.SENT, ref.rate)

    async def _already_posted(self, delivery: Delivery) -> Attempt | None:
        """An earlier attempt may have posted: ask the platform before posting again. A failed
        lookup postpones the row (still uncertain) rather than risk a duplicate."""
        notifier = self._notifiers[delivery.platform]
        try:
            ref = await notifier.find_sent(delivery.key, delivery.channel)
        except (TransientError, PermanentError) as exc:
            wait_s = self._policy.backoff_s(delivery.attempts, self._jitter())
            await self._outbox.mark_retry(
                delivery.id, self._clock.time() + wait_s, f"lookup failed: {exc}", uncertain=True
            )
            return Attempt(Outcome.RETRY, exc.rate, str(exc))
        if ref is None:
            return None
        await self._outbox.mark_sent(delivery.id, ref.message_id)
        log_outcome(logging.INFO, "found", delivery, delivery.attempts, 0.0, "already posted")
        return Attempt(Outcome.FOUND)

    def _observe(self, delivery: Delivery, outcome: str, started: float) -> float:
        """Count the attempt's outcome and latency; returns the latency in milliseconds."""
        latency_s = self._clock.monotonic() - started
        self._metrics.observe_send(delivery.platform, outcome, latency_s)
        if outcome == "rate_limited":
            self._metrics.count_rate_limit(delivery.platform)
        return latency_s * 1000

    def _latency_ms(self, started: float) -> float:
        return (self._clock.monotonic() - started) * 1000

    async def _retry(
        self, delivery: Delivery, attempt: int, exc: TransientError, started: float
    ) -> Attempt:
        if attempt >= self._policy.max_attempts and not exc.rate_limited:
            await self._outbox.mark_failed(
                delivery.id, f"gave up after {attempt} attempts: {exc}"
            )
            log_outcome(
                logging.ERROR, "failed", delivery, attempt, self._latency_ms(started), exc.reason
            )
            return Attempt(Outcome.FAILED, exc.rate, exc.reason)
        if exc.retry_after_s is not None:
            wait_s = exc.retry_after_s
        else:
            wait_s = self._policy.backoff_s(attempt, self._jitter())
        retry_at = self._clock.time() + wait_s
        await self._outbox.mark_retry(delivery.id, retry_at, exc.reason, uncertain=exc.maybe_sent)
        if exc.rate_limited:
            # The platform's wait covers the whole channel: its other rows wait too, and the
            # wait is written down, so it holds across a restart.
            await self._outbox.hold_channel(delivery.platform, delivery.channel, retry_at)
        log_outcome(
            logging.WARNING, "retry", delivery, attempt, self._latency_ms(started), exc.reason,
            wait_s=wait_s,
        )
        rate = exc.rate or (RateLimit(retry_after_s=wait_s) if exc.rate_limited else None)
        outcome = Outcome.RATE_LIMITED if exc.rate_limited else Outcome.RETRY
        return Attempt(outcome, rate, exc.reason)

    async def _give_up(
        self, delivery: Delivery, attempt: int, exc: PermanentError, started: float
    ) -> Attempt:
        latency_ms = self._latency_ms(started)
        if exc.scope is FailureScope.DELIVERY:
            await self._outbox.mark_failed(delivery.id, exc.reason)
            log_outcome(logging.ERROR, "failed", delivery, attempt, latency_ms, exc.reason)
            return Attempt(Outcome.FAILED, exc.rate, exc.reason)
        if exc.scope is FailureScope.CHANNEL:
            await self._state.park_channel(delivery.platform, delivery.channel, exc.reason)
            log_outcome(logging.ERROR, "parked", delivery, attempt, latency_ms, exc.reason)
            return Attempt(Outcome.PARKED, exc.rate, exc.reason)
        # PLATFORM: the credentials were refused; this row stays pending for after the fix.
        await self._outbox.mark_retry(delivery.id, self._clock.time(), exc.reason)
        self.stopped_platforms[delivery.platform] = exc.reason
        log.critical("platform stopped platform=%s reason=%s", delivery.platform, exc.reason)
        return Attempt(Outcome.PLATFORM_STOPPED, exc.rate, exc.reason)
