"""`newsbot healthcheck`: is the worker alive (recent heartbeat) and the store readable?

Runs as its own short process (the container's HEALTHCHECK), so it reads the database with
plain sqlite3, read-only, and never waits on the worker's write lock.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config

# The worker records its heartbeat under this meta key every HEARTBEAT_INTERVAL_S. Defined
# here, not in the worker, so that the health check (a short process every 30 s in the
# container) does not import the whole worker to read one row.
HEARTBEAT_KEY = "worker_heartbeat"
HEARTBEAT_INTERVAL_S = 10.0
# A few missed beats are tolerated (a long cold scan, a slow disk) before we call it unhealthy.
MAX_HEARTBEAT_AGE_S = 6 * HEARTBEAT_INTERVAL_S


@dataclass(frozen=True, slots=True)
class Health:
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _heartbeat(db_path: Path) -> float | None:
    if not db_path.is_file():
        return None
    uri = f"file:{db_path}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True, timeout=2.0) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (HEARTBEAT_KEY,)).fetchone()
    except sqlite3.Error:
        return None
    try:
        return float(row[0]) if row else None
    except ValueError:
        return None


def check_health(config: Config, now_s: float) -> Health:
    problems = []
    store = config.store.path
    if not store.is_dir() or not os.access(store, os.R_OK | os.X_OK):
        problems.append(f"the store {store} is not a readable folder (is the volume mounted?)")
    beat = _heartbeat(config.database.path)
    if beat is None:
        problems.append(f"no worker heartbeat in {config.database.path} (is `newsbot run` up?)")
    elif now_s - beat > MAX_HEARTBEAT_AGE_S:
        problems.append(f"the worker's last heartbeat is {now_s - beat:.0f} s old")
    return Health(tuple(problems))
