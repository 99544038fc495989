"""`newsbot healthcheck`: is the worker alive (recent heartbeat) and the store readable?

Runs as its own short process (the container's HEALTHCHECK), so it reads the database with
plain sqlite3, read-only, and never waits on the worker's write lock.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Config

# The worker records its heartbeat under this meta key every HEARTBEAT_INTERVAL_S. Defined
# here, not in the worker, so that the health check (a short process every 30 s in the
# container) does not import the whole worker to read one row.
HEARTBEAT_KEY = "worker_heartbeat"
HEARTBEAT_INTERVAL_S = 10.0
# A few missed beats are tolerated (a long cold scan, a slow disk) before we call it unhealthy.
MAX_HEARTBEAT_AGE_S = 6 * HEARTBEAT_INTERVAL_S
# A worker that stops cleanly records when; the next start removes it. Without it the check
# would call a stopped worker healthy until its last beat grew stale.
STOPPED_KEY = "worker_stopped_at"


@dataclass(frozen=True, slots=True)
class Health:
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_meta(db_path: Path) -> dict[str, str] | None:
    if not db_path.is_file():
        return None
    # A URI, for read-only mode: the path is percent-quoted into it, or a `#`, `?` or `%` in a
    # folder name would cut it short (and SQLite would open, even create, another file).
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True, timeout=2.0) as conn:
            rows = conn.execute(
                "SELECT key, value FROM meta WHERE key IN (?, ?)", (HEARTBEAT_KEY, STOPPED_KEY)
            ).fetchall()
    except sqlite3.Error:
        return None
    return {str(key): str(value) for key, value in rows}


def _worker_problems(url: str, host: str, now_s: float) -> list[str]:
    """This host's worker in the crew (bot/crew.py) of a PostgreSQL database: seen lately?"""
    import asyncio

    import asyncpg

    from bot.postgres import without_password

    async def last_seen() -> float | None:
        conn = await asyncpg.connect(url, timeout=3.0)
        try:
            value = await conn.fetchval("SELECT MAX(seen_at) FROM workers WHERE host = $1", host)
        finally:
            await conn.close()
        return None if value is None else float(value)

    try:
        seen = asyncio.run(last_seen())
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return [f"cannot reach {without_password(url)} ({type(exc).__name__})"]
    if seen is None:
        where = without_password(url)
        return [f"no worker of this host ({host}) in {where} (is `newsbot run` up?)"]
    if now_s - seen > MAX_HEARTBEAT_AGE_S:
        return [
            f"this host's worker was last seen {now_s - seen:.0f} s ago (more than "
            f"{MAX_HEARTBEAT_AGE_S:.0f} s: it is stuck or was killed)"
        ]
    return []


def _as_time(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def check_health(
    config: Config, now_s: float, database: Path | str | None = None, host: str | None = None
) -> Health:
    """`database`: where the state is (`database_target`; default the SQLite file). On
    PostgreSQL, several workers share it: the one checked is this machine's (`host`)."""
    problems = []
    store = config.store.path
    if not store.is_dir() or not os.access(store, os.R_OK | os.X_OK):
        problems.append(f"the store {store} is not a readable folder (is the volume mounted?)")
    if isinstance(database, str):
        problems += _worker_problems(database, host or socket.gethostname(), now_s)
        return Health(tuple(problems))
    meta = _read_meta(config.database.path) or {}
    beat = _as_time(meta.get(HEARTBEAT_KEY))
    stopped = _as_time(meta.get(STOPPED_KEY))
    if stopped is not None:
        when = datetime.fromtimestamp(stopped, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        problems.append(f"the worker stopped at {when} (start `newsbot run` again)")
    elif beat is None:
        problems.append(f"no worker heartbeat in {config.database.path} (is `newsbot run` up?)")
    elif now_s - beat > MAX_HEARTBEAT_AGE_S:
        problems.append(
            f"the worker's last heartbeat is {now_s - beat:.0f} s old (more than "
            f"{MAX_HEARTBEAT_AGE_S:.0f} s: the worker is stuck or was killed)"
        )
    return Health(tuple(problems))
