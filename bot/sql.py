"""One way to talk SQL, whatever the database: the repositories write portable SQL against `Tx`,
and each backend runs it (SQLite through aiosqlite, PostgreSQL through asyncpg).

Portable SQL, as this project writes it:
- `?` placeholders (PostgreSQL's `$1, $2...` are made from them here, outside quoted text);
- `INSERT ... ON CONFLICT (...) DO NOTHING | DO UPDATE SET col = excluded.col`, never SQLite's
  `INSERT OR IGNORE` / `OR REPLACE`;
- `RETURNING id` for a new row's id (SQLite has it since 3.35);
- no two-argument `MAX(a, b)` / `MIN(a, b)` (SQLite's scalar forms): `CASE` instead;
- numbers as INTEGER / REAL (DOUBLE PRECISION in PostgreSQL) columns, flags as 0/1 integers.
Dialect-specific text (DDL, `julianday`, `WITHOUT ROWID`) lives only in each dialect's
migrations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, Protocol

# How a PostgreSQL URL begins (a database target that is not a SQLite file).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgresql"


class Row(Protocol):
    def __getitem__(self, key: str | int, /) -> Any: ...


class Tx(Protocol):
    """A connection inside one transaction (or a plain reader outside one)."""

    dialect: Dialect

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; how many rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...


_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def numbered_placeholders(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2...`, leaving quoted text alone."""
    counter = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(0) != "?":
            return match.group(0)
        counter += 1
        return f"${counter}"

    return _QUOTED_OR_MARK.sub(replace, sql)


def affected(status: str) -> int:
    """The row count in a PostgreSQL command tag (`UPDATE 3`, `INSERT 0 1`, `DELETE 0`)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
