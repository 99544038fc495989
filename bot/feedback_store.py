"""The memory of reactions and of what they taught, on the shared `Database`: its own tables
(migration 10), portable SQL only (it runs on SQLite now and on PostgreSQL later).

- `feedback_votes`: one row per (channel, story, sign, person, emoji) while the reaction stands;
  the person is a salted hash (`voter_hash`), never their id, so a person counts once.
- `feedback_posts`: what each voted post was about (its topics and outlet), kept when the first
  vote comes so the rule reads only these tables.
- `learn_modes`: each subscription's `learn` (none stored: the default).
- `learned_adjustments`: every adjustment, suggested or applied, dismissed or undone, with the
  votes that caused it.
- `feedback_channels`: when a channel was last sent a suggestion (at most weekly).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiosqlite

from bot.database import StateDatabase
from bot.learning import (
    Adjustment,
    Change,
    Kind,
    Learned,
    LearnMode,
    Standing,
    Subject,
    Tally,
    Vote,
    fold,
)

SALT_META_KEY = "feedback.salt"


class Status(StrEnum):
    SUGGESTED = "suggested"  # waits for someone who may manage the channel
    APPLIED = "applied"  # in force
    DISMISSED = "dismissed"  # a suggestion turned down
    UNDONE = "undone"  # was in force, reverted


@dataclass(frozen=True, slots=True)
class AdjustmentRow:
    id: int
    platform: str
    channel: str
    kind: Kind
    subject: str
    shift: float
    exclude: bool
    status: Status
    tally: Tally
    created_at: float
    decided_at: float | None = None
    decided_by: str | None = None
    notice_ref: str | None = None  # the message that announced it, with its buttons

    def in_force(self) -> Adjustment:
        return Adjustment(
            self.id, self.kind, self.subject, self.shift, self.exclude, self.tally,
            self.decided_at or self.created_at,
        )


@dataclass(frozen=True, slots=True)
class OurPost:
    """A message the outbox knows we posted: its story and the article it shows."""

    story_id: int
    article_key: str


def voter_hash(salt: str, platform: str, user_id: str) -> str:
    """A keyed hash of a person on a platform: the same person gives the same value, and
    without the salt nobody can tell who it was."""
    message = f"{platform}:{user_id}".encode()
    return hmac.new(salt.encode("utf-8"), message, hashlib.sha256).hexdigest()[:32]


def _row(r: aiosqlite.Row) -> AdjustmentRow:
    return AdjustmentRow(
        id=int(r["id"]),
        platform=r["platform"],
        channel=r["channel"],
        kind=Kind(r["kind"]),
        subject=r["subject"],
        shift=float(r["shift"]),
        exclude=bool(r["exclude"]),
        status=Status(r["status"]),
        tally=Tally(
            int(r["up"]), int(r["down"]), int(r["people"]),
            float(r["votes_since"]), float(r["votes_until"]),
        ),
        created_at=float(r["created_at"]),
        decided_at=r["decided_at"],
        decided_by=r["decided_by"],
        notice_ref=r["notice_ref"],
    )


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class FeedbackStore:
    def __init__(self, database: StateDatabase) -> None:
        self._db = database

    # --- the salt -------------------------------------------------------------------------

    async def salt(self, given: str | None = None) -> str:
        """`given` (a secret from the environment), else the one generated at the first use
        and kept in the meta table (so a restart counts the same people as the same)."""
        if given:
            return given

        async def body(db: aiosqlite.Connection) -> str:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (SALT_META_KEY, secrets.token_hex(32)),
            )
            async with db.execute("SELECT value FROM meta WHERE key = ?", (SALT_META_KEY,)) as c:
                row = await c.fetchone()
            assert row is not None
            return str(row[0])

        return await self._db.write(body)

    # --- our posts ------------------------------------------------------------------------

    async def our_post(self, platform: str, channel: str, message_ref: str) -> OurPost | None:
        """The post or thread reply we sent as this message, if the outbox knows it. (A read
        of the outbox's rows: it is what knows what we posted.)"""
        rows = await self._db.fetchall(
            "SELECT story_id, article_key, headline_key FROM deliveries "
            "WHERE platform = ? AND channel = ? AND message_ref = ? AND state = 'sent' "
            "AND kind IN ('post', 'reply') ORDER BY id LIMIT 1",
            (platform, channel, message_ref),
        )
        if not rows:
            return None
        r = rows[0]
        return OurPost(int(r["story_id"]), r["headline_key"] or r["article_key"])

    # --- votes ----------------------------------------------------------------------------

    async def add_vote(
        self,
        platform: str,
        channel: str,
        story_id: int,
        about: tuple[tuple[str, ...], str],
        sign: int,
        voter: str,
        emoji: str,
        at: float,
    ) -> bool:
        """Count a reaction; False when it was counted already (a repeat)."""
        topics, provider = about

        async def body(db: aiosqlite.Connection) -> bool:
            await db.execute(
                "INSERT INTO feedback_posts (platform, channel, story_id, topics, provider) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, channel, story_id) DO NOTHING",
                (platform, channel, story_id, json.dumps(list(topics), ensure_ascii=False),
                 provider),
            )
            cursor = await db.execute(
                "INSERT INTO feedback_votes (platform, channel, story_id, sign, voter, emoji, "
                "voted_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(platform, channel, story_id, sign, voter, emoji) DO NOTHING",
                (platform, channel, story_id, int(sign), voter, emoji, float(at)),
            )
            return cursor.rowcount > 0

        return await self._db.write(body)

    async def remove_vote(
        self, platform: str, channel: str, story_id: int, sign: int, voter: str, emoji: str
    ) -> bool:
        """Uncount a reaction taken back; False when it was not counted."""

        async def body(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute(
                "DELETE FROM feedback_votes WHERE platform = ? AND channel = ? AND story_id = ? "
                "AND sign = ? AND voter = ? AND emoji = ?",
                (platform, channel, story_id, int(sign), voter, emoji),
            )
            return cursor.rowcount > 0

        return await self._db.write(body)

    async def votes(self, platform: str, channel: str, since: float) -> list[Vote]:
        """The channel's votes since `since`, one per (story, person, sign): several emoji of
        one sign from one person on one story are one vote (the earliest)."""
        rows = await self._db.fetchall(
            "SELECT v.story_id, v.sign, v.voter, MIN(v.voted_at) AS voted_at, p.topics, "
            "p.provider FROM feedback_votes v JOIN feedback_posts p ON p.platform = v.platform "
            "AND p.channel = v.channel AND p.story_id = v.story_id "
            "WHERE v.platform = ? AND v.channel = ? AND v.voted_at >= ? "
            "GROUP BY v.story_id, v.sign, v.voter, p.topics, p.provider",
            (platform, channel, float(since)),
        )
        return [
            Vote(
                story_id=int(r["story_id"]),
                topics=tuple(json.loads(r["topics"])),
                provider=r["provider"],
                sign=int(r["sign"]),
                voter=r["voter"],
                at=float(r["voted_at"]),
            )
            for r in rows
        ]

    async def posts_per_topic(self, platform: str, channel: str, since: float) -> dict[str, int]:
        """How many of the channel's posts since `since` carry each topic (case-folded): how
        specific a topic is there. (A read of the outbox's and the articles' rows.)"""
        rows = await self._db.fetchall(
            "SELECT t.folded AS topic, COUNT(*) AS n FROM deliveries d "
            "JOIN article_topics t ON t.article_key = COALESCE(d.headline_key, d.article_key) "
            "WHERE d.platform = ? AND d.channel = ? AND d.kind = 'post' AND d.state = 'sent' "
            "AND d.posted_at >= ? GROUP BY t.folded",
            (platform, channel, float(since)),
        )
        return {r["topic"]: int(r["n"]) for r in rows}

    async def vote_counts(self, platform: str, channel: str) -> dict[int, tuple[int, int]]:
        """Per story: (people up, people down), for tests and the panel."""
        rows = await self._db.fetchall(
            "SELECT story_id, sign, COUNT(DISTINCT voter) AS n FROM feedback_votes "
            "WHERE platform = ? AND channel = ? GROUP BY story_id, sign",
            (platform, channel),
        )
        counts: dict[int, tuple[int, int]] = {}
        for r in rows:
            up, down = counts.get(int(r["story_id"]), (0, 0))
            if int(r["sign"]) > 0:
                up += int(r["n"])
            else:
                down += int(r["n"])
            counts[int(r["story_id"])] = (up, down)
        return counts

    # --- learn modes ----------------------------------------------------------------------

    async def learn_modes(self) -> dict[int, LearnMode]:
        rows = await self._db.fetchall("SELECT subscription_id, mode FROM learn_modes")
        return {int(r["subscription_id"]): LearnMode(r["mode"]) for r in rows}

    async def set_learn_mode(self, subscription_id: int, mode: LearnMode | None) -> None:
        """None: back to the default."""

        async def body(db: aiosqlite.Connection) -> None:
            if mode is None:
                await db.execute(
                    "DELETE FROM learn_modes WHERE subscription_id = ?", (subscription_id,)
                )
                return
            await db.execute(
                "INSERT INTO learn_modes (subscription_id, mode) VALUES (?, ?) "
                "ON CONFLICT (subscription_id) DO UPDATE SET mode = excluded.mode",
                (subscription_id, str(mode)),
            )

        await self._db.write(body)

    # --- adjustments ----------------------------------------------------------------------

    async def adjustments(
        self,
        platform: str | None = None,
        channel: str | None = None,
        statuses: Iterable[Status] = tuple(Status),
    ) -> list[AdjustmentRow]:
        wanted = [str(s) for s in statuses]
        sql = f"SELECT * FROM learned_adjustments WHERE status IN ({_marks(wanted)})"
        params: list[Any] = list(wanted)
        if platform is not None:
            sql += " AND platform = ?"
            params.append(platform)
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        rows = await self._db.fetchall(sql + " ORDER BY id", params)
        return [_row(r) for r in rows]

    async def adjustment(self, adjustment_id: int) -> AdjustmentRow | None:
        rows = await self._db.fetchall(
            "SELECT * FROM learned_adjustments WHERE id = ?", (adjustment_id,)
        )
        return _row(rows[0]) if rows else None

    async def learned(self) -> dict[tuple[str, str], Learned]:
        """Per (platform, channel), the adjustments in force."""
        found: dict[tuple[str, str], list[Adjustment]] = {}
        for row in await self.adjustments(statuses=(Status.APPLIED,)):
            found.setdefault((row.platform, row.channel), []).append(row.in_force())
        return {where: Learned(tuple(items)) for where, items in found.items()}

    async def standings(self, platform: str, channel: str) -> dict[Subject, Standing]:
        """Where each subject of the channel stands (bot.learning.Standing)."""
        standings: dict[Subject, Standing] = {}
        for row in await self.adjustments(platform, channel):
            key = Subject.of(row.kind, row.subject)
            now = standings.get(key, Standing())
            applied = row.status is Status.APPLIED
            standings[key] = Standing(
                shift=now.shift + (row.shift if applied else 0.0),
                excluded=now.excluded or (applied and row.exclude),
                counted_from=max(now.counted_from, row.created_at, row.tally.until),
                pending=now.pending or row.status is Status.SUGGESTED,
            )
        return standings

    async def add_adjustments(
        self, platform: str, channel: str, changes: Sequence[Change], status: Status, now: float
    ) -> list[AdjustmentRow]:
        async def body(db: aiosqlite.Connection) -> list[int]:
            ids = []
            for change in changes:
                tally = change.tally
                async with db.execute(
                    "INSERT INTO learned_adjustments (platform, channel, kind, subject, "
                    "subject_key, shift, exclude, status, up, down, people, votes_since, "
                    "votes_until, created_at, decided_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        platform, channel, str(change.kind), change.subject,
                        fold(change.subject), float(change.shift), int(change.exclude),
                        str(status), int(tally.up), int(tally.down), int(tally.people),
                        float(tally.since), float(tally.until), float(now),
                        float(now) if status is Status.APPLIED else None,
                    ),
                ) as cursor:
                    row = await cursor.fetchone()
                assert row is not None
                ids.append(int(row[0]))
            return ids

        ids = await self._db.write(body)
        return [row for row in await self.adjustments(platform, channel) if row.id in ids]

    async def decide(
        self, adjustment_id: int, to: Status, who: str, now: float
    ) -> AdjustmentRow | None:
        """Move an adjustment on: a suggestion applied or dismissed, an applied one undone.
        None when it is not in the state that allows it (decided already, or unknown)."""
        allowed_from = {
            Status.APPLIED: Status.SUGGESTED,
            Status.DISMISSED: Status.SUGGESTED,
            Status.UNDONE: Status.APPLIED,
        }[to]

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE learned_adjustments SET status = ?, decided_at = ?, decided_by = ? "
                "WHERE id = ? AND status = ?",
                (str(to), float(now), who, adjustment_id, str(allowed_from)),
            )
            return cursor.rowcount

        if not await self._db.write(body):
            return None
        return await self.adjustment(adjustment_id)

    async def set_notice(self, adjustment_ids: Sequence[int], notice_ref: str) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.executemany(
                "UPDATE learned_adjustments SET notice_ref = ? WHERE id = ?",
                [(notice_ref, i) for i in adjustment_ids],
            )

        await self._db.write(body)

    # --- how often a channel hears suggestions ----------------------------------------------

    async def suggested_at(self, platform: str, channel: str) -> float | None:
        rows = await self._db.fetchall(
            "SELECT suggested_at FROM feedback_channels WHERE platform = ? AND channel = ?",
            (platform, channel),
        )
        return float(rows[0]["suggested_at"]) if rows else None

    async def mark_suggested(self, platform: str, channel: str, now: float) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO feedback_channels (platform, channel, suggested_at) "
                "VALUES (?, ?, ?) ON CONFLICT (platform, channel) DO UPDATE SET "
                "suggested_at = excluded.suggested_at",
                (platform, channel, float(now)),
            )

        await self._db.write(body)
