"""The store folder: listing, change detection, reading a file safely, parsing many, the report."""

from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bot.scan_report
import bot.store
from bot.articles import parse_article
from bot.scan_report import format_report, quality_band, scan_store
from bot.store import (
    SETTLE_S,
    FileOutcome,
    FileStamp,
    Unsettled,
    diff,
    list_store,
    parse_files,
    read_file,
)
from tests.conftest import FakeClock

GOOD = "---\ntitle: {title}\nwebUrl: https://example.com/{slug}\nquality: {quality}\n{extra}---\n"
MAX = 1024 * 1024


def article_text(slug: str, quality: int = 50, extra: str = "") -> str:
    return GOOD.format(title=f"Story {slug}", slug=slug, quality=quality, extra=extra)


def write(root: Path, rel: str, text: str | bytes, *, age_s: float | None = None,
          clock: FakeClock | None = None) -> Path:  # fmt: skip
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    if age_s is not None:
        assert clock is not None
        set_age(path, age_s, clock)
    return path


def set_age(path: Path, age_s: float, clock: FakeClock) -> None:
    """Give `path` an mtime `age_s` seconds before the fake clock's now."""
    mtime_ns = int((clock.time() - age_s) * 1e9)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def flatten(batches: Iterator[list[Any]]) -> list[Any]:
    return [result for batch in batches for result in batch]


# --- list_store ---------------------------------------------------------------------------------


def test_lists_article_suffixes_in_nested_folders(tmp_path: Path) -> None:
    for rel in [
        "a.md", "b.markdown", "c.txt", "d.yaml", "e.yml", "UPPER.MD", "Mixed.Yml",
        "2021/03/f.md", "2021/03/deep/er/g.txt",
    ]:  # fmt: skip
        write(tmp_path, rel, article_text("x"))
    listing = list_store(tmp_path)
    assert listing.root_exists
    assert sorted(listing.files) == [
        "2021/03/deep/er/g.txt", "2021/03/f.md", "Mixed.Yml", "UPPER.MD",
        "a.md", "b.markdown", "c.txt", "d.yaml", "e.yml",
    ]  # fmt: skip
    assert listing.refused == {}


def test_stamps_are_size_and_mtime(tmp_path: Path, clock: FakeClock) -> None:
    path = write(tmp_path, "a.md", article_text("a"), age_s=100, clock=clock)
    st = path.stat()
    assert list_store(tmp_path).files == {"a.md": FileStamp(st.st_size, st.st_mtime_ns)}


def test_skips_hidden_entries_and_other_suffixes(tmp_path: Path) -> None:
    for rel in [
        ".hidden.md", ".tmp-import.md", ".git/objects/a.md", ".obsidian/x.yml", "sub/.draft.md",
        "notes.json", "a.md.swp", "a.md~", "b.bak", "README", "image.png", "a.mdx",
    ]:  # fmt: skip
        write(tmp_path, rel, article_text("x"))
    write(tmp_path, "sub/kept.md", article_text("k"))
    listing = list_store(tmp_path)
    assert list(listing.files) == ["sub/kept.md"]
    assert listing.refused == {}


def test_symlink_to_a_file_inside_the_store_is_accepted(tmp_path: Path) -> None:
    target = write(tmp_path, "archive/real.md", article_text("real"))
    (tmp_path / "linked.md").symlink_to(target)
    (tmp_path / "relative.md").symlink_to("archive/real.md")
    listing = list_store(tmp_path)
    assert sorted(listing.files) == ["archive/real.md", "linked.md", "relative.md"]
    assert listing.files["linked.md"].size == target.stat().st_size
    assert listing.refused == {}


def test_symlink_out_of_the_store_is_refused_with_its_target(tmp_path: Path) -> None:
    store = tmp_path / "store"
    outside = write(tmp_path, "outside/secret.md", article_text("secret"))
    write(store, "good.md", article_text("good"))
    (store / "escape.md").symlink_to(outside)
    (store / "dotdot.md").symlink_to("../outside/secret.md")
    listing = list_store(store)
    assert list(listing.files) == ["good.md"]
    assert set(listing.refused) == {"escape.md", "dotdot.md"}
    for refusal in listing.refused.values():
        assert refusal.error is not None and refusal.article is None
        assert str(outside) in refusal.error
        assert "outside the store" in refusal.error


def test_symlink_to_a_sibling_folder_with_a_common_prefix_is_outside(tmp_path: Path) -> None:
    # /x/store-old is not inside /x/store, though the strings share a prefix.
    store = tmp_path / "store"
    sibling = write(tmp_path, "store-old/a.md", article_text("a"))
    store.mkdir()
    (store / "a.md").symlink_to(sibling)
    assert set(list_store(store).refused) == {"a.md"}


def test_dangling_symlink_is_refused_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "gone.md").symlink_to(tmp_path / "never-there.md")
    listing = list_store(tmp_path)
    assert listing.files == {}
    assert "does not exist" in (listing.refused["gone.md"].error or "")
    # Stamped with the link itself, so it is remembered until the link changes.
    link = os.lstat(tmp_path / "gone.md")
    assert listing.refused["gone.md"].stamp == FileStamp(link.st_size, link.st_mtime_ns)


def test_entries_that_are_not_regular_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "folder.md").mkdir()  # a folder named like an article: walked, empty
    write(tmp_path, "real/a.md", article_text("a"))
    (tmp_path / "linked-folder.md").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "pipe.md")  # opening it would block the scan forever
    listing = list_store(tmp_path)
    assert list(listing.files) == ["real/a.md"]
    assert listing.refused == {}


def test_names_that_are_not_utf8_are_refused_under_a_printable_name(
    tmp_path: Path,
) -> None:
    write(tmp_path, "good.md", article_text("good"))
    raw = os.fsencode(tmp_path)
    with open(raw + b"/caf\xe9.md", "w", encoding="utf-8") as handle:
        handle.write(article_text("latin-1 name"))
    os.mkdir(raw + b"/d\xff")
    with open(raw + b"/d\xff/a.md", "w", encoding="utf-8") as handle:
        handle.write(article_text("in a latin-1 folder"))
    listing = list_store(tmp_path)
    assert list(listing.files) == ["good.md"]
    assert sorted(listing.refused) == ["caf\\xe9.md", "d\\xff"]
    for refusal in listing.refused.values():
        refusal.path.encode("utf-8")  # storable and printable as it is
        assert refusal.error is not None and "not valid UTF-8" in refusal.error


def test_missing_root(tmp_path: Path) -> None:
    listing = list_store(tmp_path / "unmounted")
    assert not listing.root_exists
    assert listing.files == {} and listing.refused == {}


def test_root_that_is_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.md", article_text("a"))
    assert not list_store(path).root_exists


def test_root_through_a_symlink(tmp_path: Path) -> None:
    write(tmp_path, "real-store/a.md", article_text("a"))
    (tmp_path / "store").symlink_to(tmp_path / "real-store")
    listing = list_store(tmp_path / "store")
    assert listing.root_exists and list(listing.files) == ["a.md"]


# --- diff -----------------------------------------------------------------------------------------


def test_diff_new_changed_unchanged_removed() -> None:
    previous = {"same.md": FileStamp(10, 1), "grown.md": FileStamp(10, 1),
                "touched.md": FileStamp(10, 1), "gone.md": FileStamp(5, 1)}  # fmt: skip
    current = {"same.md": FileStamp(10, 1), "grown.md": FileStamp(11, 1),
               "touched.md": FileStamp(10, 2), "new.md": FileStamp(3, 3)}  # fmt: skip
    changes = diff(previous, current)
    assert changes.changed == ["grown.md", "new.md", "touched.md"]
    assert changes.removed == ["gone.md"]


def test_diff_of_an_unchanged_store_is_empty(tmp_path: Path, real_articles_dir: Path) -> None:
    listing = list_store(real_articles_dir)
    changes = diff(listing.files, list_store(real_articles_dir).files)
    assert changes.changed == [] and changes.removed == []
    assert diff({}, listing.files).changed == sorted(listing.files)


# --- read_file ------------------------------------------------------------------------------------


def test_reads_a_good_file(tmp_path: Path, clock: FakeClock) -> None:
    path = write(tmp_path, "sub/a.md", article_text("a", quality=77), age_s=60, clock=clock)
    result = read_file(tmp_path, "sub/a.md", MAX, clock.time())
    assert isinstance(result, FileOutcome)
    assert result.error is None and result.article is not None
    assert result.article.title == "Story a" and result.article.quality == 77
    assert result.path == "sub/a.md"
    assert result.stamp == FileStamp(path.stat().st_size, path.stat().st_mtime_ns)


def test_a_good_file_is_taken_even_if_just_written(tmp_path: Path, clock: FakeClock) -> None:
    write(tmp_path, "a.md", article_text("a"), age_s=0, clock=clock)
    result = read_file(tmp_path, "a.md", MAX, clock.time())
    assert isinstance(result, FileOutcome) and result.article is not None


def test_half_written_file_is_unsettled_while_recent(tmp_path: Path, clock: FakeClock) -> None:
    full = article_text("a", extra="topics:\n  - AI\n")
    half = full[: full.index("topics:")]  # the closing '---' not written yet
    path = write(tmp_path, "a.md", half, age_s=SETTLE_S / 4, clock=clock)
    assert read_file(tmp_path, "a.md", MAX, clock.time()) == Unsettled("a.md")
    clock.advance(SETTLE_S / 2)
    assert read_file(tmp_path, "a.md", MAX, clock.time()) == Unsettled("a.md")
    # Left as it is for longer than SETTLE_S: it is not being written, it is bad.
    set_age(path, SETTLE_S + 5, clock)
    result = read_file(tmp_path, "a.md", MAX, clock.time())
    assert isinstance(result, FileOutcome) and result.article is None
    assert result.error is not None and "not closed" in result.error
    assert result.stamp.mtime_ns == path.stat().st_mtime_ns


def test_bad_file_with_a_future_mtime_is_reported(tmp_path: Path, clock: FakeClock) -> None:
    # A skewed clock or an importer keeping bogus times must not hide a bad file forever.
    write(tmp_path, "a.md", "---\ntitle: x\n", age_s=-86400, clock=clock)
    result = read_file(tmp_path, "a.md", MAX, clock.time())
    assert isinstance(result, FileOutcome) and result.error is not None
    assert "not closed" in result.error
    write(tmp_path, "b.md", "---\ntitle: x\n", age_s=-0.5, clock=clock)  # just ahead: recent
    assert read_file(tmp_path, "b.md", MAX, clock.time()) == Unsettled("b.md")


def test_half_written_file_finished_later_is_read_whole(tmp_path: Path, clock: FakeClock) -> None:
    full = article_text("a", extra="topics:\n  - AI\n")
    write(tmp_path, "a.md", full[:20], age_s=0.1, clock=clock)
    assert isinstance(read_file(tmp_path, "a.md", MAX, clock.time()), Unsettled)
    write(tmp_path, "a.md", full, age_s=0.1, clock=clock)
    result = read_file(tmp_path, "a.md", MAX, clock.time())
    assert isinstance(result, FileOutcome) and result.article is not None
    assert result.article.topics == ("AI",)


def test_file_changed_while_being_read_is_unsettled(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "a.md", article_text("a"), age_s=60, clock=clock)
    real_open = builtins.open

    def open_then_append(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        with real_open(path, "a", encoding="utf-8") as writer:  # the writer goes on
            writer.write("more: text\n")
        return handle

    monkeypatch.setattr(bot.store, "open", open_then_append, raising=False)
    assert read_file(tmp_path, "a.md", MAX, clock.time()) == Unsettled("a.md")


def test_file_over_the_cap_is_refused_without_reading_it(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.md"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB, sparse: costs no disk
    set_age(path, 60, clock)
    opened: list[str] = []
    monkeypatch.setattr(bot.store, "open", lambda f, *a, **k: opened.append(f), raising=False)
    result = read_file(tmp_path, "huge.md", MAX, clock.time())
    assert opened == []
    assert isinstance(result, FileOutcome) and result.article is None
    assert result.error is not None
    assert "52,428,800 bytes" in result.error and "1,048,576-byte limit" in result.error
    assert result.stamp.size == 50 * 1024 * 1024


def test_vanished_file_is_unsettled(tmp_path: Path, clock: FakeClock) -> None:
    assert read_file(tmp_path, "gone.md", MAX, clock.time()) == Unsettled("gone.md")


def test_unreadable_file_keeps_its_stamp(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "locked.md", article_text("a"), age_s=60, clock=clock)

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bot.store, "open", refuse, raising=False)
    result = read_file(tmp_path, "locked.md", MAX, clock.time())
    assert isinstance(result, FileOutcome)
    assert result.error == "cannot read: Permission denied"
    # The real stamp, so the index sees it unchanged next time and it is not re-reported.
    assert result.stamp == FileStamp(path.stat().st_size, path.stat().st_mtime_ns)


def test_unexpected_parser_failure_costs_one_file(tmp_path: Path, clock: FakeClock) -> None:
    for name in ("a.md", "boom.md", "c.md"):
        write(tmp_path, name, article_text(name[0]), age_s=60, clock=clock)
    def parse(data: bytes, path: str, max_bytes: int) -> Any:
        if path == "boom.md":
            raise RecursionError("maximum recursion depth exceeded")
        return parse_article(data, path, max_bytes)

    rels = ["a.md", "boom.md", "c.md"]
    results = flatten(parse_files(tmp_path, rels, MAX, clock.time(), 1000, parse=parse))
    assert [r.path for r in results] == ["a.md", "boom.md", "c.md"]
    assert results[0].article is not None and results[2].article is not None
    assert results[1].article is None and "RecursionError" in results[1].error


# --- read_file opens what the listing saw, never what a swapped link points at -----------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """An article file outside the store, which must never be ingested."""
    return write(tmp_path, "outside/secret.md", article_text("secret"))


def assert_not_ingested(result: object) -> None:
    assert isinstance(result, FileOutcome | Unsettled), result
    if isinstance(result, FileOutcome):
        assert result.article is None or result.article.title != "Story secret", result


def test_a_link_swapped_out_of_the_store_after_the_listing_is_not_followed(
    tmp_path: Path, secret: Path, clock: FakeClock
) -> None:
    store = tmp_path / "store"
    write(store, "archive/real.md", article_text("real"))
    (store / "link.md").symlink_to("archive/real.md")
    assert "link.md" in list_store(store).files  # checked: it points inside
    swap = store / ".swap"
    swap.symlink_to(secret)
    os.replace(swap, store / "link.md")  # ...then used: it points outside
    result = read_file(store, "link.md", MAX, clock.time())
    assert_not_ingested(result)
    assert isinstance(result, FileOutcome) and result.error is not None
    assert "outside the store" in result.error and str(secret) in result.error


def test_a_file_replaced_by_a_link_after_the_listing_is_not_followed(
    tmp_path: Path, secret: Path, clock: FakeClock
) -> None:
    store = tmp_path / "store"
    write(store, "a.md", article_text("a"))
    assert "a.md" in list_store(store).files
    swap = store / ".swap"
    swap.symlink_to(secret)
    os.replace(swap, store / "a.md")
    assert_not_ingested(read_file(store, "a.md", MAX, clock.time()))


def test_a_folder_replaced_by_a_link_after_the_listing_is_not_followed(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = tmp_path / "store"
    write(store, "sub/secret.md", article_text("a"))
    assert "sub/secret.md" in list_store(store).files
    write(tmp_path, "outside/secret.md", article_text("secret"))
    os.rename(store / "sub", tmp_path / "moved-away")
    (store / "sub").symlink_to(tmp_path / "outside")
    assert_not_ingested(read_file(store, "sub/secret.md", MAX, clock.time()))


def test_a_link_inside_the_store_is_still_read(tmp_path: Path, clock: FakeClock) -> None:
    store = tmp_path / "store"
    target = write(store, "archive/real.md", article_text("real"), age_s=60, clock=clock)
    (store / "linked.md").symlink_to(target)  # absolute
    write(store, "sub/keep.md", article_text("keep"), age_s=60, clock=clock)
    (store / "sub" / "relative.md").symlink_to("../archive/real.md")
    for rel in ("linked.md", "sub/relative.md"):
        result = read_file(store, rel, MAX, clock.time())
        assert isinstance(result, FileOutcome) and result.article is not None, result
        assert result.article.title == "Story real"
        assert result.stamp == FileStamp(target.stat().st_size, target.stat().st_mtime_ns)


def test_a_fifo_swapped_in_after_the_listing_does_not_block(
    tmp_path: Path, clock: FakeClock
) -> None:
    write(tmp_path, "a.md", article_text("a"))
    assert "a.md" in list_store(tmp_path).files
    os.remove(tmp_path / "a.md")
    os.mkfifo(tmp_path / "a.md")  # opening it for reading without O_NONBLOCK would hang
    result = read_file(tmp_path, "a.md", MAX, clock.time())
    assert isinstance(result, FileOutcome) and result.error == "not a regular file"


# --- parse_files ----------------------------------------------------------------------------------


def real_store(tmp_path: Path, articles: Path, copies: int, clock: FakeClock) -> Path:
    """Real articles `copies` times over, plus a few bad files, all settled."""
    store = tmp_path / "store"
    for copy in range(copies):
        shutil.copytree(articles, store / f"copy-{copy}")
    write(store, "bad/no-front-matter.md", "title: x\n")
    write(store, "bad/utf8.md", b"---\ntitle: \xff\n---\n")
    write(store, "bad/half.md", "---\ntitle: x\n")
    for path in store.rglob("*"):
        if path.is_file():
            set_age(path, 3600, clock)
    return store


def test_pool_and_in_process_give_the_same_results(
    tmp_path: Path, real_articles_dir: Path, clock: FakeClock
) -> None:
    per_copy = len(list(real_articles_dir.iterdir()))
    copies = -(-300 // per_copy)  # more than one batch (200 files), to cross the pool
    store = real_store(tmp_path, real_articles_dir, copies, clock)
    rels = sorted(list_store(store).files)
    assert len(rels) == copies * per_copy + 3
    serial_batches = list(parse_files(store, rels, MAX, clock.time(), parallel_threshold=10**9))
    pooled_batches = list(
        parse_files(store, rels, MAX, clock.time(), parallel_threshold=1, workers=2)
    )
    assert len(serial_batches) >= 2  # more than one batch crossed the pool
    serial = [r for batch in serial_batches for r in batch]
    pooled = [r for batch in pooled_batches for r in batch]
    assert [r.path for r in serial] == rels  # in the order asked
    assert pooled == serial
    assert sum(r.article is not None for r in serial) == copies * per_copy
    assert sorted(r.path for r in serial if r.error) == [
        "bad/half.md", "bad/no-front-matter.md", "bad/utf8.md",
    ]  # fmt: skip


def test_one_worker_stays_in_process(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.md", article_text("a"), age_s=60, clock=clock)

    def no_pool(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("no process pool for one worker")

    monkeypatch.setattr(bot.store, "ProcessPoolExecutor", no_pool)
    results = flatten(parse_files(tmp_path, ["a.md"], MAX, clock.time(), 1, workers=1))
    assert results[0].article is not None


# --- scan_store: the report behind `newsbot scan` -------------------------------------------------


def test_scan_report_counts_topics_quality_duplicates_and_bad_files(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = tmp_path / "store"
    write(store, "a.md", article_text("a", 10, "topics:\n  - AI\n  - Robotics\n"))
    write(store, "b.md", article_text("b", 45, "topics:\n  - ai\n"))
    write(store, "2021/c.yml", article_text("c", 170, "topics:\n  - Computer Vision\n"))
    write(store, "d.md", "---\ntitle: Unscored\nwebUrl: https://example.com/d\ntopics: [AI]\n---\n")
    # The same story (same URL once normalized) in a second file.
    write(store, "dup.md", "---\ntitle: Again\nwebUrl: HTTPS://Example.com/b#x\nquality: 45\n---\n")
    write(store, "bad/title.md", "---\ntitle: [x]\nwebUrl: https://e.com/\n---\n")
    write(store, "bad/bomb.md", "---\ntitle: t\nwebUrl: https://e.com/\n"
          + "a: &a [x]\n" + "".join(f"b{i}: [*a, *a]\n" for i in range(20)) + "---\n")  # fmt: skip
    (store / "escape.md").symlink_to(write(tmp_path, "outside.md", article_text("o")))
    for path in store.rglob("*"):
        if path.is_file() and not path.is_symlink():
            set_age(path, 600, clock)

    report = scan_store(store, MAX, parallel_threshold=1000, now_s=clock.time())
    assert report.root_exists
    assert report.files == 8  # each an article or a bad file (the symlink out is one)
    assert report.articles == 5  # every file that parsed
    assert report.stories == 4 and report.duplicates == 1
    assert report.unscored == 1
    assert dict(report.topics) == {"AI": 3, "Robotics": 1, "Computer Vision": 1}
    assert report.quality["0-19"] == 1
    assert report.quality["40-59"] == 2  # b and its duplicate
    assert report.quality["150+"] == 1
    assert report.quality["unscored"] == 1
    bad = dict(report.bad)
    assert sorted(bad) == ["bad/bomb.md", "bad/title.md", "escape.md"]
    assert "`title` must be a string" in bad["bad/title.md"]
    assert "alias" in bad["bad/bomb.md"]
    assert "outside the store" in bad["escape.md"] and "outside.md" in bad["escape.md"]
    assert report.unsettled == []

    as_json = report.to_json()
    assert as_json["articles"] == 5 and as_json["stories"] == 4
    assert as_json["topics"] == {"AI": 3, "Robotics": 1, "Computer Vision": 1}
    assert as_json["bad"] == [{"path": p, "reason": r} for p, r in sorted(bad.items())]
    assert sum(as_json["quality"].values()) == 5

    text = format_report(report)
    assert "8 article files: 5 articles" in text
    for path in bad:
        assert f"  {path}: " in text
    assert "include_unscored = true" in text


def test_scan_reports_a_just_written_bad_file_as_bad(tmp_path: Path, clock: FakeClock) -> None:
    # A one-shot report must not hide a bad file because it was written a moment ago.
    write(tmp_path, "new-bad.md", "---\ntitle: x\n", age_s=0.5, clock=clock)
    write(tmp_path, "old-bad.md", "---\ntitle: x\n", age_s=600, clock=clock)
    report = scan_store(tmp_path, MAX, parallel_threshold=1000, now_s=clock.time())
    bad = dict(report.bad)
    assert sorted(bad) == ["new-bad.md", "old-bad.md"]
    assert "not closed" in bad["new-bad.md"] and "scan again in a moment" in bad["new-bad.md"]
    assert "scan again" not in bad["old-bad.md"]
    assert report.unsettled == []


def test_scan_rereads_a_file_that_changed_while_read(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "a.md", article_text("a"), age_s=60, clock=clock)
    real_open = builtins.open
    opens: list[str] = []

    def open_once_changing(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        opens.append(str(file))
        if len(opens) == 1:
            with real_open(path, "a", encoding="utf-8") as writer:
                writer.write("more: text\n")
        return handle

    monkeypatch.setattr(bot.store, "open", open_once_changing, raising=False)
    report = scan_store(tmp_path, MAX, parallel_threshold=1000, now_s=clock.time())
    assert len(opens) == 2
    assert report.articles == 1 and report.unsettled == [] and report.bad == []


def test_scan_of_a_file_that_never_stops_changing(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "a.md", article_text("a"), age_s=60, clock=clock)
    real_open = builtins.open

    def open_always_changing(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        with real_open(path, "a", encoding="utf-8") as writer:
            writer.write("x: y\n")
        return handle

    monkeypatch.setattr(bot.store, "open", open_always_changing, raising=False)
    report = scan_store(tmp_path, MAX, parallel_threshold=1000, now_s=clock.time())
    assert report.unsettled == ["a.md"] and report.articles == 0 and report.bad == []
    assert "still being written" in format_report(report)


def test_scan_forgets_a_file_deleted_while_it_ran(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.md", article_text("a"), age_s=60, clock=clock)
    path = write(tmp_path, "gone.md", article_text("g"), age_s=60, clock=clock)
    real_parse_files = bot.scan_report.parse_files

    def parse_files_then_delete(*args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        path.unlink()  # after the listing, before the read
        yield from real_parse_files(*args, **kwargs)

    monkeypatch.setattr(bot.scan_report, "parse_files", parse_files_then_delete)
    report = scan_store(tmp_path, MAX, parallel_threshold=1000, now_s=clock.time())
    assert report.files == 1 and report.articles == 1
    assert report.unsettled == [] and report.bad == []


def test_scan_of_the_corpus_in_process_and_pooled(corpus_dir: Path, clock: FakeClock) -> None:
    serial = scan_store(corpus_dir, MAX, parallel_threshold=10**9, now_s=clock.time())
    pooled = scan_store(corpus_dir, MAX, parallel_threshold=1, now_s=clock.time())
    assert serial.to_json() == pooled.to_json()
    assert serial.articles == 196 and serial.stories == 195 and serial.duplicates == 1
    assert serial.bad == [] and serial.unsettled == []
    assert serial.topics["AI"] == 196
    assert sum(serial.quality.values()) == 196


def test_scan_counts_add_up_and_say_what_they_count(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    for rel, text in {
        "a.md": article_text("a"),
        "b.md": article_text("b"),
        "dup.md": article_text("b"),  # b's story again
        "bad/one.md": "no front matter\n",
        "bad/two.md": "---\ntitle: [x]\nwebUrl: https://e.com/\n---\n",
        "changing.md": article_text("c"),
    }.items():
        write(store, rel, text, age_s=60, clock=clock)
    (store / "out.md").symlink_to(write(tmp_path, "outside.md", article_text("o")))
    (store / "gone.md").symlink_to(store / "missing.md")
    real_open = builtins.open

    def changing_whenever_read(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if os.path.samestat(os.fstat(handle.fileno()), os.stat(store / "changing.md")):
            with real_open(store / "changing.md", "a", encoding="utf-8") as writer:
                writer.write("x: y\n")
        return handle

    monkeypatch.setattr(bot.store, "open", changing_whenever_read, raising=False)
    report = scan_store(store, MAX, parallel_threshold=1000, now_s=clock.time())
    assert (report.articles, len(report.bad), len(report.unsettled)) == (3, 4, 1)
    assert report.files == 8 == report.articles + len(report.bad) + len(report.unsettled)
    assert report.to_json()["files"] == 8
    assert format_report(report).splitlines()[0] == (
        f"{store}: 8 article files: 3 articles (2 distinct stories; 1 file repeats a story), "
        "4 bad, 1 still being written"
    )


def test_scan_of_a_missing_store(tmp_path: Path, clock: FakeClock) -> None:
    report = scan_store(tmp_path / "nope", MAX, 1000, clock.time())
    assert not report.root_exists and report.files == 0
    assert "no such folder" in format_report(report)


@pytest.mark.parametrize(
    ("quality", "band"),
    [(None, "unscored"), (0, "0-19"), (19.9, "0-19"), (20, "20-39"), (40, "40-59"),
     (99, "80-99"), (100, "100-149"), (149.5, "100-149"), (150, "150+"), (170, "150+")],
)  # fmt: skip
def test_quality_bands(quality: float | None, band: str) -> None:
    assert quality_band(quality) == band


def test_article_error_is_not_leaked_by_read_file(tmp_path: Path, clock: FakeClock) -> None:
    write(tmp_path, "a.md", b"\xff\xfe", age_s=60, clock=clock)
    result = read_file(tmp_path, "a.md", MAX, clock.time())  # an outcome, never a raise
    assert isinstance(result, FileOutcome) and result.error is not None
    assert "UTF-8" in result.error
