"""PostgreSQL through asyncpg, behind the same face as the SQLite `Database`: `write(body)` runs
`body` in one transaction, `fetchall` reads. The body gets a connection that answers the calls
the repositories make (`execute` as an awaitable or an `async with`, a cursor with `rowcount`,
`fetchall`, `fetchone`), so one repository's portable SQL (bot/sql.py) runs on either database.

Several `newsbot run` processes share one PostgreSQL database: each has its own pool; rows are
claimed with conditional updates (`pending` -> `sending`), so a row is sent by one of them."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any, TypeVar, cast

import aiosqlite
import asyncpg

from bot.database import MIGRATIONS, StateError
from bot.postgres_schema import BASELINE, BASELINE_VERSION, POSTGRES_MIGRATIONS
from bot.sql import Dialect, affected, numbered_placeholders

log = logging.getLogger(__name__)
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH)\b|\bRETURNING\b", re.IGNORECASE)
T = TypeVar("T")


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection handed back as it is: newsbot keeps no session state on one (its
    advisory locks are per transaction, its one LISTEN has a connection of its own), so the
    pool's reset query (four statements at every release) would be a round trip for nothing."""

    def get_reset_query(self) -> str:
        return ""


class PgCursor:
    """A statement's outcome: its rows (all read at once) and how many rows it changed."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    async def fetchall(self) -> list[asyncpg.Record]:
        return list(self._rows)

    async def fetchone(self) -> asyncpg.Record | None:
        return self._rows[0] if self._rows else None

    def __aiter__(self) -> AsyncIterator[asyncpg.Record]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[asyncpg.Record]:
        for row in self._rows:
            yield row


class PgExecution:
    """What `execute` returns: awaited, the cursor; in `async with`, the cursor too."""

    def __init__(self, run: Awaitable[PgCursor]) -> None:
        self._run = run
        self._cursor: PgCursor | None = None

    def __await__(self) -> Generator[Any, None, PgCursor]:
        return self._run.__await__()

    async def __aenter__(self) -> PgCursor:
        self._cursor = await self._run
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        return None


class PgConnection:
    """One asyncpg connection, speaking the calls the repositories make."""

    dialect = Dialect.POSTGRES

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgExecution:
        return PgExecution(self._run(sql, params))

    async def _run(self, sql: str, params: Sequence[Any]) -> PgCursor:
        # Through asyncpg's statement cache, one round trip each: rows for what returns rows,
        # the command tag's count for the rest.
        text = numbered_placeholders(sql)
        if _RETURNS_ROWS.search(sql):
            rows = await self._conn.fetch(text, *params)
            return PgCursor(rows, len(rows))
        status = await self._conn.execute(text, *params)
        return PgCursor([], affected(status))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgExecution:
        return PgExecution(self._many(sql, rows))

    async def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        listed = [tuple(r) for r in rows]
        if listed:
            await self._conn.executemany(numbered_placeholders(sql), listed)
        return PgCursor([], len(listed))


class PostgresDatabase:
    """Open with `await PostgresDatabase.open(url, migrations)`; close with `aclose()`."""

    dialect = Dialect.POSTGRES

    def __init__(self, pool: asyncpg.Pool, where: str) -> None:
        self._pool = pool
        self.where = where  # the URL without its password, for messages
        self._write_lock = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._listening: list[tuple[str, Callable[..., None]]] = []

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        where = without_password(url)
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=5, connection_class=_PooledConnection
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StateError(
                f"cannot reach the PostgreSQL database {where} ({type(exc).__name__}): check "
                "[database] url (or DATABASE_URL) and that the server is up"
            ) from None
        database = cls(pool, where)
        try:
            await database._migrate()
        except BaseException:
            await pool.close()
            raise
        return database

    async def _migrate(self) -> None:
        # One process migrates at a time (an advisory lock for the transaction); the others
        # wait for it, then find nothing left to do.
        latest = len(MIGRATIONS)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7429010401)")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
            )
            version = await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0
            if version > latest:
                raise StateError(
                    f"the database {self.where} is at schema version {version}, newer than "
                    f"this newsbot ({latest}); upgrade newsbot"
                )
            if version == 0:
                log.info("creating the schema (version %d)", BASELINE_VERSION)
                await conn.execute(BASELINE)
                version = BASELINE_VERSION
                await conn.execute("INSERT INTO schema_version VALUES ($1)", version)
            for number in range(version + 1, latest + 1):
                log.info("migrating the database to schema version %d", number)
                await conn.execute(POSTGRES_MIGRATIONS[number - 1])
                await conn.execute("INSERT INTO schema_version VALUES ($1)", number)

    async def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a worker says `channel` (PostgreSQL's LISTEN/NOTIFY), on a
        connection kept for it until `aclose`."""
        if self._listener is None:
            self._listener = await self._pool.acquire()

        def heard(*_: object) -> None:
            callback()

        await self._listener.add_listener(channel, heard)
        self._listening.append((channel, heard))

    async def say(self, channel: str) -> None:
        """NOTIFY `channel`: the other workers' listeners are called."""
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_notify($1, '')", channel)

    async def write(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `body` in one transaction. The repositories are written against aiosqlite's
        calls; `PgConnection` answers the ones they make (execute, executemany, a cursor's
        rows and rowcount), so the same repository code runs here."""
        async with self._write_lock, self._pool.acquire() as conn, conn.transaction():
            return await body(cast(aiosqlite.Connection, PgConnection(conn)))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
        async with self._pool.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(numbered_placeholders(sql), *params)
            return rows

    async def sync_each_commit(self, on: bool) -> None:
        return None  # the server's own durability settings rule

    async def ping(self) -> bool:
        try:
            await self.fetchall("SELECT 1")
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        if self._listener is not None:
            for channel, heard in self._listening:
                await self._listener.remove_listener(channel, heard)
            await self._pool.release(self._listener)
        await self._pool.close()


def without_password(url: str) -> str:
    """`postgresql://user:secret@host/db` as `postgresql://user@host/db`: never show a secret."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
