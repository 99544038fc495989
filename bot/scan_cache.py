"""`newsbot scan`'s memory: the digest of each file it parsed, keyed by path, size and mtime, so
that scanning a store again reads only what changed (the same index idea as the bot's own).

One small SQLite file per store folder under the user's cache directory. It is only ever an
accelerator: if it cannot be opened or written, the scan parses everything and says nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from bot.store import FileStamp

log = logging.getLogger(__name__)

# Bump when parsing or validation rules change: digests made by other rules are dropped.
DIGEST_RULES_VERSION = "1"

CachedDigest = tuple[str | None, tuple[str, ...], float | None, str | None]  # key, topics, q, err


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "newsbot"


class DigestCache:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @classmethod
    def open(cls, cache_dir: Path, root: Path, max_bytes: int) -> DigestCache | None:
        """The cache for the store at `root`, or None when it cannot be had."""
        identity = f"{os.path.realpath(root)}\0{max_bytes}\0{DIGEST_RULES_VERSION}"
        name = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(cache_dir / f"scan-{name}.sqlite", timeout=2.0)
            # A cache, not a record: losing it to a crash costs one full scan, no fsync needed.
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA journal_mode=MEMORY")
            db.execute(
                "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, key TEXT, topics TEXT, quality REAL, error TEXT)"
            )
        except (OSError, sqlite3.Error) as exc:
            log.debug("scan cache unavailable in %s: %s", cache_dir, exc)
            return None
        return cls(db)

    def load(self) -> dict[str, tuple[FileStamp, CachedDigest]]:
        try:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, key, topics, quality, error FROM digests"
            ).fetchall()
        except sqlite3.Error as exc:
            log.debug("scan cache unreadable: %s", exc)
            return {}
        return {
            path: (FileStamp(size, mtime_ns), (key, tuple(json.loads(topics)), quality, error))
            for path, size, mtime_ns, key, topics, quality, error in rows
        }

    def replace_all(self, entries: Iterable[tuple[str, FileStamp, CachedDigest]]) -> None:
        """Make the cache hold exactly `entries` (files gone from the store are forgotten)."""
        rows = [
            (path, stamp.size, stamp.mtime_ns, key, json.dumps(list(topics)), quality, error)
            for path, stamp, (key, topics, quality, error) in entries
        ]
        try:
            with self._db:
                self._db.execute("DELETE FROM digests")
                self._db.executemany("INSERT INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.debug("scan cache not written: %s", exc)

    def close(self) -> None:
        self._db.close()
