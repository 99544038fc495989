"""Takes due outbox rows, sends them through the platform's notifier, and records the outcome:
sent, retried later (transient errors, with the platform's wait or capped backoff), failed
(payload refused) or parked (the channel refused us for good). See docs/reliability.md."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.clock import Clock
from bot.metrics import Metrics
from bot.platforms.base import FailureScope, Notifier, PermanentError, TransientError
from bot.state import Delivery, State

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 2.0
    cap_s: float = 900.0
    max_attempts: int = 12  # about two hours of backoff before giving up on a transient error

    def backoff_s(self, attempts: int, jitter: float) -> float:
        """Capped exponential backoff; `jitter` in [0, 1) spreads retries of many rows."""
        exponential = self.base_s * 2.0 ** max(0, attempts - 1)
        return float(min(self.cap_s, exponential) * (0.5 + jitter / 2))


@dataclass(slots=True)
class RoundReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    parked: int = 0


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
        concurrency: int = 8,
        metrics: Metrics | None = None,
    ) -> None:
        self._state = state
        self._metrics = metrics or Metrics()
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._jitter = jitter
        self._limit = asyncio.Semaphore(concurrency)
        self.stopped_platforms: dict[str, str] = {}

    @property
    def active_platforms(self) -> list[str]:
        return [p for p in self._notifiers if p not in self.stopped_platforms]

    async def next_due_at(self) -> float | None:
        return await self._state.next_due_at(self.active_platforms)

    async def recover_interrupted(self) -> int:
        """Rows left in `sending` by a crash: ask the platform whether the message went out
        (it may have) before sending again. Returns how many were found already posted."""
        found = 0
        for delivery in await self._state.interrupted_deliveries():
            notifier = self._notifiers.get(delivery.platform)
            if notifier is None:
                continue
            try:
                ref = await notifier.find_sent(delivery.key, delivery.channel)
            except (TransientError, PermanentError) as exc:
                # Unknown: keep the doubt, so the lookup is made again before any resend.
                log.warning("could not check whether %s was posted: %s", delivery.key, exc)
                await self._state.mark_retry(
                    delivery.id, self._clock.time(), "interrupted", uncertain=True
                )
                continue
            if ref is not None:
                await self._state.mark_sent(delivery.id, ref.message_id)
                found += 1
            else:
                await self._state.mark_retry(delivery.id, self._clock.time(), "interrupted")
        return found

    async def deliver_due(self, stop: asyncio.Event | None = None) -> RoundReport:
        """Send every row that is due now, channel by channel (in order within a channel).
        Once `stop` is set, sends in flight finish and no new one starts."""
        report = RoundReport()
        due = await self._state.due_deliveries(
            self._clock.time(), self.active_platforms, limit=500
        )
        by_channel: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
        for delivery in due:
            by_channel[(delivery.platform, delivery.channel)].append(delivery)
        await asyncio.gather(
            *(self._send_all(rows, report, stop) for rows in by_channel.values())
        )
        return report

    async def _send_all(
        self, rows: Sequence[Delivery], report: RoundReport, stop: asyncio.Event | None
    ) -> None:
        async with self._limit:
            for delivery in rows:
                if stop is not None and stop.is_set():
                    return
                if not await self._send_one(delivery, report):
                    return  # the channel is parked or the platform stopped: skip the rest

    async def _send_one(self, delivery: Delivery, report: RoundReport) -> bool:
        notifier = self._notifiers[delivery.platform]
        article = await self._state.get_article(delivery.article_key)
        if article is None:
            await self._state.mark_failed(delivery.id, "the article is no longer in the state")
            report.failed += 1
            return True
        attempt = delivery.attempts + 1
        if delivery.uncertain and await self._already_posted(delivery, report):
            return True
        await self._state.mark_sending(delivery.id)
        started = self._clock.monotonic()
        try:
            ref = await notifier.send(delivery.key, delivery.channel, article)
        except TransientError as exc:
            self._observe(delivery, "rate_limited" if exc.retry_after_s else "retry", started)
            return await self._retry(delivery, attempt, exc, report, started)
        except PermanentError as exc:
            self._observe(delivery, f"refused_{exc.scope}", started)
            return await self._give_up(delivery, attempt, exc, report, started)
        except Exception as exc:
            # An error the adapter did not map (a bug, or an SDK surprise): whether the message
            # went out is unknown, so retry with backoff rather than leave the row `sending`
            # until a restart. Only the type is recorded: SDK messages can carry URLs.
            self._observe(delivery, "error", started)
            unexpected = TransientError(
                f"unexpected {type(exc).__name__} from the notifier", maybe_sent=True
            )
            return await self._retry(delivery, attempt, unexpected, report, started)
        latency_ms = self._observe(delivery, "sent", started)
        await self._state.mark_sent(delivery.id, ref.message_id)
        report.sent += 1
        log_outcome(logging.INFO, "sent", delivery, attempt, latency_ms)
        return True

    async def _already_posted(self, delivery: Delivery, report: RoundReport) -> bool:
        """An earlier attempt may have posted: ask the platform before posting again. A failed
        lookup postpones the row (still uncertain) rather than risk a duplicate."""
        notifier = self._notifiers[delivery.platform]
        try:
            ref = await notifier.find_sent(delivery.key, delivery.channel)
        except (TransientError, PermanentError) as exc:
            wait_s = self._policy.backoff_s(delivery.attempts, self._jitter())
            await self._state.mark_retry(
                delivery.id, self._clock.time() + wait_s, f"lookup failed: {exc}", uncertain=True
            )
            report.retried += 1
            return True
        if ref is None:
            return False
        await self._state.mark_sent(delivery.id, ref.message_id)
        report.sent += 1
        log_outcome(logging.INFO, "found", delivery, delivery.attempts, 0.0, "already posted")
        return True

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
        self,
        delivery: Delivery,
        attempt: int,
        exc: TransientError,
        report: RoundReport,
        started: float,
    ) -> bool:
        if attempt >= self._policy.max_attempts:
            await self._state.mark_failed(delivery.id, f"gave up after {attempt} attempts: {exc}")
            report.failed += 1
            latency_ms = self._latency_ms(started)
            log_outcome(logging.ERROR, "failed", delivery, attempt, latency_ms, exc.reason)
            return True
        wait_s = (
            exc.retry_after_s
            if exc.retry_after_s is not None
            else self._policy.backoff_s(attempt, self._jitter())
        )
        retry_at = self._clock.time() + wait_s
        await self._state.mark_retry(delivery.id, retry_at, exc.reason, uncertain=exc.maybe_sent)
        if exc.retry_after_s is not None:
            # A rate limit applies to the whole channel: its other rows wait too, in later
            # rounds as well as this one.
            await self._state.hold_channel(delivery.platform, delivery.channel, retry_at)
        report.retried += 1
        log_outcome(
            logging.WARNING, "retry", delivery, attempt, self._latency_ms(started), exc.reason,
            wait_s=wait_s,
        )
        return exc.retry_after_s is None

    async def _give_up(
        self,
        delivery: Delivery,
        attempt: int,
        exc: PermanentError,
        report: RoundReport,
        started: float,
    ) -> bool:
        latency_ms = self._latency_ms(started)
        if exc.scope is FailureScope.DELIVERY:
            await self._state.mark_failed(delivery.id, exc.reason)
            report.failed += 1
            log_outcome(logging.ERROR, "failed", delivery, attempt, latency_ms, exc.reason)
            return True
        if exc.scope is FailureScope.CHANNEL:
            await self._state.park_channel(delivery.platform, delivery.channel, exc.reason)
            report.parked += 1
            log_outcome(logging.ERROR, "parked", delivery, attempt, latency_ms, exc.reason)
            return False
        # PLATFORM: the credentials were refused; this row stays pending for after the fix.
        await self._state.mark_retry(delivery.id, self._clock.time(), exc.reason)
        self.stopped_platforms[delivery.platform] = exc.reason
        log.critical("platform stopped platform=%s reason=%s", delivery.platform, exc.reason)
        return False
