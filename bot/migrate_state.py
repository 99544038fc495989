"""`newsbot migrate-state --to postgresql://...`: copy a SQLite state into an empty PostgreSQL
database, every table (articles, stories, subscriptions, the outbox, the store index, what was
learned), in one transaction: all of it arrives or none of it does.

A database that holds anything already is refused, so running it twice copies nothing twice.
Values are converted to the PostgreSQL column's type (SQLite keeps what it is given), and the
identity counters continue after the copied ids, so new rows never collide with old ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from bot.database import Database, StateError
from bot.postgres import PostgresDatabase

# Rows of running workers are not state: they describe processes of the old database.
_NOT_COPIED = frozenset({"workers", "leases"})
# Copied first: other tables refer to them.
_FIRST = ("articles",)
_IDENTITY_TABLES = ("subscriptions", "deliveries", "learned_adjustments")


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    rows: int


class NotEmpty(StateError):
    """The target database holds state already."""


def _convert(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "bigint":
        return int(value)
    if pg_type == "double precision":
        return float(value)
    return str(value)


async def migrate_state(source: Path, url: str) -> list[Copied]:
    lite = await Database.open(source)  # brought to this newsbot's schema first
    try:
        target = await PostgresDatabase.open(url)
        try:
            return await _copy(lite, target)
        finally:
            await target.aclose()
    finally:
        await lite.aclose()


async def _copy(lite: Database, target: PostgresDatabase) -> list[Copied]:
    tables = [
        str(r["name"])
        for r in await lite.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        if r["name"] not in _NOT_COPIED
    ]
    tables.sort(key=lambda t: (t not in _FIRST, t))
    types: dict[str, dict[str, str]] = {}
    for row in await target.fetchall(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    ):
        types.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    for table in tables:
        if table not in types:
            raise StateError(
                f"table {table} of the SQLite state has no place in the PostgreSQL schema; "
                "is the PostgreSQL database from another newsbot version?"
            )
        rows = await target.fetchall(f"SELECT 1 FROM {table} LIMIT 1")
        if rows:
            raise NotEmpty(
                f"the PostgreSQL database {target.where} already holds state ({table} has "
                "rows): migrate-state copies only into an empty database, once"
            )

    async def body(db: aiosqlite.Connection) -> list[Copied]:
        copied = []
        for table in tables:
            source_rows = await lite.fetchall(f"SELECT * FROM {table}")
            copied.append(Copied(table, len(source_rows)))
            if not source_rows:
                continue
            columns: Sequence[str] = list(source_rows[0].keys())
            kinds = [types[table][c] for c in columns]
            marks = ", ".join("?" * len(columns))
            await db.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                [tuple(_convert(v, k) for v, k in zip(r, kinds, strict=True)) for r in source_rows],
            )
        for table in _IDENTITY_TABLES:
            if table in tables:
                # New rows take ids after the copied ones.
                await db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                )
        return copied

    return await target.write(body)
