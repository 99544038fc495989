"""One delivery attempt: send an outbox row through its platform's notifier and record the
outcome: sent, retried later (transient errors, with the platform's wait or capped backoff),
failed (payload refused) or parked (the channel refused us for good). Which row goes when is
the scheduler's business (bot/scheduler.py); this module only does the attempt. See
docs/reliability.md.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.articles import Article
from bot.breaking import story_facts
from bot.clock import Clock
from bot.digest import Digest, DigestStory, build_digest, pick_headline
from bot.metrics import Metrics
from bot.outbox import Delivery, DeliveryKind, Outbox
from bot.platforms.base import (
    FailureScope,
    Notifier,
    PermanentError,
    RateLimit,
    SentRef,
    TransientError,
)
from bot.state import State
from bot.stories import compose
from bot.subscriptions import LateCoverage

log = logging.getLogger(__name__)

# Stories read recently: a fan-out sends the same few stories to every channel.
STORY_CACHE_SIZE = 256


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
    UNCHANGED = "unchanged"  # an edit that would show nothing new: not sent


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
        "kind": str(delivery.kind),  # a post, or an edit, a reply or a retraction of one
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
        # story id -> (its members' keys and first-seen times, the members)
        self._stories: dict[
            int, tuple[list[tuple[str, float, float]], list[tuple[Article, float]]]
        ] = {}
        self.stopped_platforms: dict[str, str] = {}

    @property
    def platforms(self) -> list[str]:
        return list(self._notifiers)

    @property
    def active_platforms(self) -> list[str]:
        return [p for p in self._notifiers if p not in self.stopped_platforms]

    async def recover_interrupted(self, gone_before: float | None = None) -> int:
        """Rows left in `sending` by a crash (all of them, or, beside other workers, those
        of workers unseen since `gone_before`): ask the platform whether the message
        went out (it may have) before sending again. Returns how many were found posted."""
        found = 0
        for delivery in await self._outbox.interrupted(gone_before):
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
                log.info(
                    "interrupted send found posted platform=%s channel=%s article=%s: recorded "
                    "as sent, not sent again", delivery.platform, delivery.channel, delivery.key,
                )
                found += 1
            else:
                await self._outbox.mark_retry(delivery.id, self._clock.time(), "interrupted")
        return found

    async def attempt(
        self, delivery: Delivery, before_request: Callable[[], Awaitable[None]] | None = None
    ) -> Attempt:
        """Send one row (a post, an edit or a reply), record what came of it, and say so.
        `before_request` is awaited right before the platform is asked (the scheduler's
        platform-wide pacing)."""
        notifier = self._notifiers[delivery.platform]
        if delivery.kind is DeliveryKind.DIGEST:
            return await self._attempt_digest(notifier, delivery, before_request)
        post = delivery if delivery.kind is DeliveryKind.POST else await self._outbox.post_of(
            delivery
        )
        if post is None or (delivery.kind is not DeliveryKind.POST and not post.message_ref):
            await self._outbox.mark_failed(delivery.id, "its post is gone")
            return Attempt(Outcome.FAILED)
        if delivery.kind is DeliveryKind.RETRACT:
            return await self._send(
                delivery, lambda: self._request(notifier, delivery, post, None), before_request
            )
        view = await self._view(post)
        if view is None:
            await self._outbox.mark_failed(delivery.id, "the article is no longer in the state")
            return Attempt(Outcome.FAILED)
        shown = notifier.fingerprint(delivery.channel, view)
        if delivery.kind is DeliveryKind.EDIT and shown == post.shown_hash:
            # Nothing visible would change: no request.
            await self._outbox.mark_sent(delivery.id, post.message_ref)
            return Attempt(Outcome.UNCHANGED)
        return await self._send(
            delivery, lambda: self._request(notifier, delivery, post, view), before_request,
            post, shown,
        )

    async def _attempt_digest(
        self,
        notifier: Notifier,
        delivery: Delivery,
        before_request: Callable[[], Awaitable[None]] | None,
    ) -> Attempt:
        built = await self._digest(delivery)
        if isinstance(built, str):
            await self._outbox.mark_failed(delivery.id, built)
            return Attempt(Outcome.FAILED)
        digest, mention = built
        return await self._send(
            delivery,
            lambda: notifier.send_digest(delivery.key, delivery.channel, digest, mention),
            before_request,
        )

    async def _digest(self, delivery: Delivery) -> tuple[Digest, str | None] | str:
        """The digest a row lists, and the id it pings (when it lists a breaking story and
        its subscription names one); or why there is nothing to send."""
        sub = (
            await self._state.subscription(delivery.subscription_id)
            if delivery.subscription_id is not None
            else None
        )
        if sub is None:
            return "its subscription is gone"
        stories = []
        for story_id, _ in await self._outbox.digest_items(delivery.id):
            members = [article for article, _ in await self._members(story_id)]
            if not members:
                continue
            headline = pick_headline(members)
            facts = story_facts(members)
            view = compose(headline, [a for a in members if a.key != headline.key])
            stories.append(DigestStory(story_id, view, facts, sub.breaking.applies(facts)))
        if not stories:
            return "the stories it collected are no longer in the state"
        period_at = delivery.period_at if delivery.period_at is not None else self._clock.time()
        digest = build_digest(sub.mode, period_at, sub.timezone, stories)
        return digest, sub.mention if digest.has_breaking else None

    async def _send(
        self,
        delivery: Delivery,
        request: Callable[[], Awaitable[SentRef]],
        before_request: Callable[[], Awaitable[None]] | None,
        post: Delivery | None = None,
        shown: str | None = None,
    ) -> Attempt:
        """Claim the row, make its one request, and record what came of it. `post` and
        `shown`: an edit's or a reply's post, and what the message shows after it."""
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
            ref = await request()
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
        if post is not None and delivery.kind is DeliveryKind.REPLY:
            await self._outbox.record_shown(post.id, post.shown_hash or "", ref.thread_ref)
        elif post is not None and delivery.kind is DeliveryKind.EDIT and shown is not None:
            await self._outbox.record_shown(post.id, shown)
        return await self._sent(delivery, attempt, ref, started, shown)

    async def _request(
        self, notifier: Notifier, delivery: Delivery, post: Delivery, view: Article | None
    ) -> SentRef:
        if delivery.kind is DeliveryKind.RETRACT:
            assert post.message_ref is not None
            return await notifier.retract(delivery.channel, post.message_ref)
        assert view is not None
        if delivery.kind is DeliveryKind.POST:
            return await notifier.send(delivery.key, delivery.channel, view, post.mention)
        assert post.message_ref is not None
        if delivery.kind is DeliveryKind.EDIT:
            return await notifier.edit(delivery.channel, post.message_ref, view, post.mention)
        article = next(
            (a for a, _ in await self._members(post.story_id) if a.key == delivery.article_key),
            None,
        )
        if article is None:
            raise PermanentError("the article is no longer in the state", FailureScope.DELIVERY)
        parent = SentRef(post.message_ref, thread_ref=post.thread_ref)
        return await notifier.reply(delivery.key, delivery.channel, parent, article)

    async def _view(self, post: Delivery) -> Article | None:
        """The story as this post shows it: its headline, with the story's other articles as
        coverage (all of them when the subscription edits its posts as coverage arrives; else
        those known when it was posted, the later ones being replies or not shown)."""
        members = await self._members(post.story_id)
        wanted = post.headline_key or post.article_key
        headline = next((a for a, _ in members if a.key == wanted), None)
        if headline is None:
            return None
        mode = await self._state.late_coverage_of(post.subscription_id)
        posted_at = post.posted_at
        others = [
            article
            for article, seen in members
            if article.key != headline.key
            and (mode is LateCoverage.EDIT or posted_at is None or seen <= posted_at)
        ]
        return compose(headline, others)

    async def _members(self, story_id: int) -> list[tuple[Article, float]]:
        """A story's articles with when each was first seen; read again whenever one joins
        or changes (a corrected file), else parsed once for a whole fan-out."""
        seen = await self._state.story_seen(story_id)
        cached = self._stories.get(story_id)
        if cached is not None and cached[0] == seen:
            return cached[1]
        articles = {a.key: a for a in await self._state.story_articles(story_id)}
        members = [(articles[key], first) for key, first, _ in seen if key in articles]
        self._stories[story_id] = (seen, members)
        if len(self._stories) > STORY_CACHE_SIZE:
            self._stories.pop(next(iter(self._stories)))
        return members

    async def _sent(
        self, delivery: Delivery, attempt: int, ref: SentRef, started: float, shown: str | None
    ) -> Attempt:
        latency_ms = self._observe(delivery, "sent", started)
        await self._outbox.mark_sent(
            delivery.id, ref.message_id, shown if delivery.kind is DeliveryKind.POST else None
        )
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
