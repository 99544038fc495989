"""A platform simulated on a FakeClock, for scheduler tests in virtual time: it enforces a
per-channel window (as Discord's message bucket) or a per-channel token bucket (as Slack), and a
platform-wide limit over a rolling second, answering with the headers the real platforms send
and 429s when a limit is broken. Every request is recorded with its virtual time."""

from __future__ import annotations

import collections
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.articles import Article
from bot.platforms.base import RateLimit, RateScope, SentRef, TransientError
from tests.conftest import FakeClock


@dataclass(frozen=True, slots=True)
class Request:
    at: float
    channel: str
    key: str
    status: int  # 200 or 429


@dataclass
class _Window:
    count: int = 0
    ends_at: float = -1.0


@dataclass
class SimulatedPlatform:
    """Discord-like by default: `per_channel` requests per `window_s` per channel (headers on
    every answer), and `global_per_s` requests in any rolling second."""

    clock: FakeClock
    name: str = "discord"
    per_channel: int = 5
    window_s: float = 5.0
    global_per_s: int | None = 50
    send_headers: bool = True  # Slack sends none
    on_send: Callable[[int], Awaitable[None]] | None = None  # called with the request number
    requests: list[Request] = field(default_factory=list)
    _windows: dict[str, _Window] = field(default_factory=dict)
    _global: collections.deque[float] = field(default_factory=collections.deque)

    @property
    def platform(self) -> str:
        return self.name

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def find_sent(self, delivery_key: str, channel: str) -> SentRef | None:
        return None

    def fingerprint(self, channel: str, article: Article) -> str:
        return article.title

    async def edit(
        self, channel: str, message_id: str, article: Article, mention: str | None = None
    ) -> SentRef:
        return await self.send(f"edit:{message_id}", channel, article)

    async def reply(
        self, delivery_key: str, channel: str, parent: SentRef, article: Article
    ) -> SentRef:
        return await self.send(delivery_key, channel, article)

    async def retract(self, channel: str, message_id: str) -> SentRef:
        return await self.send(f"retract:{message_id}", channel, None)  # type: ignore[arg-type]

    def _refuse(self, channel: str, key: str, now: float, rate: RateLimit) -> TransientError:
        self.requests.append(Request(now, channel, key, 429))
        assert rate.retry_after_s is not None
        return TransientError("429", rate.retry_after_s, rate=rate)

    async def send(
        self, delivery_key: str, channel: str, article: Article, mention: str | None = None
    ) -> SentRef:
        now = self.clock.monotonic()
        if self.on_send is not None:
            await self.on_send(len(self.requests))
        if self.global_per_s is not None:
            log = self._global
            while log and log[0] <= now - 1.0:
                log.popleft()
            if len(log) >= self.global_per_s:
                wait = log[0] + 1.0 - now
                raise self._refuse(
                    channel, delivery_key, now,
                    RateLimit(retry_after_s=wait, scope=RateScope.PLATFORM),
                )
            log.append(now)
        window = self._windows.setdefault(channel, _Window())
        if now >= window.ends_at:
            window.count, window.ends_at = 0, now + self.window_s
        reset_after = window.ends_at - now
        if window.count >= self.per_channel:
            raise self._refuse(
                channel, delivery_key, now,
                RateLimit(
                    bucket="msg", limit=self.per_channel, remaining=0,
                    reset_after_s=reset_after if self.send_headers else None,
                    retry_after_s=max(reset_after, 1.0 if not self.send_headers else 0.0),
                ),
            )
        window.count += 1
        self.requests.append(Request(now, channel, delivery_key, 200))
        rate = None
        if self.send_headers:
            rate = RateLimit(
                bucket="msg",
                limit=self.per_channel,
                remaining=self.per_channel - window.count,
                reset_after_s=math.ceil(reset_after * 1000) / 1000,
            )
        return SentRef(message_id=f"m{len(self.requests)}", rate=rate)

    # --- what happened ---------------------------------------------------------------------

    def sent(self) -> list[Request]:
        return [r for r in self.requests if r.status == 200]

    def refused(self) -> list[Request]:
        return [r for r in self.requests if r.status == 429]

    def max_in_any_second(self) -> int:
        times = [r.at for r in self.requests]
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best
