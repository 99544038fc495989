"""Small named values the bot keeps (the first scan done, the heartbeat, a clean stop)."""

from __future__ import annotations

import aiosqlite

from bot.database import StateDatabase


class MetaRepository:
    def __init__(self, database: StateDatabase) -> None:
        self._database = database

    async def get(self, key: str) -> str | None:
        rows = await self._database.fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    async def set(self, key: str, value: str) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._database.write(body)

    async def delete(self, key: str) -> None:
        async def body(db: aiosqlite.Connection) -> None:
            await db.execute("DELETE FROM meta WHERE key = ?", (key,))

        await self._database.write(body)
