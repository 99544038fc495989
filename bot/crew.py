"""Several `newsbot run` workers on one PostgreSQL database: who is alive, who leads, who
serves which channel.

- **Alive.** Each worker writes its row in `workers` every `BEAT_S`; a worker unseen for
  `ALIVE_S` is gone (killed, or its machine is), and its channels pass to the others.
- **Leads.** Work done by one worker at a time (the store scan, and the resolution of sends a
  dead worker left in flight) is behind a lease row in `leases`: taken when free or expired,
  renewed at every beat by its holder, taken over within `LEASE_S` when the holder dies.
- **Serves.** Channels are shared among the live workers by rendezvous hashing
  (bot/partition.py), and each worker paces at its share of the platforms' global rates.
  Every send is still claimed in the outbox (`pending` -> `sending`, with the claimer and a
  lease) so that a channel passing between workers is never sent to twice.

On SQLite one process owns the database (a lock file), so the crew is one worker that leads
and serves everything (`Crew.alone`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiosqlite

from bot.clock import Clock
from bot.database import StateDatabase
from bot.partition import owner
from bot.postgres import PostgresDatabase

log = logging.getLogger(__name__)

BEAT_S = 2.0
ALIVE_S = 10.0
LEASE_S = 10.0
SCAN_LEASE = "scan"
# The chat connections (Discord's gateway, Slack's Socket Mode): one worker holds them.
COMMANDS_LEASE = "commands"
# What the scanning worker says when it has queued deliveries, so the others look at once.
NEW_ROWS = "newsbot_new_rows"


@dataclass(frozen=True, slots=True)
class Member:
    worker_id: str
    host: str
    pid: int
    seen_at: float


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Crew:
    def __init__(
        self, database: StateDatabase | None, clock: Clock, worker_id: str, shared: bool
    ) -> None:
        self._database = database
        self._clock = clock
        self.worker_id = worker_id
        self.shared = shared  # False: alone on the database (SQLite)
        # Alone: itself. Shared: none known until the first beat (which says who is there).
        self._live: tuple[str, ...] = () if shared else (worker_id,)

    @classmethod
    def alone(cls, clock: Clock) -> Crew:
        return cls(None, clock, "alone", shared=False)

    @classmethod
    def joining(cls, database: StateDatabase, clock: Clock) -> Crew:
        return cls(database, clock, new_worker_id(), shared=True)

    @property
    def live(self) -> tuple[str, ...]:
        return self._live

    @property
    def share(self) -> float:
        """This worker's part of the platforms' global rates."""
        return 1.0 / max(1, len(self._live))

    def serves(self, platform: str, channel: str) -> bool:
        if not self.shared:
            return True
        return owner(platform, channel, self._live) == self.worker_id

    async def beat(self) -> bool:
        """Say this worker is alive and read who else is; True when the live set changed."""
        if self._database is None:
            return False
        now = self._clock.time()
        host, pid = socket.gethostname(), os.getpid()

        async def body(db: aiosqlite.Connection) -> list[str]:
            await db.execute(
                "INSERT INTO workers (id, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                (self.worker_id, host, pid, now, now),
            )
            # The long gone are forgotten; the recently gone stay visible to `status`.
            await db.execute("DELETE FROM workers WHERE seen_at < ?", (now - 100 * ALIVE_S,))
            async with db.execute(
                "SELECT id FROM workers WHERE seen_at >= ? ORDER BY id", (now - ALIVE_S,)
            ) as cursor:
                return [str(row[0]) for row in await cursor.fetchall()]

        live = tuple(await self._database.write(body))
        changed = live != self._live
        if changed:
            log.info("workers alive: %d (%s)", len(live), ", ".join(live))
        self._live = live
        return changed

    async def lead(self, name: str) -> bool:
        """Take or renew the lease `name`; True while this worker holds it."""
        if self._database is None:
            return True
        now = self._clock.time()

        async def body(db: aiosqlite.Connection) -> bool:
            async with db.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at < ? "
                "RETURNING holder",
                (name, self.worker_id, now + LEASE_S, now),
            ) as cursor:
                return await cursor.fetchone() is not None

        return await self._database.write(body)

    async def on_new_rows(self, callback: Callable[[], None]) -> None:
        """Call `callback` when another worker has queued deliveries."""
        if isinstance(self._database, PostgresDatabase):
            await self._database.listen(NEW_ROWS, callback)

    async def new_rows(self) -> None:
        """Tell the other workers that deliveries were queued (their share may be among them)."""
        if isinstance(self._database, PostgresDatabase):
            await self._database.say(NEW_ROWS)

    async def leave(self) -> None:
        """A clean stop: the others take this worker's channels and leases at once."""
        if self._database is None:
            return

        async def body(db: aiosqlite.Connection) -> None:
            await db.execute("DELETE FROM leases WHERE holder = ?", (self.worker_id,))
            await db.execute("DELETE FROM workers WHERE id = ?", (self.worker_id,))

        await self._database.write(body)

    async def members(self) -> Sequence[Member]:
        if self._database is None:
            return ()
        rows = await self._database.fetchall(
            "SELECT id, host, pid, seen_at FROM workers ORDER BY id"
        )
        return [Member(r["id"], r["host"], int(r["pid"]), float(r["seen_at"])) for r in rows]
