"""The delivery outbox, written in the same transaction as the routing that decided it, then
moved through its states by delivery. A row is one of these kinds:

- a **post**: a story in a channel, once (unique per platform, channel and story);
- an **edit** of a post, when coverage arrives late or an article changes (at most one waiting
  per post: whatever it shows is rendered when it goes);
- a **reply** in a post's thread, one per late article (`late_coverage = "thread"`);
- a **retraction** of a post, when an article shows that two stories a channel got are one:
  the younger post is withdrawn and the older one edited, so the channel keeps one post;
- a **digest**: the top stories a digest subscription collected, due at its digest time (one
  per subscription and time; bot/digest_store.py).

A post routed during its subscription's quiet hours is due when they end (`held_by`), unless
its story is breaking; a breaking post carries the id it pings (`mention`).

    pending ──> sending ──> sent
       ^           │
       └── retry ──┤──> failed  (the payload was refused: never retried)
                   └──> parked  (the channel refused us: waits for someone to fix it)

A row is marked `sending` (committed) before the platform is asked, so a row found `sending`
at start-up was interrupted and is resolved before any resend (docs/reliability.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiosqlite

from bot.articles import Article, article_from_dict
from bot.breaking import StoryFacts, story_facts
from bot.clock import Clock
from bot.database import StateDatabase
from bot.digest_store import collect, merge_digest_items
from bot.schedule_time import quiet_until
from bot.subscriptions import LateCoverage, Subscription


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # committed before the send: found at start-up, it was interrupted
    SENT = "sent"
    FAILED = "failed"  # the platform rejected the payload itself; never retried
    PARKED = "parked"  # the channel refused us for good; waits for the subscription to return


class DeliveryKind(StrEnum):
    POST = "post"
    EDIT = "edit"
    REPLY = "reply"
    RETRACT = "retract"  # the post's story joined an older one this channel has: withdraw it
    DIGEST = "digest"  # a digest subscription's top stories, due at its digest time


# How long a send claimed by a worker stays its own: well past the longest request (with its
# retries inside one attempt), so that only a worker gone mid-send loses its rows.
CLAIM_S = 120.0
HELD_BY_QUIET_HOURS = "quiet_hours"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    platform: str
    channel: str
    article_key: str  # a post: the article that brought the story here; a reply: the newcomer
    subscription_id: int | None
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    message_ref: str | None
    uncertain: bool = False  # the last attempt may have posted: look before sending again
    sort_at: float = 0.0  # the article's published time: a channel's rows go oldest first
    story_id: int = 0
    kind: DeliveryKind = DeliveryKind.POST
    post_id: int | None = None  # an edit's or a reply's post
    headline_key: str | None = None  # a post: the article it leads with
    shown_hash: str | None = None  # a post: what its message shows now
    thread_ref: str | None = None  # a post: the thread its replies go to, once there is one
    posted_at: float | None = None
    period_at: float | None = None  # a digest: the digest time it is for
    mention: str | None = None  # a post or digest: the role or group it pings
    held_by: str | None = None  # a post: why it waits beyond routing (quiet hours)

    @property
    def key(self) -> str:
        """The delivery's identity, stable across retries and restarts (a post's is the same
        as before stories: platform, channel and the article that brought the story; a
        digest's: its subscription and digest time)."""
        if self.kind is DeliveryKind.DIGEST:
            period = int(self.period_at or 0)
            return f"{self.platform}:{self.channel}:digest:{self.subscription_id}:{period}"
        base = f"{self.platform}:{self.channel}:{self.article_key}"
        if self.kind is DeliveryKind.POST:
            return base
        return f"{base}:{self.kind}:{self.post_id}"


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


@dataclass(frozen=True, slots=True)
class PostTiming:
    """When a new post may go, and whom it pings."""

    due_at: float
    breaking: bool = False
    mention: str | None = None
    held_by: str | None = None


def post_timing(sub: Subscription, facts: StoryFacts | None, now: float) -> PostTiming:
    """A post goes now, unless quiet hours hold it until they end; a breaking story (`facts`,
    needed only when the subscription has quiet hours or a mention) goes now whatever the
    hour, pinging the subscription's mention."""
    if facts is not None and sub.breaking.applies(facts):
        return PostTiming(now, breaking=True, mention=sub.mention)
    held = quiet_until(sub.quiet_hours, sub.timezone, datetime.fromtimestamp(now, UTC))
    if held is None:
        return PostTiming(now)
    return PostTiming(held.timestamp(), held_by=HELD_BY_QUIET_HOURS)


def _needs_facts(sub: Subscription) -> bool:
    return sub.quiet_hours is not None or sub.mention is not None


async def _story_facts(db: aiosqlite.Connection, story_id: int) -> StoryFacts:
    async with db.execute("SELECT payload FROM articles WHERE story_id = ?", (story_id,)) as cur:
        rows = await cur.fetchall()
    return story_facts(article_from_dict(json.loads(row[0])) for row in rows)


async def enqueue(
    db: aiosqlite.Connection,
    rows: Sequence[tuple[Article, int, Subscription]],
    now: float,
    late: bool = True,
) -> int:
    """Posts for (article, story, subscription) triples, inside the caller's transaction (or,
    for a digest subscription, the story collected for its next digest); returns how many are
    new. A channel that has the story already gets its late coverage instead (`late=False`:
    nothing, as for a backfill)."""
    created = 0
    facts: dict[int, StoryFacts] = {}  # a fan-out asks about the same story for each channel
    for article, story_id, sub in rows:
        if sub.schedule.is_digest:
            created += await collect(db, sub, story_id, article.key, now)
            continue
        if _needs_facts(sub) and story_id not in facts:
            facts[story_id] = await _story_facts(db, story_id)
        timing = post_timing(sub, facts.get(story_id), now)
        cursor = await db.execute(
            "INSERT INTO deliveries (platform, channel, story_id, kind, article_key, "
            "headline_key, subscription_id, state, attempts, next_attempt_at, created_at, "
            "updated_at, sort_at, mention, held_by) "
            "VALUES (?, ?, ?, 'post', ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                sub.platform, sub.channel, story_id, article.key, article.key, sub.id,
                DeliveryState.PENDING, timing.due_at, now, now, sort_time(article, now),
                timing.mention, timing.held_by,
            ),
        )
        if cursor.rowcount > 0:
            created += 1
        elif late:
            await _cover_late(db, story_id, article, sub, now)
    return created


async def _cover_late(
    db: aiosqlite.Connection, story_id: int, article: Article, sub: Subscription, now: float
) -> None:
    """An article joined a story this channel already has: maybe a better headline, then an
    edit or a reply, as the subscription asks (a post not sent yet shows it when it goes)."""
    async with db.execute(
        "SELECT d.id, d.state, a.quality, d.mention FROM deliveries d "
        "LEFT JOIN articles a ON a.key = d.headline_key "
        "WHERE d.platform = ? AND d.channel = ? AND d.story_id = ? AND d.kind = 'post'",
        (sub.platform, sub.channel, story_id),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return
    post_id, state, headline_quality, mention = row
    if state == DeliveryState.PENDING and mention is None and _needs_facts(sub):
        await _break_through(db, post_id, story_id, sub, now)
    if sub.late_coverage is LateCoverage.OFF:
        return
    if (
        sub.late_coverage is LateCoverage.EDIT
        and article.quality is not None
        and (headline_quality is None or article.quality >= headline_quality + sub.headline_margin)
    ):
        await db.execute(
            "UPDATE deliveries SET headline_key = ? WHERE id = ?", (article.key, post_id)
        )
    if state != DeliveryState.SENT:
        return
    kind = DeliveryKind.EDIT if sub.late_coverage is LateCoverage.EDIT else DeliveryKind.REPLY
    await _follow_up(db, post_id, kind, article, now)


async def _break_through(
    db: aiosqlite.Connection, post_id: int, story_id: int, sub: Subscription, now: float
) -> None:
    """A post not sent yet whose story has just become breaking (a high-quality article, or
    one outlet too many, joined it): it goes now, held by quiet hours or not, with its ping."""
    timing = post_timing(sub, await _story_facts(db, story_id), now)
    if not timing.breaking:
        return
    # Only a quiet-hours hold is lifted: a wait the platform asked for (a retry, a 429) stays.
    await db.execute(
        "UPDATE deliveries SET mention = ?, next_attempt_at = CASE "
        "WHEN held_by IS NOT NULL AND attempts = 0 AND next_attempt_at > ? THEN ? "
        "ELSE next_attempt_at END, held_by = NULL WHERE id = ?",
        (timing.mention, now, now, post_id),
    )


async def _follow_up(
    db: aiosqlite.Connection,
    post_id: int,
    kind: DeliveryKind,
    article: Article | None,
    now: float,
) -> None:
    """An edit (one waiting per post at most), a reply (one per article: `article`) or a
    retraction of a sent post."""
    await db.execute(
        "INSERT INTO deliveries (platform, channel, story_id, kind, article_key, "
        "post_id, subscription_id, state, attempts, next_attempt_at, created_at, updated_at, "
        "sort_at) SELECT platform, channel, story_id, ?, COALESCE(?, article_key), id, "
        "subscription_id, ?, 0, ?, ?, ?, ? FROM deliveries WHERE id = ? "
        "ON CONFLICT DO NOTHING",
        (
            kind, article.key if article else None, DeliveryState.PENDING, now, now, now, now,
            post_id,
        ),
    )


async def merge_posts(
    db: aiosqlite.Connection, absorbed: int, survivor: int, now: float
) -> None:
    """Story `absorbed` joined `survivor`. Where a channel has posts of both, the younger one
    is withdrawn (dropped if not sent yet) and the older edited to show the whole story; where
    it has only the younger, that post becomes the story's (edited, if it went out)."""
    async with db.execute(
        "SELECT a.id, a.state, s.id, s.state FROM deliveries a LEFT JOIN deliveries s "
        "ON s.platform = a.platform AND s.channel = a.channel AND s.story_id = ? "
        "AND s.kind = 'post' WHERE a.story_id = ? AND a.kind = 'post'",
        (survivor, absorbed),
    ) as cursor:
        pairs = list(await cursor.fetchall())
    await merge_digest_items(db, absorbed, survivor)
    for post_id, state, kept_id, kept_state in pairs:
        if kept_id is None:
            await db.execute(
                "UPDATE deliveries SET story_id = ? WHERE id = ? OR post_id = ?",
                (survivor, post_id, post_id),
            )
            if state == DeliveryState.SENT:
                await _follow_up(db, post_id, DeliveryKind.EDIT, None, now)
            continue
        await db.execute(
            "DELETE FROM deliveries WHERE post_id = ? AND kind != 'retract' AND state = ?",
            (post_id, DeliveryState.PENDING),
        )
        if state == DeliveryState.SENT:
            await _follow_up(db, post_id, DeliveryKind.RETRACT, None, now)
        else:
            await db.execute("DELETE FROM deliveries WHERE id = ?", (post_id,))
        if kept_state == DeliveryState.SENT:
            await _follow_up(db, kept_id, DeliveryKind.EDIT, None, now)


async def correct(db: aiosqlite.Connection, story_id: int, article: Article, now: float) -> int:
    """An article of this story changed (a corrected title, excerpt or quality): every post of
    the story that went out gets an edit (sent only if what it shows really changes)."""
    async with db.execute(
        "SELECT id FROM deliveries WHERE story_id = ? AND kind = 'post' AND state = ?",
        (story_id, DeliveryState.SENT),
    ) as cursor:
        posts = [row[0] for row in await cursor.fetchall()]
    for post_id in posts:
        await _follow_up(db, post_id, DeliveryKind.EDIT, article, now)
    return len(posts)


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
        story_id=row["story_id"],
        kind=DeliveryKind(row["kind"]),
        post_id=row["post_id"],
        headline_key=row["headline_key"],
        shown_hash=row["shown_hash"],
        thread_ref=row["thread_ref"],
        posted_at=row["posted_at"],
        period_at=row["period_at"],
        mention=row["mention"],
        held_by=row["held_by"],
    )


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class Outbox:
    """The rows and their states; shares the `Database` (and its one writer) with `State`."""

    def __init__(self, database: StateDatabase, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        # Who claims the sends (bot/crew.py), and for how long a claim holds: past it, another
        # worker may take the row as interrupted (after asking the platform whether it went).
        self.claimer = "alone"
        self.claim_s = CLAIM_S

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

    async def interrupted(self, gone_before: float | None = None) -> list[Delivery]:
        """Rows left `sending`: all of them (a start alone on the database), or, beside other
        workers, those whose claimer is gone (unseen since `gone_before`, bot/crew.py) or
        whose claim ran out."""
        if gone_before is None:
            rows = await self._database.fetchall(
                "SELECT * FROM deliveries WHERE state = ? ORDER BY id", (DeliveryState.SENDING,)
            )
        else:
            rows = await self._database.fetchall(
                "SELECT * FROM deliveries WHERE state = ? AND (lease_until IS NULL "
                "OR lease_until < ? OR claimed_by NOT IN "
                "(SELECT id FROM workers WHERE seen_at >= ?)) ORDER BY id",
                (DeliveryState.SENDING, self._clock.time(), gone_before),
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
        """Since when the oldest row still waiting has been due (wall clock), or None: when it
        was queued, or, for a digest or a post held by quiet hours, the time it waited for (a
        digest collecting until tomorrow is not a delivery running late)."""
        rows = await self._database.fetchall(
            "SELECT MIN(CASE WHEN kind = 'digest' THEN period_at "
            "WHEN held_by IS NOT NULL AND attempts = 0 THEN next_attempt_at "
            "ELSE created_at END) AS t FROM deliveries WHERE state IN (?, ?)",
            (DeliveryState.PENDING, DeliveryState.SENDING),
        )
        value = rows[0]["t"]
        return None if value is None else float(value)

    async def digest_items(self, digest_id: int) -> list[tuple[int, str]]:
        """(story id, the article that brought it) of each story a digest lists."""
        rows = await self._database.fetchall(
            "SELECT story_id, article_key FROM digest_items WHERE delivery_id = ? "
            "ORDER BY added_at, story_id",
            (digest_id,),
        )
        return [(int(r["story_id"]), str(r["article_key"])) for r in rows]

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
            now = self._clock.time()
            cursor = await db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, updated_at = ?, "
                "claimed_by = ?, lease_until = ? WHERE id = ? AND state = ?",
                (
                    DeliveryState.SENDING, now, self.claimer, now + self.claim_s, delivery_id,
                    DeliveryState.PENDING,
                ),
            )
            return cursor.rowcount

        return await self._database.write(body) == 1

    async def mark_sent(
        self, delivery_id: int, message_ref: str | None, shown_hash: str | None = None
    ) -> None:
        """Sent; a post also records what its message shows (for later edits) and when."""
        await self._update(
            delivery_id,
            "state = ?, message_ref = ?, last_error = NULL, uncertain = 0, "
            "shown_hash = COALESCE(?, shown_hash), "
            "posted_at = CASE WHEN kind IN ('post', 'digest') THEN COALESCE(posted_at, ?) "
            "ELSE posted_at END",
            (DeliveryState.SENT, message_ref, shown_hash, self._clock.time()),
        )

    async def post_of(self, delivery: Delivery) -> Delivery | None:
        """The post an edit or a reply belongs to."""
        if delivery.post_id is None:
            return None
        rows = await self._database.fetchall(
            "SELECT * FROM deliveries WHERE id = ?", (delivery.post_id,)
        )
        return _delivery(rows[0]) if rows else None

    async def post_for(self, platform: str, channel: str, story_id: int) -> Delivery | None:
        """The channel's post of a story, if it has one."""
        rows = await self._database.fetchall(
            "SELECT * FROM deliveries WHERE platform = ? AND channel = ? AND story_id = ? "
            "AND kind = 'post'",
            (platform, channel, story_id),
        )
        return _delivery(rows[0]) if rows else None

    async def digest_listing(self, subscription_id: int, story_id: int) -> Delivery | None:
        """The digest row that lists (or will list) a story for a digest subscription."""
        rows = await self._database.fetchall(
            "SELECT d.* FROM digest_items i JOIN deliveries d ON d.id = i.delivery_id "
            "WHERE i.subscription_id = ? AND i.story_id = ?",
            (subscription_id, story_id),
        )
        return _delivery(rows[0]) if rows else None

    async def follow_ups(self, post_id: int, article_key: str | None = None) -> list[Delivery]:
        """The edits, replies and retraction of a post (those about one article, if given)."""
        sql = "SELECT * FROM deliveries WHERE post_id = ?"
        params: list[Any] = [post_id]
        if article_key is not None:
            sql += " AND article_key = ?"
            params.append(article_key)
        rows = await self._database.fetchall(sql + " ORDER BY id", params)
        return [_delivery(r) for r in rows]

    async def record_shown(
        self, post_id: int, shown_hash: str, thread_ref: str | None = None
    ) -> None:
        """What a post's message shows after an edit (and the thread its replies go to)."""
        await self._update(
            post_id,
            "shown_hash = ?, thread_ref = COALESCE(?, thread_ref)",
            (shown_hash, thread_ref),
        )

    async def mark_retry(
        self, delivery_id: int, next_attempt_at: float, error: str, uncertain: bool = False
    ) -> None:
        """Back to pending. `uncertain`: the attempt may have posted; once set, it stays set
        until the row is sent (a later, clean failure does not undo an earlier doubt)."""
        await self._update(
            delivery_id,
            "state = ?, next_attempt_at = ?, last_error = ?, "
            "uncertain = CASE WHEN uncertain > ? THEN uncertain ELSE ? END",
            (DeliveryState.PENDING, next_attempt_at, error, int(uncertain), int(uncertain)),
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
