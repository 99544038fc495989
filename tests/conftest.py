"""Shared fixtures: where the real articles are, and a clock tests move by hand."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer, running_postgres

REPO = Path(__file__).resolve().parent.parent
# The real-article corpus: 196 files from the public everyday-cc/ai repository (its `_news/`
# folder; the commits are listed in shared/corpus/everyday-ai-SOURCES.txt). It lives in the
# project's shared/ folder, which lies beside the repository on developers' machines and in CI,
# not in a clone on its own.
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "everyday-ai"
# A few of its files, copied byte for byte (sources in tests/data/corpus-SOURCES.txt), for the
# tests that need particular real files: they run in any clone.
CORPUS_SAMPLE = REPO / "tests" / "data" / "corpus"
SEEDS = REPO / "seeds"
# Set (CI does) to fail instead of skipping when the corpus is missing.
REQUIRE_CORPUS = "NEWSBOT_REQUIRE_CORPUS"


class FakeClock:
    """Wall and monotonic time that move only when a test says so."""

    def __init__(self, start: datetime = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) -> None:
        self._wall = start.timestamp()
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall, UTC)

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds


class RunningClock(FakeClock):
    """A clock whose time passes (as the real one does, for a running bot's pacing and
    timers) and that a test can still move forward by hand."""

    def __init__(self, start: datetime = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) -> None:
        super().__init__(start)
        self._real_start = time.monotonic()

    def _elapsed(self) -> float:
        return time.monotonic() - self._real_start

    def time(self) -> float:
        return super().time() + self._elapsed()

    def monotonic(self) -> float:
        return super().monotonic() + self._elapsed()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


class VirtualTimer:
    """The scheduler's timer on a FakeClock: a wait with nothing in flight moves the clock by
    the wait instead of sleeping; with sends in flight it waits for them (they take no
    virtual time)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waited_s = 0.0

    async def wait(self, wake: asyncio.Event, timeout_s: float | None, busy: bool) -> None:
        if busy or timeout_s is None:
            await wake.wait()
            return
        if wake.is_set() or timeout_s <= 0:
            return
        self.clock.advance(timeout_s)
        self.waited_s += timeout_s


@pytest.fixture(autouse=True)
def private_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """`newsbot scan` remembers digests under $XDG_CACHE_HOME: never the real user's, in tests
    (subprocesses inherit it through the environment)."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def corpus_or_skip() -> Path:
    """The whole corpus, for the checks that are about all of it; skipped (with where to get it)
    where it is not, unless $NEWSBOT_REQUIRE_CORPUS says it must be there."""
    if not CORPUS.is_dir():
        why = (
            f"needs the real-article corpus at {CORPUS}: the project's shared/corpus/everyday-ai "
            "folder (files from the public everyday-cc/ai repository), which lies beside the "
            "repository on developers' machines and in CI but not beside a clone on its own"
        )
        if os.environ.get(REQUIRE_CORPUS):
            pytest.fail(f"{REQUIRE_CORPUS} is set and the test {why}")
        pytest.skip(why)
    return CORPUS


@pytest.fixture
def corpus_dir() -> Path:
    return corpus_or_skip()


@pytest.fixture
def sample_dir() -> Path:
    """Real article files shipped with the tests (a sample of the corpus)."""
    return CORPUS_SAMPLE


@pytest.fixture
def real_articles_dir() -> Path:
    """Real articles for tests of a mechanism rather than of the corpus: the whole corpus where
    it is, else the shipped sample, so that these tests run in a clone on its own too."""
    return CORPUS if CORPUS.is_dir() else CORPUS_SAMPLE


@pytest.fixture
def seeds_dir() -> Path:
    return SEEDS


# --- the backend the suite runs on ------------------------------------------------------------
# NEWSBOT_TEST_BACKEND=postgresql runs every test that opens a State (in this process) on a
# throwaway PostgreSQL server instead of SQLite: one database per file path a test names, so a
# test that closes and reopens its state (a restart) finds it again. `.ci/run` runs the suite
# both ways. Tests about SQLite itself are marked `sqlite_only`.

BACKEND = os.environ.get("NEWSBOT_TEST_BACKEND", "sqlite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: runs on SQLite only: about SQLite itself (its file, locks, "
        "pragmas, migration history), or in virtual time, which real database latency would upset"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND != "postgresql":
        return
    skip = pytest.mark.skip(reason="SQLite only (see the sqlite_only marker)")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(autouse=True)
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if BACKEND != "postgresql" or "sqlite_only" in request.keywords:
        return
    from bot.state import State

    server: PostgresServer = request.getfixturevalue("postgres_server")
    made: dict[str, str] = {}
    open_state = State.open.__func__  # type: ignore[attr-defined]

    async def open_on_postgres(cls: type[State], where: Path | str, clock: object) -> State:
        # A file that exists was made by a real `newsbot` process of the test (those run on
        # SQLite): read that one.
        if isinstance(where, Path) and not where.exists():
            key = str(where.resolve())
            if key not in made:
                name = "t_" + hashlib.sha1(key.encode()).hexdigest()[:20]
                made[key] = await asyncio.to_thread(server.create_database, name)
            where = made[key]
        return await open_state(cls, where, clock)  # type: ignore[no-any-return]

    monkeypatch.setattr(State, "open", classmethod(open_on_postgres))
