"""The delivery outbox: one row per (platform, channel, article), written in the same
transaction as the routing that decided it, then moved through its states by delivery.

    pending ──> sending ──> sent
       ^           │
       └── retry ──┤──> failed  (the payload was refused: never retried)
                   └──> parked  (the channel refused us: waits for someone to fix it)

A row is marked `sending` (committed) before the platform is asked, so a row found `sending`
at start-up was interrupted and is resolved before any resend (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiosqlite

from bot.articles import Article
from bot.clock import Clock
from bot.database import Database
from bot.subscriptions import Subscription


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # committed before the send: found at start-up, it was interrupted
    SENT = "sent"
    FAILED = "failed"  # the platform rejected the payload itself; never retried
    PARKED = "parked"  # the channel refused us for good; waits for the subscription to return


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    platform: str
    channel: str
    article_key: str
    subscription_id: int | None
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    message_ref: str | None
    uncertain: bool = False  # the last attempt may have posted: look before sending again
    sort_at: float = 0.0  # the article's published time: a channel's rows go oldest first

    @property
    def key(self) -> str:
        """The delivery's identity, stable across retries and restarts."""
        return f"{self.platform}:{self.channel}:{self.article_key}"


@dataclass(frozen=True, slots=True)
class ChannelBacklog:
    """A channel's pending rows, as the scheduler discovers work and `status` reports it."""

    platform: str
    channel: str
    pending: int
    next_attempt_at: float  # the earliest any of them may go (wall clock)
    last_error: str | None = None


def sort_time(article: Article, now: float) -> float:
    return article.published_at.timestamp() if article.published_at else now


async def enqueue(
    db: aiosqlite.Connection, rows: Sequence[tuple[Article, Subscription]], now: float
) -> int:
    """Outbox rows for (article, subscription) pairs, inside the caller's transaction; returns
    how many are new (a channel already due the story keeps its one row)."""
    cursor = await db.executemany(
        "INSERT OR IGNORE INTO deliveries (platform, channel, article_key, subscription_id, "
        "state, attempts, next_attempt_at, created_at, updated_at, sort_at) "
        "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        [
            (
                sub.platform, sub.channel, article.key, sub.id, DeliveryState.PENDING, now, now,
                now, sort_time(article, now),
            )
            for article, sub in rows
        ],
    )
    return max(cursor.rowcount, 0)


def _delivery(row: aiosqlite.Row) -> Delivery:
    return Delivery(
        id=row["id"],
        platform=row["platform"],
        channel=row["channel"],
        article_key=row["article_key"],
        subscription_id=row["subscription_id"],
        state=DeliveryState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        message_ref=row["message_ref"],
        uncertain=bool(row["uncertain"]),
        sort_at=row["sort_at"],
    )


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class Outbox:
    """The rows and their states; shares the `Database` (and its one writer) with `State`."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    # --- what there is to do ------------------------------------------------------------------

    async def backlog(
        self,
        platforms: Sequence[str] | None = None,
        state: DeliveryState = DeliveryState.PENDING,
    ) -> list[ChannelBacklog]:
        """Every channel with rows in `state` (pending: to do): how many, and when the first
        may go."""
        where = "state = ?"
        params: list[Any] = [state]
        if platforms is not None:
            where += f" AND platform IN ({_marks(platforms)})"
            params.extend(platforms)
        rows = await self._database.fetchall(
            "SELECT platform, channel, COUNT(*) AS n, MIN(next_attempt_at) AS t, "
            f"MAX(last_error) AS error FROM deliveries WHERE {where} "
            "GROUP BY platform, channel ORDER BY t",
            params,
        )
        return [
            ChannelBacklog(r["platform"], r["channel"], r["n"], r["t"], r["error"])
            for r in rows
        ]

    async def due_rows(
        self, platform: str, channel: str, now: float, limit: int
    ) -> list[Delivery]:
        """The channel's rows that may go now, oldest story first."""
        rows = await self._database.fetchall(
            "SELECT * FROM deliveries WHERE platform = ? AND channel = ? AND state = ? "
            "AND next_attempt_at <= ? ORDER BY sort_at, id LIMIT ?",
            (platform, channel, DeliveryState.PENDING, now, limit),
        )
        return [_delivery(r) for r in rows]

    async def next_attempt_at(self, platform: str, channel: str) -> float | None:
        rows = await self._database.fetchall(
            "SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE platform = ? "
            "AND channel = ? AND state = ?",
            (platform, channel, DeliveryState.PENDING),
        )
        value = rows[0]["t"]
        return None if value is None else float(value)

    async def interrupted(self) -> list[Delivery]:
        rows = await self._database.fetchall(
            "SELECT * FROM deliveries WHERE state = ? ORDER BY id", (DeliveryState.SENDING,)
        )
        return [_delivery(r) for r in rows]

    async def next_due_at(self, platforms: Sequence[str]) -> float | None:
        rows = await self._database.fetchall(
            "SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE state = ? "
            f"AND platform IN ({_marks(platforms)})",
            (DeliveryState.PENDING, *platforms),
        )
        value = rows[0]["t"]
        return None if value is None else float(value)

    async def counts(self) -> dict[tuple[str, DeliveryState], int]:
        rows = await self._database.fetchall(
            "SELECT platform, state, COUNT(*) AS n FROM deliveries GROUP BY platform, state"
        )
        return {(r["platform"], DeliveryState(r["state"])): r["n"] for r in rows}

    async def oldest_pending_since(self) -> float | None:
        """When the oldest row still waiting was queued (wall clock), or None."""
        rows = await self._database.fetchall(
            "SELECT MIN(created_at) AS t FROM deliveries WHERE state IN (?, ?)",
            (DeliveryState.PENDING, DeliveryState.SENDING),
        )
        value = rows[0]["t"]
        return None if value is None else float(value)

    async def rows_for(self, platform: str, channel: str) -> list[Delivery]:
        rows = await self._database.fetchall(
            "SELECT * FROM deliveries WHERE platform = ? AND channel = ? ORDER BY id",
            (platform, channel),
        )
        return [_delivery(r) for r in rows]

    # --- moving a row through its states ----------------------------------------------------

    async def _update(self, delivery_id: int, sql: str, params: Sequence[Any]) -> int:
        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                f"UPDATE deliveries SET {sql}, updated_at = ? WHERE id = ?",
                (*params, self._clock.time(), delivery_id),
            )
            return cursor.rowcount

        return await self._database.write(body)

    async def mark_sending(self, delivery_id: int) -> bool:
        """Claim a pending row for a send; False when it is no longer pending (sent, parked or
        dropped since the scheduler read it), and then nothing is sent."""
        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE id = ? AND state = ?",
                (DeliveryState.SENDING, self._clock.time(), delivery_id, DeliveryState.PENDING),
            )
            return cursor.rowcount

        return await self._database.write(body) == 1

    async def mark_sent(self, delivery_id: int, message_ref: str | None) -> None:
        await self._update(
            delivery_id,
            "state = ?, message_ref = ?, last_error = NULL, uncertain = 0",
            (DeliveryState.SENT, message_ref),
        )

    async def mark_retry(
        self, delivery_id: int, next_attempt_at: float, error: str, uncertain: bool = False
    ) -> None:
        """Back to pending. `uncertain`: the attempt may have posted; once set, it stays set
        until the row is sent (a later, clean failure does not undo an earlier doubt)."""
        await self._update(
            delivery_id,
            "state = ?, next_attempt_at = ?, last_error = ?, uncertain = MAX(uncertain, ?)",
            (DeliveryState.PENDING, next_attempt_at, error, int(uncertain)),
        )

    async def hold_channel(self, platform: str, channel: str, until: float) -> int:
        """A rate limit covers the whole channel: no pending row of it is due before `until`.
        Written down, so the wait survives a restart."""

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? "
                "WHERE platform = ? AND channel = ? AND state = ? AND next_attempt_at < ?",
                (until, self._clock.time(), platform, channel, DeliveryState.PENDING, until),
            )
            return cursor.rowcount

        return await self._database.write(body)

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        await self._update(
            delivery_id, "state = ?, last_error = ?", (DeliveryState.FAILED, error)
        )
