"""A throwaway PostgreSQL server for the tests: Debian's PostgreSQL binaries, a data folder in a
temporary directory, a free port on 127.0.0.1, run as an unprivileged user (PostgreSQL refuses
to run as root). Ready when its log says so (no polling); stopped and removed after.

`.ci/run` installs Debian's `postgresql` package where it is missing; without the binaries the
tests that need a server skip, saying how to get them."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READY_LINE = "database system is ready to accept connections"
START_TIMEOUT_S = 60.0
SUPERUSER = "newsbot"


def binaries() -> Path | None:
    """The folder with initdb and postgres: on PATH, or Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    for folder in reversed(versions):
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix that drops root (PostgreSQL will not run as root), and that user."""
    if os.geteuid() != 0:
        return [], None
    return ["runuser", "-u", "nobody", "--"], "nobody"


@dataclass
class PostgresServer:
    port: int
    folder: Path
    process: subprocess.Popen[str]
    log: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL."""
        psql = binaries()
        assert psql is not None
        subprocess.run(
            [str(psql / "psql"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
             "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'],
            check=True, capture_output=True, text=True,
        )
        return self.url(name)


@contextlib.contextmanager
def running_postgres(*settings: str) -> Iterator[PostgresServer]:
    """`settings`: more `name=value` server settings (the benchmark logs every statement)."""
    folder_bin = binaries()
    if folder_bin is None:
        raise FileNotFoundError(
            "PostgreSQL's binaries (initdb, postgres) are not installed: on Debian, "
            "`apt-get install postgresql` (.ci/run does it)"
        )
    prefix, user = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="newsbot-pg-"))
    data = folder / "data"
    sockets = folder / "sockets"
    sockets.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (folder, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [*prefix, str(folder_bin / "initdb"), "-D", str(data), "-U", SUPERUSER,
         "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        check=True, capture_output=True, text=True,
    )
    port = _free_port()
    process = subprocess.Popen(
        [*prefix, str(folder_bin / "postgres"), "-D", str(data), "-p", str(port),
         "-k", str(sockets), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
         "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200", *(a for s in settings for a in ("-c", s))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    log: list[str] = []
    ready = threading.Event()

    def read_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip())
            if READY_LINE in line:
                ready.set()
        ready.set()  # ended: the wait below reports it

    threading.Thread(target=read_log, daemon=True).start()
    server = PostgresServer(port, folder, process, log)
    try:
        if not ready.wait(START_TIMEOUT_S) or process.poll() is not None:
            raise RuntimeError("PostgreSQL did not start:\n" + "\n".join(log[-20:]))
        yield server
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)
