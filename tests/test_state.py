"""bot/state.py against real SQLite files under tmp_path."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.articles import Article, parse_article
from bot.routing import Routing, RoutingDefaults, Verdict, judge
from bot.state import MIGRATIONS, DeliveryState, State, StateError
from bot.store import FileOutcome, FileStamp
from bot.subscriptions import Subscription, SubscriptionSource
from tests.builders import store_file_text
from tests.conftest import FakeClock

DEFAULTS = RoutingDefaults(min_quality=40.0)


def article_text(url: str, title: str, **kwargs: Any) -> str:
    return store_file_text(url, title, **kwargs)


def make_article(url: str, title: str = "A title", **kwargs: object) -> Article:
    return parse_article(article_text(url, title, **kwargs).encode(), "x.md")  # type: ignore[arg-type]


def outcome(path: str, article: Article | None, size: int = 100, mtime_ns: int = 1) -> FileOutcome:
    error = None if article is not None else "no front matter"
    return FileOutcome(path, FileStamp(size, mtime_ns), article=article, error=error)


def to(*subs: Subscription) -> object:
    """A route callable that sends every article to `subs`."""
    return lambda article: Routing(targets=subs, held_unscored=False)


def sub(
    channel: str = "news",
    topics: tuple[str, ...] = (),
    platform: str = "console",
    source: SubscriptionSource = SubscriptionSource.CLI,
    **kwargs: object,
) -> Subscription:
    return Subscription(
        id=0, platform=platform, channel=channel, topics=topics, source=source, **kwargs  # type: ignore[arg-type]
    )


def wants(s: Subscription, a: Article) -> bool:
    return judge(a, s, DEFAULTS, FakeClock().now()) is Verdict.DELIVER


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
async def state(db_path: Path, clock: FakeClock) -> AsyncIterator[State]:
    opened = await State.open(db_path, clock)
    try:
        yield opened
    finally:
        await opened.aclose()


def raw_rows(db_path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.execute(sql, params).fetchall())


# --- schema -------------------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_migrations_run_once_and_set_user_version(
    db_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.database")
    first = await State.open(db_path, clock)
    await first.set_meta("marker", "kept")
    await first.aclose()
    migrations_logged = [r for r in caplog.records if "migrating" in r.getMessage()]
    assert len(migrations_logged) == len(MIGRATIONS)
    assert raw_rows(db_path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    tables = {r[0] for r in raw_rows(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"articles", "deliveries", "subscriptions", "files", "meta"} <= tables

    caplog.clear()
    second = await State.open(db_path, clock)
    try:
        assert await second.get_meta("marker") == "kept"
    finally:
        await second.aclose()
    assert not [r for r in caplog.records if "migrating" in r.getMessage()]
    assert raw_rows(db_path, "PRAGMA user_version") == [(len(MIGRATIONS),)]


@pytest.mark.sqlite_only
async def test_an_older_database_is_upgraded_in_place(db_path: Path, clock: FakeClock) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("INSERT INTO meta (key, value) VALUES ('from', 'version 1')")
        conn.execute("PRAGMA user_version = 1")
    upgraded = await State.open(db_path, clock)
    try:
        assert await upgraded.get_meta("from") == "version 1"
    finally:
        await upgraded.aclose()
    assert raw_rows(db_path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    indexes = {r[0] for r in raw_rows(db_path, "SELECT name FROM sqlite_master WHERE type='index'")}
    assert "files_by_article" in indexes


@pytest.mark.sqlite_only
async def test_database_from_newer_version_is_refused(db_path: Path, clock: FakeClock) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StateError) as caught:
        await State.open(db_path, clock)
    message = str(caught.value)
    assert f"version {len(MIGRATIONS) + 1}" in message
    assert "upgrade newsbot" in message
    # Nothing was touched: still the newer version, no tables made.
    assert raw_rows(db_path, "PRAGMA user_version") == [(len(MIGRATIONS) + 1,)]
    assert raw_rows(db_path, "SELECT name FROM sqlite_master") == []


@pytest.mark.sqlite_only
async def test_a_file_that_is_not_a_database_is_refused_clearly(
    db_path: Path, clock: FakeClock
) -> None:
    db_path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError) as caught:
        await State.open(db_path, clock)
    assert str(db_path) in str(caught.value)


@pytest.mark.sqlite_only
async def test_wal_mode_is_on(state: State, db_path: Path) -> None:
    assert raw_rows(db_path, "PRAGMA journal_mode") == [("wal",)]


# --- articles and the outbox written together ----------------------------------------------


async def test_record_files_writes_articles_and_outbox_rows_together(
    state: State, db_path: Path, clock: FakeClock
) -> None:
    news, _ = await state.add_subscription(sub("news"))
    other, _ = await state.add_subscription(sub("other"))
    a1 = make_article("https://example.com/one", "One")
    a2 = make_article("https://example.com/two", "Two")
    report = await state.record_files(
        [outcome("one.md", a1), outcome("two.md", a2), outcome("bad.md", None)],
        route=to(news, other),  # type: ignore[arg-type]
    )
    assert (report.new_articles, report.deliveries, report.bad_files) == (2, 4, 1)
    rows = await state.outbox.rows_for("console", "news")
    assert [r.article_key for r in rows] == [a1.key, a2.key]
    assert all(r.state is DeliveryState.PENDING for r in rows)
    assert all(r.next_attempt_at == clock.time() for r in rows)
    assert rows[0].key == f"console:news:{a1.key}"
    assert (await state.get_article(a1.key)) == a1
    assert await state.bad_files() == [("bad.md", "no front matter")]
    assert set(await state.load_file_index()) == {"one.md", "two.md", "bad.md"}


@pytest.mark.sqlite_only
async def test_record_files_is_one_transaction(state: State, db_path: Path) -> None:
    news, _ = await state.add_subscription(sub("news"))
    a1 = make_article("https://example.com/one", "One")
    a2 = make_article("https://example.com/two", "Two")

    def route(article: Article) -> Routing:
        if article.key == a2.key:
            raise RuntimeError("routing blew up on the second article")
        return Routing(targets=(news,), held_unscored=False)

    with pytest.raises(RuntimeError):
        await state.record_files([outcome("one.md", a1), outcome("two.md", a2)], route=route)
    # The first article, its file and its delivery were rolled back with the second.
    assert await state.article_count() == 0
    assert await state.load_file_index() == {}
    assert raw_rows(db_path, "SELECT COUNT(*) FROM deliveries") == [(0,)]
    # And the state is usable afterwards.
    report = await state.record_files([outcome("one.md", a1)], route=to(news))  # type: ignore[arg-type]
    assert report.deliveries == 1


async def test_record_without_route_makes_no_deliveries(state: State, db_path: Path) -> None:
    await state.add_subscription(sub("news"))
    report = await state.record_files([outcome("one.md", make_article("https://example.com/1"))])
    assert (report.new_articles, report.deliveries) == (1, 0)
    assert await state.article_count() == 1
    rows = await state.database.fetchall("SELECT COUNT(*) FROM deliveries")
    assert rows[0][0] == 0


async def test_same_story_from_another_path_is_a_duplicate(state: State) -> None:
    news, _ = await state.add_subscription(sub("news"))
    first = make_article("https://example.com/story", "First telling")
    report = await state.record_files([outcome("a.md", first)], route=to(news))  # type: ignore[arg-type]
    assert report.deliveries == 1
    # Same canonical URL once normalized: tracking parameters and host case do not matter.
    again = make_article("https://EXAMPLE.com/story?utm_source=feed", "Second telling")
    assert again.key == first.key
    report = await state.record_files([outcome("b.md", again)], route=to(news))  # type: ignore[arg-type]
    assert (report.new_articles, report.duplicates, report.deliveries) == (0, 1, 0)
    assert len(await state.outbox.rows_for("console", "news")) == 1
    # The story's record still comes from its first file.
    stored = await state.get_article(first.key)
    assert stored is not None and stored.title == "First telling"

    # Two files of one story in the same batch: one article, one delivery.
    c1 = make_article("https://example.com/c", "C")
    c2 = make_article("https://example.com/c#section", "C again")
    report = await state.record_files(
        [outcome("c1.md", c1), outcome("c2.md", c2)], route=to(news)  # type: ignore[arg-type]
    )
    assert (report.new_articles, report.duplicates, report.deliveries) == (1, 1, 1)


async def test_changed_file_with_same_key_updates_payload_without_delivery(state: State) -> None:
    news, _ = await state.add_subscription(sub("news"))
    old = make_article("https://example.com/story", "Old title", quality=50)
    await state.record_files([outcome("a.md", old, size=10)], route=to(news))  # type: ignore[arg-type]
    new = make_article("https://example.com/story", "New title", quality=90, topics=("Robotics",))
    report = await state.record_files(
        [outcome("a.md", new, size=11, mtime_ns=2)], route=to(news)  # type: ignore[arg-type]
    )
    assert (report.new_articles, report.updated_articles, report.deliveries) == (0, 1, 0)
    assert len(await state.outbox.rows_for("console", "news")) == 1
    stored = await state.get_article(old.key)
    assert stored is not None and (stored.title, stored.quality) == ("New title", 90.0)
    assert await state.topic_counts() == [("Robotics", 1)]
    assert (await state.load_file_index())["a.md"] == FileStamp(11, 2)


async def test_a_renamed_file_still_updates_its_story(state: State) -> None:
    news, _ = await state.add_subscription(sub("news"))
    old = make_article("https://example.com/story", "Old title")
    await state.record_files([outcome("a.md", old)], route=to(news))  # type: ignore[arg-type]
    new = make_article("https://example.com/story", "Edited title")
    report = await state.record_files(
        [outcome("renamed.md", new)], removed=["a.md"], route=to(news)  # type: ignore[arg-type]
    )
    assert (report.updated_articles, report.duplicates, report.removed_files) == (1, 0, 1)
    assert report.deliveries == 0
    stored = await state.get_article(old.key)
    assert stored is not None and stored.title == "Edited title"
    assert set(await state.load_file_index()) == {"renamed.md"}


# --- subscriptions ---------------------------------------------------------------------------


async def test_subscription_add_then_update_same_topics_any_case_or_order(state: State) -> None:
    first, created = await state.add_subscription(sub("news", ("AI", "Robotics")))
    assert created and first.id > 0 and first.topics == ("AI", "Robotics")
    again, created = await state.add_subscription(
        sub("news", ("robotics", "ai"), min_quality=70.0, include_unscored=True)
    )
    assert not created
    assert again.id == first.id
    assert (again.min_quality, again.include_unscored) == (70.0, True)
    assert len(await state.subscriptions()) == 1
    # Another channel, another platform, or other topics: another subscription.
    _, created_other_channel = await state.add_subscription(sub("other", ("AI", "Robotics")))
    _, created_other_platform = await state.add_subscription(
        sub("news", ("AI", "Robotics"), platform="slack")
    )
    _, created_other_topics = await state.add_subscription(sub("news", ("AI",)))
    assert created_other_channel and created_other_platform and created_other_topics
    assert len(await state.subscriptions()) == 4
    assert len(await state.subscriptions(platform="console", channel="news")) == 2


async def test_remove_by_topic_takes_only_that_topic(state: State) -> None:
    multi, _ = await state.add_subscription(sub("news", ("AI", "Robotics")))
    only_ai, _ = await state.add_subscription(sub("news", ("AI", "Health")))
    health, _ = await state.add_subscription(sub("news", ("Health",), min_quality=70.0))
    elsewhere, _ = await state.add_subscription(sub("other", ("AI",)))
    changed = await state.remove_subscriptions("console", "news", "ai")
    assert changed == 2
    by_id = {s.id: s for s in await state.subscriptions()}
    assert by_id[multi.id].topics == ("Robotics",)
    assert elsewhere.id in by_id and by_id[elsewhere.id].topics == ("AI",)
    # "AI, Health" minus AI is "Health", which the channel already had: one remains.
    healths = [s for s in by_id.values() if s.channel == "news" and s.topics == ("Health",)]
    assert len(healths) == 1
    # The subscription that already was "Health" keeps its own settings.
    assert healths[0].id == health.id and healths[0].min_quality == 70.0
    assert only_ai.id not in by_id
    assert await state.remove_subscriptions("console", "news", "Nonexistent") == 0
    # No topic: everything of that channel.
    assert await state.remove_subscriptions("console", "news") == 2
    assert [s.channel for s in await state.subscriptions()] == ["other"]


async def test_remove_by_id(state: State) -> None:
    stored, _ = await state.add_subscription(sub("news"))
    assert await state.remove_subscription_by_id(stored.id) is True
    assert await state.remove_subscription_by_id(stored.id) is False
    assert await state.subscriptions() == []


async def test_removing_a_channels_last_subscription_drops_its_unsent_posts(
    state: State,
) -> None:
    first, _ = await state.add_subscription(sub("news", ("AI",)))
    second, _ = await state.add_subscription(sub("news", ("Robotics",)))
    await state.record_files(
        [outcome("a.md", make_article("https://e.com/a"))], route=to(first)  # type: ignore[arg-type]
    )
    assert len(await state.outbox.rows_for("console", "news")) == 1
    # Another subscription of the channel remains: the post may still be wanted there.
    await state.remove_subscription_by_id(first.id)
    assert len(await state.outbox.rows_for("console", "news")) == 1
    await state.remove_subscription_by_id(second.id)
    assert await state.outbox.rows_for("console", "news") == []


async def test_backfill_takes_the_n_most_recent_matching(state: State) -> None:
    articles = [
        make_article("https://example.com/1", "Oldest AI", published="2026-01-01T00:00:00Z"),
        make_article("https://example.com/2", "Middle AI", published="2026-02-01T00:00:00Z"),
        make_article("https://example.com/3", "Newest AI", published="2026-03-01T00:00:00Z"),
        make_article(
            "https://example.com/4", "Newest low", quality=10, published="2026-04-01T00:00:00Z"
        ),
        make_article(
            "https://example.com/5", "Newer health", topics=("Health",),
            published="2026-05-01T00:00:00Z",
        ),
        make_article(
            "https://example.com/6", "Unscored", quality=None, published="2026-06-01T00:00:00Z"
        ),
    ]
    await state.record_files([outcome(f"{i}.md", a) for i, a in enumerate(articles)])
    stored, created = await state.add_subscription(sub("news", ("ai",), backfill=2), wants)
    assert created
    rows = await state.outbox.rows_for("console", "news")
    titles = {(await state.get_article(r.article_key)).title for r in rows}  # type: ignore[union-attr]
    assert titles == {"Newest AI", "Middle AI"}
    assert all(r.subscription_id == stored.id for r in rows)
    # Updating the subscription never backfills again.
    await state.add_subscription(sub("news", ("AI",), backfill=5), wants)
    assert len(await state.outbox.rows_for("console", "news")) == 2


async def test_sync_config_subscriptions(state: State) -> None:
    await state.record_files(
        [outcome(f"{i}.md", make_article(f"https://example.com/{i}")) for i in range(3)]
    )
    chat, _ = await state.add_subscription(sub("chatroom", source=SubscriptionSource.CHAT))
    cli, _ = await state.add_subscription(sub("terminal", source=SubscriptionSource.CLI))
    cfg = SubscriptionSource.CONFIG
    a = sub("a", ("AI",), source=cfg, backfill=1)
    b = sub("b", source=cfg)
    created = await state.sync_config_subscriptions([a, b], wants)
    assert [s.channel for s in created] == ["a", "b"]
    assert len(await state.outbox.rows_for("console", "a")) == 1
    ids = {s.channel: s.id for s in await state.subscriptions()}

    c = sub("c", source=cfg)
    a_changed = sub("a", ("ai",), source=cfg, backfill=3, min_quality=50.0)
    created = await state.sync_config_subscriptions([a_changed, c], wants)
    assert [s.channel for s in created] == ["c"]
    now = {s.channel: s for s in await state.subscriptions()}
    assert set(now) == {"chatroom", "terminal", "a", "c"}  # b left the file: removed
    assert now["a"].id == ids["a"] and now["a"].min_quality == 50.0
    assert len(await state.outbox.rows_for("console", "a")) == 1  # no second backfill
    assert now["chatroom"].id == chat.id and now["terminal"].id == cli.id

    # An empty config removes only config-sourced subscriptions.
    assert await state.sync_config_subscriptions([], wants) == []
    assert {s.channel for s in await state.subscriptions()} == {"chatroom", "terminal"}


async def test_park_and_unpark_channel(state: State, clock: FakeClock) -> None:
    bad, _ = await state.add_subscription(sub("gone", ("AI",)))
    bad2, _ = await state.add_subscription(sub("gone", ("Health",)))
    good, _ = await state.add_subscription(sub("fine"))
    a1, a2 = make_article("https://example.com/1"), make_article("https://example.com/2")
    await state.record_files([outcome("1.md", a1)], route=to(bad, good))  # type: ignore[arg-type]
    sent = (await state.outbox.rows_for("console", "gone"))[0]
    await state.outbox.mark_sending(sent.id)
    await state.outbox.mark_sent(sent.id, "m1")
    await state.record_files([outcome("2.md", a2)], route=to(bad, good))  # type: ignore[arg-type]

    assert await state.park_channel("console", "gone", "404 Unknown Channel") == 2
    subs = {s.id: s for s in await state.subscriptions()}
    assert subs[bad.id].parked_reason == "404 Unknown Channel" and subs[bad.id].is_parked
    assert subs[bad2.id].is_parked
    assert not subs[good.id].is_parked
    gone = {r.article_key: r for r in await state.outbox.rows_for("console", "gone")}
    assert gone[a1.key].state is DeliveryState.SENT  # what was sent stays sent
    assert gone[a2.key].state is DeliveryState.PARKED
    assert gone[a2.key].last_error == "404 Unknown Channel"
    assert {w.channel for w in await state.outbox.backlog(["console"])} == {"fine"}

    clock.advance(3600)
    assert await state.unpark_channel("console", "gone") == 2
    assert not any(s.is_parked for s in await state.subscriptions())
    resumed = await state.outbox.due_rows("console", "gone", clock.time(), 10)
    assert [d.article_key for d in resumed] == [a2.key]
    assert resumed[0].next_attempt_at == clock.time()


# --- reading articles ---------------------------------------------------------------------------


async def test_recent_articles(state: State) -> None:
    items = [
        make_article("https://example.com/1", "Old AI 90", quality=90, topics=("AI",),
                     published="2026-01-01T00:00:00Z"),
        make_article("https://example.com/2", "New ai 50", quality=50, topics=("ai", "Robotics"),
                     published="2026-03-01T00:00:00Z"),
        make_article("https://example.com/3", "Mid AI unscored", quality=None, topics=("AI",),
                     published="2026-02-01T00:00:00Z"),
        make_article("https://example.com/4", "Newest health", quality=120, topics=("Health",),
                     published="2026-04-01T00:00:00+02:00"),
    ]
    await state.record_files([outcome(f"{i}.md", a) for i, a in enumerate(items)])

    def titles(found: list[Article]) -> list[str]:
        return [a.title for a in found]

    assert titles(await state.recent_articles("AI", None, False, 10)) == ["New ai 50", "Old AI 90"]
    assert titles(await state.recent_articles("aI", None, True, 10)) == [
        "New ai 50", "Mid AI unscored", "Old AI 90"
    ]
    assert titles(await state.recent_articles("ai", 60, False, 10)) == ["Old AI 90"]
    assert titles(await state.recent_articles("ai", 60, True, 10)) == [
        "Mid AI unscored", "Old AI 90"
    ]
    assert titles(await state.recent_articles(None, None, False, 2)) == [
        "Newest health", "New ai 50"
    ]
    assert titles(await state.recent_articles("robotics", None, False, 10)) == ["New ai 50"]
    assert await state.recent_articles("nothing", None, True, 10) == []


async def test_topic_counts(state: State) -> None:
    items = [
        make_article("https://example.com/1", topics=("AI", "Robotics")),
        make_article("https://example.com/2", topics=("ai",)),
        make_article("https://example.com/3", topics=("AI", "Health")),
        make_article("https://example.com/4", topics=("Health",)),
        make_article("https://example.com/5", topics=("Space",)),
    ]
    await state.record_files([outcome(f"{i}.md", a) for i, a in enumerate(items)])
    counts = dict(await state.topic_counts())
    assert len(counts) == 4
    ai = next(k for k in counts if k.casefold() == "ai")
    assert counts[ai] == 3
    assert (counts["Health"], counts["Robotics"], counts["Space"]) == (2, 1, 1)
    assert next(iter(counts)) == ai  # most common first


# --- another process holding the write lock ------------------------------------------------------


@pytest.mark.sqlite_only
async def test_write_waits_for_another_process_lock(state: State, db_path: Path) -> None:
    locked = threading.Event()
    release = threading.Event()
    bot_began = threading.Event()
    errors: list[BaseException] = []

    def hold_lock() -> None:
        try:
            conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO meta (key, value) VALUES ('holder', 'was here')")
                locked.set()
                if not release.wait(20):
                    raise TimeoutError("never released")
                conn.execute("COMMIT")
            finally:
                conn.close()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
            locked.set()

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            bot_began.set()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        assert not errors
        await state.database.connection.set_trace_callback(trace)
        write = asyncio.create_task(state.set_meta("bot", "wrote"))
        assert await asyncio.to_thread(bot_began.wait, 10)
        # The bot's write has started and cannot finish while the other process holds the lock.
        assert not write.done()
        release.set()
        await asyncio.wait_for(write, 30)
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    assert not errors
    assert await state.get_meta("bot") == "wrote"
    assert await state.get_meta("holder") == "was here"
