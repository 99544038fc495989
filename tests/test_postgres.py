"""PostgreSQL as the state's database: the schema equal to SQLite's, column by column; the
URL from the config or the environment (a secret); and real `newsbot run` processes sharing
one database. The rest of the suite runs on PostgreSQL too, with NEWSBOT_TEST_BACKEND=postgresql
(.ci/run does both)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from bot.clock import SystemClock
from bot.config import ConfigError, ConfigErrors, database_target, load_config
from bot.database import MIGRATIONS, Database
from bot.postgres_schema import BASELINE_VERSION, POSTGRES_MIGRATIONS
from bot.state import State
from tests.postgres_server import PostgresServer, binaries

pytestmark = pytest.mark.skipif(
    binaries() is None and not os.environ.get("NEWSBOT_REQUIRE_POSTGRES"),
    reason="PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)",
)

_TYPES = {"TEXT": "text", "REAL": "double precision", "INTEGER": "bigint"}


def sqlite_columns(path: Path) -> dict[str, dict[str, str]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: {row[1]: _TYPES[row[2].upper()] for row in conn.execute(
                f"PRAGMA table_info({table})"
            )}
            for table in tables
        }


async def postgres_columns(url: str) -> dict[str, dict[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_version'"
        )
    finally:
        await conn.close()
    columns: dict[str, dict[str, str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    return columns


async def test_the_postgresql_schema_is_sqlites_column_for_column(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    # Every SQLite migration after the baseline has its PostgreSQL text.
    assert sorted(POSTGRES_MIGRATIONS) == list(range(BASELINE_VERSION, len(MIGRATIONS)))
    lite = await Database.open(tmp_path / "state.db")  # SQLite, whatever the suite's backend
    await lite.aclose()
    url = await asyncio.to_thread(postgres_server.create_database, "schema_check")
    pg = await State.open(url, SystemClock())
    await pg.aclose()
    assert await postgres_columns(url) == sqlite_columns(tmp_path / "state.db")


async def test_workers_opening_one_new_database_together_migrate_it_once(
    postgres_server: PostgresServer,
) -> None:
    url = await asyncio.to_thread(postgres_server.create_database, "together")
    states = await asyncio.gather(*(State.open(url, SystemClock()) for _ in range(4)))
    try:
        await states[0].set_meta("marker", "one")
        assert [await s.get_meta("marker") for s in states] == ["one"] * 4
    finally:
        for state in states:
            await state.aclose()
    conn = await asyncpg.connect(url)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_version")]
    finally:
        await conn.close()
    assert versions == list(range(BASELINE_VERSION, len(MIGRATIONS) + 1))


async def test_an_unreachable_server_is_named_without_its_password() -> None:
    from bot.database import StateError

    with pytest.raises(StateError) as caught:
        await State.open("postgresql://bot:hunter2@127.0.0.1:1/news", SystemClock())
    assert "hunter2" not in str(caught.value)
    assert "postgresql://bot@127.0.0.1:1/news" in str(caught.value)


# --- where the URL comes from ------------------------------------------------------------------


def write_config(tmp_path: Path, database: str) -> Path:
    path = tmp_path / "newsbot.toml"
    path.write_text(f"[database]\n{database}\n", encoding="utf-8")
    return path


def test_the_environment_url_wins_and_a_file_can_hold_it(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, 'url = "postgresql://bot@db/news"'))
    assert database_target(config, {}) == "postgresql://bot@db/news"
    secret = tmp_path / "url"
    secret.write_text("postgresql://bot:s3cret@db/news\n", encoding="utf-8")
    assert database_target(config, {"DATABASE_URL_FILE": str(secret)}) == (
        "postgresql://bot:s3cret@db/news"
    )
    assert database_target(load_config(write_config(tmp_path, 'path = "x.db"')), {}) == (
        tmp_path / "x.db"
    )


def test_a_password_in_the_config_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_config(write_config(tmp_path, 'url = "postgresql://bot:hunter2@db/news"'))
    assert "DATABASE_URL" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_url_that_is_not_postgresql_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="url must be a postgresql://"):
        load_config(write_config(tmp_path, 'url = "mysql://db/news"'))
    config = load_config(write_config(tmp_path, ""))
    with pytest.raises(ConfigError, match="DATABASE_URL must be"):
        database_target(config, {"DATABASE_URL": "sqlite:///x.db"})



# --- newsbot migrate-state ---------------------------------------------------------------------


@pytest.mark.sqlite_only  # its source is a SQLite state, made in this process
async def test_migrate_state_copies_everything_once_and_new_rows_follow(
    tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.outbox import DeliveryState
    from bot.subscriptions import Subscription
    from tests.test_outbox import article, route

    lite = await State.open(tmp_path / "state.db", SystemClock())
    news, _ = await lite.add_subscription(Subscription(0, "console", "news", topics=("AI",)))
    await route(lite, [article(1), article(2)], news)
    [first, _second] = await lite.outbox.due_rows("console", "news", 1e12, 9)
    await lite.outbox.mark_sent(first.id, "m-1")
    await lite.set_meta("store_baseline_done", "1")
    before = (await lite.subscriptions(), await lite.outbox.rows_for("console", "news"))
    await lite.aclose()

    config = tmp_path / "newsbot.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "state.db"}"\n', encoding="utf-8")
    url = await asyncio.to_thread(postgres_server.create_database, "moved")
    argv = ["migrate-state", "--config", str(config), "--to", url]
    assert await asyncio.to_thread(main, argv) == 0
    assert "deliveries: 2 rows" in capsys.readouterr().out
    # Twice: refused, nothing copied again.
    assert await asyncio.to_thread(main, argv) == 1
    assert "already holds state" in capsys.readouterr().err

    moved = await State.open(url, SystemClock())
    try:
        after = (await moved.subscriptions(), await moved.outbox.rows_for("console", "news"))
        assert after == before
        assert [r.state for r in after[1]] == [DeliveryState.SENT, DeliveryState.PENDING]
        assert await moved.get_meta("store_baseline_done") == "1"
        more, created = await moved.add_subscription(Subscription(0, "console", "more"))
        assert created and more.id > news.id  # the identity continues after the copied ids
    finally:
        await moved.aclose()


def test_migrate_state_without_a_url_says_where_one_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    config = tmp_path / "newsbot.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "state.db"}"\n', encoding="utf-8")
    assert main(["migrate-state", "--config", str(config)]) == 2
    assert "DATABASE_URL" in capsys.readouterr().err


# --- newsbot healthcheck beside other workers ------------------------------------------------


async def test_healthcheck_on_postgresql_looks_at_this_hosts_worker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    import socket
    import time

    from bot.config import Config, DatabaseConfig, StoreConfig
    from bot.crew import Crew
    from bot.health import MAX_HEARTBEAT_AGE_S, check_health

    (tmp_path / "store").mkdir()
    config = Config(
        store=StoreConfig(path=tmp_path / "store"), database=DatabaseConfig(path=tmp_path / "x")
    )
    url = await asyncio.to_thread(postgres_server.create_database, "health")
    state = await State.open(url, SystemClock())
    try:
        absent = await asyncio.to_thread(check_health, config, time.time(), url, "this-host")
        assert "no worker of this host (this-host)" in absent.problems[0]
        crew = Crew(state.database, SystemClock(), "w1", shared=True)
        await crew.beat()  # recorded with this machine's name
        here = socket.gethostname()
        assert (await asyncio.to_thread(check_health, config, time.time(), url, here)).ok
        later = time.time() + MAX_HEARTBEAT_AGE_S + 5
        stale = await asyncio.to_thread(check_health, config, later, url, here)
        assert "last seen" in stale.problems[0]
        await crew.leave()  # a clean stop
        gone = await asyncio.to_thread(check_health, config, time.time(), url, here)
        assert not gone.ok
    finally:
        await state.aclose()
    unreachable = await asyncio.to_thread(
        check_health, config, time.time(), "postgresql://u:pw@127.0.0.1:1/x", "h"
    )
    assert "cannot reach postgresql://u@127.0.0.1:1/x" in unreachable.problems[0]
