"""Digests in the database, inside the caller's transaction: a digest subscription's stories
are collected under the outbox row (kind `digest`) that will list them. The timing rules are
bot/schedule_time.py's; what a digest shows is bot/digest.py's.

A subscription has at most one digest collecting at a time: the row for its next digest time
(`period_at`), due then, unique per subscription and time. A story routed once that time has
come goes to the row of the time after, so what a digest lists is settled when it is due, and
every retry of it shows the same stories. The row waits in the outbox like any other, so a
digest due while the bot was down goes out when it is back, once; the times it missed meanwhile
collected nothing (nothing was routed), so they send nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiosqlite

from bot.schedule_time import next_digest_at
from bot.subscriptions import Subscription

# Rows that have not gone out: collecting, due, or waiting for a parked channel to return.
_UNSENT = ("pending", "parked")


async def collect(
    db: aiosqlite.Connection, sub: Subscription, story_id: int, article_key: str, now: float
) -> bool:
    """Put the story in the subscription's next digest; False when the subscription has had
    it already (a story is listed once, as a channel gets one post per story)."""
    async with db.execute(
        "SELECT 1 FROM digest_items WHERE subscription_id = ? AND story_id = ?",
        (sub.id, story_id),
    ) as cursor:
        if await cursor.fetchone() is not None:
            return False
    digest_id = await _collecting(db, sub, article_key, now)
    await db.execute(
        "INSERT INTO digest_items (subscription_id, story_id, delivery_id, article_key, "
        "added_at) VALUES (?, ?, ?, ?, ?)",
        (sub.id, story_id, digest_id, article_key, now),
    )
    return True


async def _collecting(
    db: aiosqlite.Connection, sub: Subscription, article_key: str, now: float
) -> int:
    """The digest row still collecting for `sub`, made for its next digest time if none is."""
    async with db.execute(
        "SELECT id FROM deliveries WHERE kind = 'digest' AND subscription_id = ? "
        "AND period_at > ? AND state IN (?, ?) ORDER BY period_at LIMIT 1",
        (sub.id, now, *_UNSENT),
    ) as cursor:
        row = await cursor.fetchone()
    if row is not None:
        return int(row[0])
    period_at = next_digest_at(sub.schedule, datetime.fromtimestamp(now, UTC)).timestamp()
    # `article_key`: the article that opened the digest (the column names one for every row).
    await db.execute(
        "INSERT INTO deliveries (platform, channel, story_id, kind, article_key, "
        "subscription_id, state, attempts, next_attempt_at, created_at, updated_at, sort_at, "
        "period_at) VALUES (?, ?, 0, 'digest', ?, ?, 'pending', 0, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (sub.platform, sub.channel, article_key, sub.id, period_at, now, now, period_at,
         period_at),
    )
    async with db.execute(
        "SELECT id FROM deliveries WHERE kind = 'digest' AND subscription_id = ? "
        "AND period_at = ?",
        (sub.id, period_at),
    ) as cursor:
        made = await cursor.fetchone()
    assert made is not None
    return int(made[0])


async def reschedule_open_digest(db: aiosqlite.Connection, sub: Subscription, now: float) -> None:
    """The subscription's digest time or zone changed: the digest collecting goes at the new
    next time. (Turned instant, it still goes at its time with what it collected.)"""
    if not sub.schedule.is_digest:
        return
    period_at = next_digest_at(sub.schedule, datetime.fromtimestamp(now, UTC)).timestamp()
    await db.execute(
        "UPDATE deliveries SET period_at = ?, next_attempt_at = ?, sort_at = ? "
        "WHERE kind = 'digest' AND subscription_id = ? AND period_at > ? AND state = 'pending'",
        (period_at, period_at, period_at, sub.id, now),
    )


async def drop_open_digests(db: aiosqlite.Connection, sub_id: int) -> None:
    """The subscription is gone: its digests not sent go with it."""
    await db.execute(
        "DELETE FROM digest_items WHERE delivery_id IN (SELECT id FROM deliveries WHERE "
        "kind = 'digest' AND subscription_id = ? AND state IN (?, ?))",
        (sub_id, *_UNSENT),
    )
    await db.execute(
        "DELETE FROM deliveries WHERE kind = 'digest' AND subscription_id = ? "
        "AND state IN (?, ?)",
        (sub_id, *_UNSENT),
    )


async def merge_digest_items(db: aiosqlite.Connection, absorbed: int, survivor: int) -> None:
    """Story `absorbed` joined `survivor`: each subscription keeps one item of the story."""
    await db.execute(
        "DELETE FROM digest_items WHERE story_id = ? AND subscription_id IN "
        "(SELECT subscription_id FROM digest_items WHERE story_id = ?)",
        (absorbed, survivor),
    )
    await db.execute(
        "UPDATE digest_items SET story_id = ? WHERE story_id = ?", (survivor, absorbed)
    )
