"""One `newsbot run` per SQLite database: a second one is refused with a message saying which
process holds it. Two schedulers on one outbox would each pace as if alone (twice the rate a
platform allows) and race for the same rows; SQLite is the one-machine setup, so the second
process is a mistake to report, not work to share.

The lock is the operating system's (`flock` on `<database>.lock`): it is released when the
process ends, however it ends (kill -9 included), so a stale lock never needs clearing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bot.database import StateError


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def run_lock(database: Path) -> Iterator[None]:
    """Hold the database's run lock for the block; StateError if another process has it."""
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise StateError(
                f"another newsbot run (pid {holder}) is using the database {database}; stop "
                "it first, or give this one its own [database] path"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
