"""What the ingest pipeline stands on: deduplication (bot/carriers.py), and the first scan's
stories placed once at its end (`State.record_stored(..., place_later=True)`, `place_stories`)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import worker as worker_module
from bot.articles import Article, parse_article
from bot.carriers import Carriers, Take
from bot.cli import main
from bot.routing import Routing
from bot.state import State
from bot.store import FileOutcome, FileStamp
from bot.stored_article import StoredArticle, stored_article
from tests.builders import store_file_text
from tests.conftest import FakeClock
from tests.test_worker import TERMINAL, Store, make_config, started

# --- deduplication -----------------------------------------------------------------------------


def test_the_first_file_carries_an_article_and_others_repeat_it() -> None:
    carriers = Carriers()
    assert carriers.take("u1", "a.md") is Take.NEW
    assert carriers.take("u1", "b.md") is Take.DUPLICATE
    assert carriers.take("u2", "b.md") is Take.NEW


def test_a_known_article_is_updated_by_its_carrier_only() -> None:
    carriers = Carriers({"u1": {"a.md"}, "orphan": set()})
    assert carriers.take("u1", "other.md") is Take.DUPLICATE
    assert carriers.take("u1", "a.md") is Take.UPDATE
    # Known, but no file carries it any more (its file was removed): the next file does.
    assert carriers.take("orphan", "new.md") is Take.UPDATE
    assert carriers.take("orphan", "newer.md") is Take.DUPLICATE


# --- the first scan's stories, placed at its end -------------------------------------------


@pytest.fixture
async def state(tmp_path: Path, clock: FakeClock) -> AsyncIterator[State]:
    state = await State.open(tmp_path / "state.db", clock)
    try:
        yield state
    finally:
        await state.aclose()


def stored_outcome(path: str, url: str, title: str, published: str) -> FileOutcome[StoredArticle]:
    article = parse_article(store_file_text(url, title, published=published).encode(), path)
    return FileOutcome(path, FileStamp(100, 1), stored_article(article))


async def story_ids(state: State) -> dict[str, int | None]:
    rows = await state.database.fetchall("SELECT key, story_id FROM articles")
    return {r["key"]: r["story_id"] for r in rows}


LAUNDRY = "Robots learn to fold laundry at home"
RETOLD = [
    ("a.md", "https://one.example/a", LAUNDRY, "2026-11-01T10:00:00Z"),
    ("b.md", "https://two.example/b", LAUNDRY + "!", "2026-11-01T18:00:00Z"),
    ("c.md", "https://three.example/c", "Something else entirely happened", "2026-11-01T12:00:00Z"),
]


async def test_articles_placed_later_get_their_stories_in_one_placement(state: State) -> None:
    report = await state.record_stored([stored_outcome(*r) for r in RETOLD[:2]], place_later=True)
    assert report.new_articles == 2 and len(report.unplaced) == 2
    assert set((await story_ids(state)).values()) == {None}
    more = await state.record_stored([stored_outcome(*RETOLD[2])], place_later=True)
    await state.place_stories([*report.unplaced, *more.unplaced])
    ids = await story_ids(state)
    assert ids["https://one.example/a"] == ids["https://two.example/b"] is not None
    assert ids["https://three.example/c"] not in (None, ids["https://one.example/a"])


async def test_what_an_interrupted_first_scan_left_unplaced_is_placed_next_time(
    state: State,
) -> None:
    # Recorded, and then the process died before the end of the pass.
    await state.record_stored([stored_outcome(*r) for r in RETOLD], place_later=True)
    await state.place_stories([])  # the next first scan's end, with nothing new of its own
    ids = await story_ids(state)
    assert None not in ids.values() and len(set(ids.values())) == 2


async def test_articles_placed_later_cannot_be_routed(state: State) -> None:
    def route(article: Article) -> Routing:
        return Routing(targets=(), held_unscored=False)

    with pytest.raises(ValueError, match="no story"):
        await state.record_stored([], route=route, place_later=True)


# --- through the worker: a first scan in several transactions, then a late outlet ------------


async def test_a_first_scan_groups_stories_across_its_transactions_and_later_files_join(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two files per transaction: the two tellings of the story land in different ones.
    monkeypatch.setattr(worker_module, "_BASELINE_TRANSACTION", 2)
    store = Store(tmp_path / "store", clock)
    store.add("1-a.md", LAUNDRY, url="https://one.example/a", published="2026-11-01T10:00:00Z")
    store.add("2-c.md", "Something else entirely happened", url="https://three.example/c")
    store.add(
        "3-b.md", LAUNDRY + "!", url="https://two.example/b", published="2026-11-01T18:00:00Z"
    )
    config = make_config(tmp_path, TERMINAL)
    async with started(config, clock) as bot:
        ids = await story_ids(bot.state)
        assert bot.posts() == 0  # a first scan posts nothing
        assert ids["https://one.example/a"] == ids["https://two.example/b"] is not None
        assert ids["https://three.example/c"] != ids["https://one.example/a"]
    store.add(
        "4-d.md",
        LAUNDRY + ", says lab",
        url="https://four.example/d",
        published="2026-11-02T08:00:00Z",
    )
    async with started(config, clock) as bot:
        later = await story_ids(bot.state)
        assert later["https://four.example/d"] == ids["https://one.example/a"]
        # New to this channel (its first scan posted nothing): one post, of the story.
        assert bot.posts() == 1


# --- newsbot scan --stories ----------------------------------------------------------------


def test_scan_stories_counts_articles_stories_and_the_posts_clustering_saves(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = Store(tmp_path / "store", clock)
    store.add("a.md", LAUNDRY, url="https://one.example/a", published="2026-11-01T10:00:00Z")
    store.add("b.md", LAUNDRY + "!", url="https://two.example/b", published="2026-11-01T18:00:00Z")
    store.add("copy.md", LAUNDRY, url="https://one.example/a")  # a repeat: one article
    store.add("low.md", "A quiet day at the lab", url="https://low.example/x", quality=5)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["scan", str(tmp_path / "store"), "--stories", "--json"]) == 0
    figures = json.loads(out.getvalue())
    assert figures["articles"] == 3 and figures["stories"] == 2
    assert figures["largest_story"]["articles"] == 2
    assert figures["largest_story"]["title"].startswith(LAUNDRY)
    # The default floor (40) leaves the quality-5 article out: two posts, one story.
    assert figures["all_topics_channel_posts"] == {"one_per_article": 2, "one_per_story": 1}


def test_scan_stories_names_a_missing_folder(tmp_path: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["scan", str(tmp_path / "nowhere"), "--stories"]) == 1
    assert "no such folder" in out.getvalue()


@pytest.mark.sqlite_only
async def test_a_first_scan_leaves_every_commit_durable_again(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    from bot.database import Database

    original = Database.sync_each_commit

    async def watched(self: Database, on: bool) -> None:
        seen.append(on)
        await original(self, on)

    monkeypatch.setattr(Database, "sync_each_commit", watched)
    store = Store(tmp_path / "store", clock)
    store.add("1-a.md", LAUNDRY, url="https://one.example/a")
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        assert seen == [False, True]  # relaxed for the first scan only
        [(level,)] = await bot.state.database.fetchall("PRAGMA synchronous")
        assert level == 2  # FULL: a sent post stays sent through a power cut
    store.add("2-b.md", "Another story altogether here", url="https://two.example/b")
    async with started(make_config(tmp_path, TERMINAL), clock):
        assert seen == [False, True]  # later scans never relax it
