"""Subscriptions: who wants what, where, and how (filters, late coverage, digests, quiet
hours, mentions); which are parked and why; the backfill a new one runs once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

from bot.articles import Article, article_from_dict
from bot.clock import Clock
from bot.database import StateDatabase
from bot.digest_store import drop_open_digests, reschedule_open_digest
from bot.outbox import DeliveryState, enqueue
from bot.schedule_time import DeliveryMode, QuietHours, format_time_of_day, parse_time_of_day
from bot.subscriptions import LateCoverage, Subscription, SubscriptionSource, topics_key


def _json_list(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


class SubscriptionRepository:
    def __init__(self, database: StateDatabase, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def late_coverage_of(self, subscription_id: int | None) -> LateCoverage:
        """How this subscription shows late coverage (edit, when it is gone)."""
        if subscription_id is None:
            return LateCoverage.EDIT
        rows = await self._database.fetchall(
            "SELECT late_coverage FROM subscriptions WHERE id = ?", (subscription_id,)
        )
        return LateCoverage(rows[0]["late_coverage"]) if rows else LateCoverage.EDIT

    @staticmethod
    def _subscription(row: Any) -> Subscription:
        include = row["include_unscored"]
        quiet = row["quiet_hours"]
        return Subscription(
            id=row["id"],
            platform=row["platform"],
            channel=row["channel"],
            topics=tuple(json.loads(row["topics"])),
            min_quality=row["min_quality"],
            include_unscored=None if include is None else bool(include),
            providers_include=tuple(json.loads(row["providers_include"])),
            providers_exclude=tuple(json.loads(row["providers_exclude"])),
            keywords=tuple(json.loads(row["keywords"])),
            max_age_days=row["max_age_days"],
            late_coverage=LateCoverage(row["late_coverage"]),
            headline_margin=row["headline_margin"],
            mode=DeliveryMode(row["mode"]),
            digest_at=parse_time_of_day(row["digest_at"]),
            timezone=row["timezone"],
            quiet_hours=QuietHours.parse(quiet) if quiet else None,
            breaking_quality=row["breaking_quality"],
            breaking_outlets=row["breaking_outlets"],
            mention=row["mention"],
            backfill=row["backfill"],
            source=SubscriptionSource(row["source"]),
            created_at=row["created_at"],
            parked_reason=row["parked_reason"],
            parked_for=row["parked_for"],
        )

    async def subscriptions(
        self, platform: str | None = None, channel: str | None = None
    ) -> list[Subscription]:
        where, params = [], []
        if platform is not None:
            where.append("platform = ?")
            params.append(platform)
        if channel is not None:
            where.append("channel = ?")
            params.append(channel)
        sql = "SELECT * FROM subscriptions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._database.fetchall(sql + " ORDER BY id", params)
        return [self._subscription(r) for r in rows]

    async def backfill_ran(self, platform: str, channel: str, topics: tuple[str, ...]) -> bool:
        """Whether these topics in this channel had their backfill already (it runs once)."""
        rows = await self._database.fetchall(
            "SELECT 1 FROM backfills WHERE platform = ? AND channel = ? AND topics_key = ?",
            (platform, channel, topics_key(topics)),
        )
        return bool(rows)

    async def subscription(self, sub_id: int) -> Subscription | None:
        rows = await self._database.fetchall("SELECT * FROM subscriptions WHERE id = ?", (sub_id,))
        return self._subscription(rows[0]) if rows else None

    async def add_subscription(
        self, sub: Subscription, route: Callable[[Subscription, Article], bool] | None = None
    ) -> tuple[Subscription, bool]:
        """Insert `sub` (its id is ignored) or update the one with the same platform, channel
        and topics. Returns the stored subscription and whether it is new. A new one backfills
        up to `sub.backfill` of the most recent articles that `route` accepts, unless these
        topics in this channel had their backfill before (`backfill_ran`)."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> tuple[Subscription, bool]:
            key = topics_key(sub.topics)
            async with db.execute(
                "SELECT id FROM subscriptions WHERE platform = ? AND channel = ? AND "
                "topics_key = ?",
                (sub.platform, sub.channel, key),
            ) as cur:
                existing = await cur.fetchone()
            values = (
                _json_list(sub.topics),
                sub.min_quality,
                None if sub.include_unscored is None else int(sub.include_unscored),
                _json_list(sub.providers_include),
                _json_list(sub.providers_exclude),
                _json_list(sub.keywords),
                sub.max_age_days,
                sub.backfill,
                str(sub.late_coverage),
                sub.headline_margin,
                str(sub.mode),
                format_time_of_day(sub.digest_at),
                sub.timezone,
                None if sub.quiet_hours is None else str(sub.quiet_hours),
                sub.breaking_quality,
                sub.breaking_outlets,
                sub.mention,
            )
            if existing is not None:
                await db.execute(
                    "UPDATE subscriptions SET topics = ?, min_quality = ?, include_unscored = ?, "
                    "providers_include = ?, providers_exclude = ?, keywords = ?, "
                    "max_age_days = ?, backfill = ?, late_coverage = ?, headline_margin = ?, "
                    "mode = ?, digest_at = ?, timezone = ?, quiet_hours = ?, "
                    "breaking_quality = ?, breaking_outlets = ?, mention = ? "
                    "WHERE id = ?",
                    (*values, existing[0]),
                )
                sub_id, created = int(existing[0]), False
            else:
                cursor = await db.execute(
                    "INSERT INTO subscriptions (topics, min_quality, include_unscored, "
                    "providers_include, providers_exclude, keywords, max_age_days, backfill, "
                    "late_coverage, headline_margin, mode, digest_at, timezone, quiet_hours, "
                    "breaking_quality, breaking_outlets, mention, "
                    "platform, channel, topics_key, source, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id",
                    (*values, sub.platform, sub.channel, key, sub.source, now),
                )
                new_row = await cursor.fetchone()
                assert new_row is not None
                sub_id, created = int(new_row[0]), True
            async with db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)) as cur:
                row = await cur.fetchone()
            assert row is not None
            stored = self._subscription(row)
            if not created:
                # A changed digest time or zone: the digest now collecting goes at the new one.
                await reschedule_open_digest(db, stored, now)
            if created and stored.backfill > 0 and route is not None:
                # Once per channel and topics, ever (a row says it ran, even if it took none).
                cursor = await db.execute(
                    "INSERT INTO backfills (platform, channel, topics_key, ran_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (stored.platform, stored.channel, key, now),
                )
                if cursor.rowcount:
                    await self._backfill(db, stored, route, now)
            return stored, created

        return await self._database.write(body)

    async def _backfill(
        self,
        db: aiosqlite.Connection,
        sub: Subscription,
        route: Callable[[Subscription, Article], bool],
        now: float,
    ) -> None:
        taken = 0
        async with db.execute(
            "SELECT payload, story_id FROM articles "
            "ORDER BY published_at DESC NULLS LAST, first_seen_at DESC"
        ) as cursor:
            async for row in cursor:
                article = article_from_dict(json.loads(row[0]))
                if route(sub, article):
                    # One post per story: a second article of a story already taken adds none.
                    taken += await enqueue(db, [(article, row[1], sub)], now, late=False)
                    if taken >= sub.backfill:
                        break

    async def remove_subscriptions(
        self, platform: str, channel: str, topic: str | None = None
    ) -> int:
        """Remove this channel's subscriptions: those carrying `topic`, or all of them.
        A subscription to several topics loses only `topic`. Those from the config file are
        left alone: the file owns them. Returns how many changed."""

        async def body(db: aiosqlite.Connection) -> int:
            async with db.execute(
                "SELECT * FROM subscriptions WHERE platform = ? AND channel = ?",
                (platform, channel),
            ) as cur:
                rows = list(await cur.fetchall())
            changed = 0
            for row in rows:
                sub = self._subscription(row)
                if sub.source is SubscriptionSource.CONFIG:
                    continue
                if topic is None:
                    remaining: tuple[str, ...] = ()
                else:
                    remaining = tuple(t for t in sub.topics if t.casefold() != topic.casefold())
                    if remaining == sub.topics:
                        continue
                if remaining:
                    key = topics_key(remaining)
                    async with db.execute(
                        "SELECT 1 FROM subscriptions WHERE platform = ? AND channel = ? AND "
                        "topics_key = ? AND id != ?",
                        (platform, channel, key, sub.id),
                    ) as cur:
                        twin = await cur.fetchone()
                    if twin is not None:
                        # What is left equals another subscription of this channel: keep that
                        # one (and its settings) rather than overwrite it.
                        await self._delete_subscription(db, sub.id)
                    else:
                        await db.execute(
                            "UPDATE subscriptions SET topics = ?, topics_key = ? WHERE id = ?",
                            (_json_list(remaining), key, sub.id),
                        )
                else:
                    await self._delete_subscription(db, sub.id)
                changed += 1
            return changed

        return await self._database.write(body)

    async def _delete_subscription(self, db: aiosqlite.Connection, sub_id: int) -> bool:
        """Delete a subscription; when its channel has no other subscription left, its posts
        not yet sent are dropped too (nobody there wants them any more)."""
        async with db.execute(
            "SELECT platform, channel FROM subscriptions WHERE id = ?", (sub_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return False
        await db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
        # Its digest still collecting is nobody's now (one that went out stays recorded).
        await drop_open_digests(db, sub_id)
        async with db.execute(
            "SELECT 1 FROM subscriptions WHERE platform = ? AND channel = ?", (row[0], row[1])
        ) as cur:
            others = await cur.fetchone()
        if others is None:
            await db.execute(
                "DELETE FROM deliveries WHERE platform = ? AND channel = ? AND state IN (?, ?)",
                (row[0], row[1], DeliveryState.PENDING, DeliveryState.PARKED),
            )
        return True

    async def remove_subscription_by_id(self, sub_id: int, *, config_too: bool = False) -> bool:
        """Remove one subscription; one from the config file only with `config_too` (the sync
        with the file), since the file owns it."""

        async def body(db: aiosqlite.Connection) -> bool:
            if not config_too:
                async with db.execute(
                    "SELECT source FROM subscriptions WHERE id = ?", (sub_id,)
                ) as cur:
                    row = await cur.fetchone()
                if row is not None and row[0] == SubscriptionSource.CONFIG:
                    return False
            return await self._delete_subscription(db, sub_id)

        return await self._database.write(body)

    async def sync_config_subscriptions(
        self,
        wanted: Sequence[Subscription],
        route: Callable[[Subscription, Article], bool],
    ) -> list[Subscription]:
        """Make the config-sourced subscriptions match `wanted`; returns the new ones."""
        created = []
        keep: set[int] = set()
        for sub in wanted:
            stored, is_new = await self.add_subscription(sub, route)
            keep.add(stored.id)
            if is_new:
                created.append(stored)
        stale = [
            s.id
            for s in await self.subscriptions()
            if s.source is SubscriptionSource.CONFIG and s.id not in keep
        ]
        for sub_id in stale:
            await self.remove_subscription_by_id(sub_id, config_too=True)
        return created

    async def park_channel(
        self, platform: str, channel: str, reason: str, cause: str | None = None
    ) -> int:
        """The platform refused this channel for good (or, `cause`, the secret posting there
        needs is not set): park its subscriptions and its undelivered rows, so nothing more is
        sent there until someone fixes it."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE subscriptions SET parked_reason = ?, parked_at = ?, parked_for = ? "
                "WHERE platform = ? AND channel = ?",
                (reason, now, cause, platform, channel),
            )
            await db.execute(
                "UPDATE deliveries SET state = ?, last_error = ?, updated_at = ? "
                "WHERE platform = ? AND channel = ? AND state IN (?, ?)",
                (
                    DeliveryState.PARKED,
                    reason,
                    now,
                    platform,
                    channel,
                    DeliveryState.PENDING,
                    DeliveryState.SENDING,
                ),
            )
            return cursor.rowcount

        return await self._database.write(body)

    async def unpark_channel(self, platform: str, channel: str) -> int:
        """Someone fixed the channel (re-subscribed): resume it, parked posts included."""
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE subscriptions SET parked_reason = NULL, parked_at = NULL, "
                "parked_for = NULL WHERE platform = ? AND channel = ? "
                "AND parked_reason IS NOT NULL",
                (platform, channel),
            )
            await db.execute(
                # A digest, or a post held by quiet hours, still waits for its time.
                "UPDATE deliveries SET state = ?, next_attempt_at = CASE WHEN kind = 'digest' "
                "OR (held_by IS NOT NULL AND attempts = 0) THEN CASE WHEN next_attempt_at > ? "
                "THEN next_attempt_at ELSE ? END ELSE ? END, "
                "updated_at = ? WHERE platform = ? AND channel = ? AND state = ?",
                (
                    DeliveryState.PENDING,
                    now,
                    now,
                    now,
                    now,
                    platform,
                    channel,
                    DeliveryState.PARKED,
                ),
            )
            return cursor.rowcount

        return await self._database.write(body)
