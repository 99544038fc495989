"""bot/worker.py end to end inside one process: real folders, real SQLite, the console notifier
writing to a StringIO, and a clock moved by hand."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bot.worker as bot_worker
from bot.app import build_delivery
from bot.config import Config, DatabaseConfig, StoreConfig, SubscriptionSpec
from bot.platforms.console import ConsoleNotifier
from bot.render import RenderStyle
from bot.state import DeliveryState, State
from bot.store import Listing
from bot.subscriptions import Subscription, SubscriptionSource
from bot.worker import ScanSummary, Worker, summary_lines
from tests.builders import store_file_text
from tests.conftest import FakeClock

RULE = "─" * 72


def article_text(title: str, url: str, **kwargs: Any) -> str:
    return store_file_text(url, title, body="Body text.", **kwargs)


class Store:
    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.root = root
        self.clock = clock
        root.mkdir(parents=True, exist_ok=True)
        self._mtime_s = clock.time() - 3600

    def write(self, rel: str, text: str) -> Path:
        """Write atomically (temp name, then rename), with an mtime in the clock's past that
        moves forward at every write, so the file counts as settled and as changed."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        self._mtime_s += 1
        os.utime(tmp, (self._mtime_s, self._mtime_s))
        os.rename(tmp, path)
        return path

    def add(self, rel: str, title: str, **kwargs: object) -> Path:
        slug = rel.rsplit(".", 1)[0]
        url = kwargs.pop("url", f"https://example.com/{slug}")
        return self.write(rel, article_text(title, str(url), **kwargs))  # type: ignore[arg-type]


@dataclass
class Running:
    worker: Worker
    state: State
    out: io.StringIO
    summary: ScanSummary

    def printed_titles(self, known: Sequence[str]) -> list[str]:
        text = self.out.getvalue()
        return [t for t in known if t in text]

    def posts(self) -> int:
        return self.out.getvalue().count(RULE)

    def take(self) -> str:
        text = self.out.getvalue()
        self.out.seek(0)
        self.out.truncate()
        return text

    async def tick(self) -> str:
        """One rescan and every due delivery; returns what was printed."""
        await self.worker.scan()
        await self.worker.deliver_until_idle()
        return self.take()


def make_config(tmp_path: Path, *subs: SubscriptionSpec, **global_: object) -> Config:
    return Config(
        store=StoreConfig(path=tmp_path / "store", watch=False),
        database=DatabaseConfig(path=tmp_path / "state.db"),
        subscriptions=subs,
        **global_,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def started(config: Config, clock: FakeClock) -> AsyncIterator[Running]:
    state = await State.open(config.database.path, clock)
    out = io.StringIO()
    try:
        notifiers = {"console": ConsoleNotifier(out, RenderStyle())}
        _, scheduler = build_delivery(config, state, notifiers, clock)
        worker = Worker(config, state, scheduler, clock)
        summary = await worker.prepare()
        await worker.deliver_until_idle()
        yield Running(worker, state, out, summary)
    finally:
        await state.aclose()


TERMINAL = SubscriptionSpec(platform="console", channel="terminal")


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Store:
    return Store(tmp_path / "store", clock)


def fill(store: Store, count: int) -> list[str]:
    titles = []
    for i in range(count):
        title = f"Existing story {i}"
        store.add(f"existing-{i}.md", title, published=f"2026-10-{10 + i:02d}T09:00:00Z")
        titles.append(title)
    return titles


async def test_first_start_posts_nothing_old(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 5)
    config = make_config(tmp_path, TERMINAL)
    state = await State.open(config.database.path, clock)
    try:
        out = io.StringIO()
        notifiers = {"console": ConsoleNotifier(out, RenderStyle())}
        _, scheduler = build_delivery(config, state, notifiers, clock)
        worker = Worker(config, state, scheduler, clock)
        summary = await worker.prepare()
        await worker.deliver_until_idle()
        assert summary.baseline and summary.new_articles == 5
        assert out.getvalue() == ""
        lines = summary_lines(summary, config)
        assert "0 deliveries queued" in lines[0]
        assert "set backfill = N" in lines[1]
        assert await state.article_count() == 5
        assert await state.outbox.rows_for("console", "terminal") == []
    finally:
        await state.aclose()


async def test_backfill_posts_the_n_most_recent_matching(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    titles = fill(store, 5)  # story 4 is the newest
    store.add("low.md", "Newest but low", quality=10, published="2026-11-20T00:00:00Z")
    store.add("unscored.md", "Newest unscored", quality=None, published="2026-11-22T00:00:00Z")
    store.add(
        "other.md", "Newest other topic", topics=("Health",), published="2026-11-21T00:00:00Z"
    )
    spec = SubscriptionSpec(platform="console", channel="terminal", topics=("ai",), backfill=2)
    async with started(make_config(tmp_path, spec), clock) as bot:
        everything = [*titles, "Newest but low", "Newest other topic", "Newest unscored"]
        assert bot.printed_titles(everything) == ["Existing story 3", "Existing story 4"]
        assert bot.posts() == 2
        lines = summary_lines(bot.summary, make_config(tmp_path, spec))
        assert "8 new articles" in lines[0] and "2 deliveries queued" in lines[0]
        assert "2 of the most recent were queued by backfill" in lines[1]
        assert "passed over 1 articles that it would have taken" in lines[2]
        assert "include_unscored = true" in lines[2]


async def test_new_file_above_the_floor_is_delivered(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 3)
    async with started(make_config(tmp_path, TERMINAL, min_quality=50.0), clock) as bot:
        assert bot.take() == ""
        store.add("fresh.md", "Fresh and good", quality=50)
        store.add("weak.md", "Fresh but weak", quality=49.5)
        printed = await bot.tick()
        assert "Fresh and good" in printed
        assert "Fresh but weak" not in printed
        assert printed.count(RULE) == 1
        # Delivered once: later rescans print nothing.
        assert await bot.tick() == ""


async def test_unscored_is_held_back_unless_included(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 1)
    taker = SubscriptionSpec(platform="console", channel="taker", include_unscored=True)
    async with started(make_config(tmp_path, TERMINAL, taker), clock) as bot:
        store.add("unscored.md", "No score here", quality=None)
        summary = await bot.worker.scan()
        assert summary.held_unscored == 0  # one subscription took it
        await bot.worker.deliver_until_idle()
        printed = bot.take()
        assert printed.count(RULE) == 1 and "[taker]" in printed and "[terminal]" not in printed

    # With only subscriptions that do not take unscored articles, it is held and counted.
    other = tmp_path / "other"
    store2 = Store(other / "store", clock)
    store2.add("seed.md", "Seed")
    async with started(make_config(other, TERMINAL), clock) as bot:
        store2.add("unscored.md", "No score either", quality=None)
        summary = await bot.worker.scan()
        assert (summary.new_articles, summary.held_unscored, summary.deliveries) == (1, 1, 0)
        await bot.worker.deliver_until_idle()
        assert bot.take() == ""

    async with started(make_config(other, TERMINAL, include_unscored=True), clock) as bot:
        store2.add("unscored2.md", "Globally included", quality=None)
        assert "Globally included" in await bot.tick()


async def test_file_changed_to_a_new_url_is_a_new_story(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    store.add("story.md", "Original", url="https://example.com/original")
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        store.add("story.md", "Original, retitled", url="https://example.com/original")
        assert await bot.tick() == ""  # same story: updated, not posted
        store.add("story.md", "A different story", url="https://example.com/different")
        printed = await bot.tick()
        assert "A different story" in printed and printed.count(RULE) == 1
        assert await bot.state.article_count() == 2


async def test_bad_file_is_reported_once_until_it_changes(
    tmp_path: Path, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fill(store, 2)
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        store.add("good-1.md", "Good one")
        store.write("bad.md", "no front matter at all\n")
        store.add("good-2.md", "Good two")
        summary = await bot.worker.scan()
        await bot.worker.deliver_until_idle()
        assert summary.bad_files == 1
        printed = bot.take()
        assert "Good one" in printed and "Good two" in printed

        def reports() -> list[str]:
            return [r.getMessage() for r in caplog.records if "bad.md" in r.getMessage()]

        assert len(reports()) == 1
        assert "front matter" in reports()[0]

        summary = await bot.worker.scan()
        assert (summary.parsed, summary.bad_files) == (0, 0)
        assert len(reports()) == 1

        store.write("bad.md", "---\ntitle: [not, a, string]\nwebUrl: https://example.com/b\n---\n")
        summary = await bot.worker.scan()
        assert summary.bad_files == 1
        assert len(reports()) == 2
        assert "title" in reports()[1]
        assert await bot.state.bad_files() == [("bad.md", reports()[1].split(": ", 1)[1])]


async def test_a_link_swapped_between_listing_and_reading_never_brings_in_the_outside(
    tmp_path: Path, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(article_text("Secret from outside", "https://example.com/secret"))
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        real = store.add("archive/real.md", "Real inside story")
        (store.root / "link.md").symlink_to(real)
        real_list_store = bot_worker.list_store

        def list_then_swap(root: Path) -> Listing:
            listing = real_list_store(root)  # the link is checked: it points inside...
            swap = store.root / ".swap"
            swap.symlink_to(outside)
            os.replace(swap, store.root / "link.md")  # ...and swapped before it is read
            return listing

        monkeypatch.setattr(bot_worker, "list_store", list_then_swap)
        printed = await bot.tick()
        assert "Real inside story" in printed
        assert "Secret from outside" not in printed
        keys = [a.key for a in await bot.state.recent_articles(None, None, True, 100)]
        assert "https://example.com/secret" not in keys
        [(path, reason)] = await bot.state.bad_files()
        assert path == "link.md" and "outside the store" in reason


def bad_file_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("bad article")]


async def test_a_refused_symlink_is_reported_once_across_restarts_until_it_changes(
    tmp_path: Path, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fill(store, 1)
    first = tmp_path / "outside-1.md"
    first.write_text(article_text("Outside one", "https://example.com/o1"), encoding="utf-8")
    (store.root / "out.md").symlink_to(first)
    (store.root / "dangling.md").symlink_to(tmp_path / "nothing-here.md")
    config = make_config(tmp_path, TERMINAL)
    async with started(config, clock) as bot:
        assert len(bad_file_warnings(caplog)) == 2
        assert bot.summary.bad_files == 2
        assert sorted(p for p, _ in await bot.state.bad_files()) == ["dangling.md", "out.md"]
        assert (await bot.worker.scan()).bad_files == 0
    async with started(config, clock) as bot:  # a restart: nothing new to say
        assert bot.summary.bad_files == 0
        assert len(bad_file_warnings(caplog)) == 2
        assert not any("newsbot scan" in line for line in summary_lines(bot.summary, config))
        # The link made to point elsewhere is a changed file: reported again, once.
        second = tmp_path / "outside-2.md"
        second.write_text(article_text("Outside two", "https://example.com/o2"))
        relink = store.root / ".relink"
        relink.symlink_to(second)
        os.replace(relink, store.root / "out.md")
        summary = await bot.worker.scan()
        assert summary.bad_files == 1
        assert (await bot.worker.scan()).bad_files == 0
        warnings = bad_file_warnings(caplog)
        assert len(warnings) == 3 and str(second) in warnings[2]
        # Fixed, then removed: it leaves the bad files.
        os.remove(store.root / "out.md")
        await bot.worker.scan()
        assert [p for p, _ in await bot.state.bad_files()] == ["dangling.md"]


async def test_the_summary_counts_every_bad_file_it_warned_about(
    tmp_path: Path, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fill(store, 2)
    store.write("no-front-matter.md", "just text\n")
    store.write("bad-title.md", "---\ntitle: [a]\nwebUrl: https://example.com/t\n---\n")
    (store.root / "out.md").symlink_to(tmp_path)  # a folder outside the store
    (store.root / "gone.md").symlink_to(store.root / "missing.md")
    config = make_config(tmp_path, TERMINAL)
    async with started(config, clock) as bot:
        warned = len(bad_file_warnings(caplog))
        assert warned == 4 == bot.summary.bad_files
        lines = summary_lines(bot.summary, config)
        assert "6 article files" in lines[0] and "4 bad files" in lines[0]
        assert lines[-1] == "run `newsbot scan` to list the bad files with their reasons"


async def test_no_scan_hint_without_bad_files(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 2)
    config = make_config(tmp_path, TERMINAL)
    async with started(config, clock) as bot:
        assert bot.summary.bad_files == 0
        assert not any("newsbot scan" in line for line in summary_lines(bot.summary, config))


async def test_the_backfill_counts_only_unscored_articles_it_would_have_taken(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 2)  # scored, topic AI
    store.add("ai-1.md", "AI unscored one", quality=None)
    store.add("ai-2.md", "AI unscored two", quality=None)
    # Unscored too, but the subscription would not take them anyway:
    store.add("health.md", "Health unscored", quality=None, topics=("Health",))
    store.add("other.md", "Unscored, no keyword", quality=None)
    store.add("old.md", "Old unscored", quality=None, published="2020-01-01T00:00:00Z")
    spec = SubscriptionSpec(
        platform="console",
        channel="terminal",
        topics=("AI",),
        backfill=5,
        keywords=("AI",),
        max_age_days=365,
    )
    config = make_config(tmp_path, spec)
    async with started(config, clock) as bot:
        assert bot.summary.unscored_passed_over == 2
        [line] = [line for line in summary_lines(bot.summary, config) if "passed over" in line]
        assert line.startswith("the backfill passed over 2 articles ")


async def test_a_file_name_that_is_not_utf8_costs_only_that_file(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        store.add("good.md", "A good story")
        with open(os.fsencode(store.root) + b"/caf\xe9.md", "w", encoding="utf-8") as handle:
            handle.write(article_text("Named in Latin-1", "https://example.com/latin"))
        printed = await bot.tick()
        assert "A good story" in printed and "Named in Latin-1" not in printed
        [(path, reason)] = await bot.state.bad_files()
        assert path == "caf\\xe9.md" and "not valid UTF-8" in reason
        assert (await bot.worker.scan()).bad_files == 0  # reported once


async def test_unchanged_rescan_parses_nothing(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 4)
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        summary = await bot.worker.scan()
        assert (summary.files, summary.parsed) == (4, 0)
        store.add("one-more.md", "One more")
        summary = await bot.worker.scan()
        assert (summary.files, summary.parsed) == (5, 1)

    # Nor after a restart: the index lives in the database.
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        summary = await bot.worker.scan()
        assert (summary.files, summary.parsed) == (5, 0)


async def test_restart_posts_nothing_twice_and_catches_up(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 3)
    config = make_config(tmp_path, TERMINAL)
    async with started(config, clock) as bot:
        store.add("before.md", "Before the restart")
        assert "Before the restart" in await bot.tick()

    store.add("while-down-1.md", "Arrived while down 1")
    store.add("while-down-2.md", "Arrived while down 2")
    clock.advance(600)
    async with started(config, clock) as bot:
        printed = bot.take()
        assert "Arrived while down 1" in printed and "Arrived while down 2" in printed
        assert "Before the restart" not in printed
        assert printed.count(RULE) == 2
        rows = await bot.state.outbox.rows_for("console", "terminal")
        assert [r.state for r in rows] == [DeliveryState.SENT] * 3
        assert await bot.tick() == ""


async def test_missing_store_keeps_state_and_return_does_not_redeliver(
    tmp_path: Path, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    fill(store, 3)
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        store.add("posted.md", "Posted before the outage")
        assert "Posted before the outage" in await bot.tick()
        index = await bot.state.load_file_index()

        away = tmp_path / "unmounted"
        os.rename(store.root, away)
        for _ in range(2):
            summary = await bot.worker.scan()
            assert summary.store_missing and bot.worker.store_missing
            assert summary.removed_files == 0
        assert len([r for r in caplog.records if "missing" in r.getMessage()]) == 1
        assert await bot.state.load_file_index() == index
        assert await bot.state.article_count() == 4

        os.rename(away, store.root)
        store.add("during.md", "Written during the outage")
        summary = await bot.worker.scan()
        assert not summary.store_missing and not bot.worker.store_missing
        assert (summary.parsed, summary.new_articles) == (1, 1)
        await bot.worker.deliver_until_idle()
        printed = bot.take()
        assert "Written during the outage" in printed and printed.count(RULE) == 1


async def test_store_that_comes_back_empty_then_refills_does_not_redeliver(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 2)
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        store.add("posted.md", "Posted once")
        assert "Posted once" in await bot.tick()
        # A mount point without its volume: the folder is there, but empty.
        away = tmp_path / "volume"
        os.rename(store.root, away)
        store.root.mkdir()
        summary = await bot.worker.scan()
        assert summary.removed_files == 3
        store.root.rmdir()
        os.rename(away, store.root)
        summary = await bot.worker.scan()
        assert (summary.parsed, summary.new_articles) == (3, 0)
        await bot.worker.deliver_until_idle()
        assert bot.take() == ""


async def test_new_subscription_posts_nothing_old(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    fill(store, 3)
    async with started(make_config(tmp_path, TERMINAL), clock) as bot:
        store.add("seen.md", "Seen before the new subscription")
        assert "Seen before" in await bot.tick()
        added, created = await bot.state.add_subscription(
            Subscription(
                id=0, platform="console", channel="newcomer", source=SubscriptionSource.CLI
            ),
            bot.worker.wants,
        )
        assert created and added.backfill == 0
        assert await bot.tick() == ""
        store.add("after.md", "After the new subscription")
        printed = await bot.tick()
        assert printed.count("After the new subscription") == 2
        assert "[newcomer]" in printed and "[terminal]" in printed
        assert "Seen before" not in printed
