"""The store index: which files the store had at the last scan (path, size, mtime), the
article each carries, and why a bad one is bad. A scan compares the store with it, so an
unchanged file is never read again, across restarts too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiosqlite

from bot.database import StateDatabase
from bot.store import FileOutcome, FileStamp
from bot.stored_article import StoredArticle


class StoreIndex:
    def __init__(self, database: StateDatabase) -> None:
        self._database = database

    async def load(self) -> dict[str, FileStamp]:
        rows = await self._database.fetchall("SELECT path, size, mtime_ns FROM files")
        return {r["path"]: FileStamp(r["size"], r["mtime_ns"]) for r in rows}

    async def bad_files(self) -> list[tuple[str, str]]:
        rows = await self._database.fetchall(
            "SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path"
        )
        return [(r["path"], r["error"]) for r in rows]


async def remove_files(db: aiosqlite.Connection, paths: Sequence[str]) -> None:
    await db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])


async def index_files(
    db: aiosqlite.Connection, outcomes: Sequence[FileOutcome[StoredArticle]], now: float
) -> None:
    """Record what each file was found to hold. One statement for the whole batch: a cold
    scan records thousands of files."""
    await db.executemany(
        "INSERT INTO files (path, size, mtime_ns, article_key, error, checked_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
        "size = excluded.size, mtime_ns = excluded.mtime_ns, "
        "article_key = excluded.article_key, error = excluded.error, "
        "checked_at = excluded.checked_at",
        [
            (
                o.path,
                o.stamp.size,
                o.stamp.mtime_ns,
                o.article.key if o.article else None,
                o.error,
                now,
            )
            for o in outcomes
        ],
    )


async def carriers(db: aiosqlite.Connection, keys: Iterable[str]) -> dict[str, set[str]]:
    """The files that carry each of these (known) articles."""
    found: dict[str, set[str]] = {}
    listed = list(keys)
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        marks = ",".join("?" * len(chunk))
        async with db.execute(
            f"SELECT article_key, path FROM files WHERE article_key IN ({marks})", chunk
        ) as cur:
            for key, path in await cur.fetchall():
                found.setdefault(key, set()).add(path)
    return found
