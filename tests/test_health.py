"""`newsbot healthcheck` against a real running worker, then against a stale heartbeat and a
missing store."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from bot.config import load_config
from bot.health import HEARTBEAT_KEY, MAX_HEARTBEAT_AGE_S, check_health
from tests.test_process import Bot, newsbot, start_bot, write_config

__all__ = ["start_bot"]  # the fixture, shared with test_process


def test_healthy_while_the_worker_runs(tmp_path: Path, start_bot: Callable[..., Bot]) -> None:
    config = write_config(tmp_path)
    bot = start_bot(["run", "--config", str(config)], tmp_path)
    bot.wait_for("stderr", "watching", timeout=30)
    check = newsbot(["healthcheck", "--config", str(config)], tmp_path)
    assert check.returncode == 0, check.stdout
    assert check.stdout.strip() == "healthy"
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.finish(timeout=15) == 0


def test_unhealthy_at_once_after_a_clean_stop_and_healthy_again_after_a_restart(
    tmp_path: Path, start_bot: Callable[..., Bot]
) -> None:
    config = write_config(tmp_path)
    for _ in range(2):
        bot = start_bot(["run", "--config", str(config)], tmp_path)
        bot.wait_for("stderr", "watching", timeout=30)
        running = newsbot(["healthcheck", "--config", str(config)], tmp_path)
        assert (running.returncode, running.stdout) == (0, "healthy\n")
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.finish(timeout=15) == 0
        # Well within the heartbeat's staleness threshold: only the stop marker can tell.
        stopped = newsbot(["healthcheck", "--config", str(config)], tmp_path)
        assert stopped.returncode == 1, stopped.stdout
        assert stopped.stdout.startswith("unhealthy: the worker stopped at "), stopped.stdout


def test_a_database_path_with_uri_characters_is_read(tmp_path: Path) -> None:
    # `#`, `?` and `%` mean something in an SQLite URI: the path must be quoted into it.
    folder = tmp_path / "a#b?c%d"
    folder.mkdir()
    (folder / "store").mkdir()
    (folder / "newsbot.toml").write_text(
        '[store]\npath = "store"\n[database]\npath = "state.db"\n', encoding="utf-8"
    )
    config = load_config(folder / "newsbot.toml")
    assert config.database.path == folder / "state.db"
    with sqlite3.connect(config.database.path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES (?, ?)", (HEARTBEAT_KEY, repr(1000.0)))
    health = check_health(config, 1001.0)
    assert health.ok, health.problems
    assert not (tmp_path / "a").exists()  # nothing was created at a truncated path


def test_unhealthy_without_a_heartbeat_or_with_a_stale_one(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    config = load_config(config_path)
    no_db = check_health(config, time.time())
    assert not no_db.ok and "no worker heartbeat" in no_db.problems[0]

    config.database.path.parent.mkdir(parents=True)
    with sqlite3.connect(config.database.path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES (?, ?)", (HEARTBEAT_KEY, repr(1000.0)))
    assert check_health(config, 1000.0 + MAX_HEARTBEAT_AGE_S - 1).ok
    stale = check_health(config, 1000.0 + MAX_HEARTBEAT_AGE_S + 1)
    assert not stale.ok and "heartbeat" in stale.problems[0]


def test_unhealthy_when_the_store_is_gone(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    config = load_config(config_path)
    config.database.path.parent.mkdir(parents=True)
    with sqlite3.connect(config.database.path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES (?, ?)", (HEARTBEAT_KEY, repr(1000.0)))
    (tmp_path / "store").rmdir()
    health = check_health(config, 1001.0)
    assert not health.ok and "not a readable folder" in health.problems[0]
    cli = newsbot(["healthcheck", "--config", str(config_path)], tmp_path)
    assert cli.returncode == 1 and "unhealthy" in cli.stdout
