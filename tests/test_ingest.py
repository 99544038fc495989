"""What the ingest pipeline stands on: deduplication (bot/carriers.py), and the first scan's
stories placed once at its end (`State.record_stored(..., place_later=True)`, `place_stories`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.carriers import Carriers, Take
from bot.routing import Routing
from bot.state import State
from bot.store import FileOutcome, FileStamp
from bot.stored_article import StoredArticle, stored_article
from tests.builders import store_file_text
from tests.conftest import FakeClock

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
