"""Shared fixtures: where the real articles are, and a clock tests move by hand."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# CI clones main into a folder with a copy of shared/ beside it, as it is on a developer's machine.
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "everyday-ai"
SEEDS = REPO / "seeds"


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


@pytest.fixture
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the real-article corpus is expected at {CORPUS} (shared/ beside the repo)")
    return CORPUS


@pytest.fixture
def seeds_dir() -> Path:
    return SEEDS
