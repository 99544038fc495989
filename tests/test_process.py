"""The `newsbot` command as real processes: `python -m bot ...` with a temporary config, store
and database. Waiting is done by reading the process's output lines with timeouts."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

RULE = "─" * 72
SEED_TITLE = "Meet the new face-detection algorithm that will change image search"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class Bot:
    """A running `python -m bot` whose stdout and stderr lines are read as they come."""

    def __init__(self, args: Sequence[str], cwd: Path, **popen: object) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            **popen,  # type: ignore[call-overload]
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._lines.put((name, line.rstrip("\n")))
        self._lines.put((name, None))

    def _take(self, timeout: float) -> tuple[str, str | None]:
        name, line = self._lines.get(timeout=timeout)
        if line is not None:
            (self.stdout if name == "stdout" else self.stderr).append(line)
        return name, line

    def wait_for(self, stream: str, pattern: str, timeout: float) -> str:
        """The first line of `stream` (read from now on, or already read) matching `pattern`."""
        seen = self.stdout if stream == "stdout" else self.stderr
        for line in seen:
            if re.search(pattern, line):
                return line
        deadline = time.monotonic() + timeout
        ended: set[str] = set()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(ended) == 2:
                break
            try:
                name, line = self._take(remaining)
            except queue.Empty:
                break
            if line is None:
                ended.add(name)
            elif name == stream and re.search(pattern, line):
                return line
        raise AssertionError(
            f"no {stream} line matching {pattern!r} within {timeout}s; "
            f"stdout: {self.stdout[-20:]}, stderr: {self.stderr[-20:]}"
        )

    def finish(self, timeout: float) -> int:
        """Wait for exit and for both streams to be read to their end."""
        code = self.proc.wait(timeout=timeout)
        ended = 0
        while ended < 2:
            _, line = self._take(timeout)
            ended += line is None
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def start_bot() -> Iterator[Callable[..., Bot]]:
    started: list[Bot] = []

    def start(args: Sequence[str], cwd: Path, **popen: object) -> Bot:
        bot = Bot(args, cwd, **popen)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()


def newsbot(
    args: Sequence[str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def article_text(title: str, url: str, published: str, quality: float = 80) -> str:
    return (
        f'---\ntitle: "{title}"\nwebUrl: {url}\npublishedDateTime: {published}\n'
        f"quality: {quality}\nprovider:\n  name: Example News\n  domain: example.com\n"
        f'topics:\n  - AI\nexcerpt: "An excerpt for {title}."\n---\n'
    )


def write_atomically(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.partial"
    tmp.write_text(text, encoding="utf-8")
    os.rename(tmp, path)


def write_config(folder: Path, body: str = "", subscription: str = "") -> Path:
    """A config with a relative store and database (resolved against the config's folder)."""
    config = folder / "newsbot.toml"
    config.write_text(
        "min_quality = 40\n"
        f"{body}\n"
        '[store]\npath = "store"\nrescan_interval_s = 600\n'
        '[database]\npath = "data/state.db"\n'
        "[logging]\nlevel = \"INFO\"\n"
        '[[subscriptions]]\nplatform = "console"\nchannel = "terminal"\n'
        f"{subscription}\n",
        encoding="utf-8",
    )
    (folder / "store").mkdir(exist_ok=True)
    return config


def sql(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(query).fetchall())


# --- (a) run --once ------------------------------------------------------------------------------


def test_run_once_backfills_then_posts_only_what_is_new(tmp_path: Path) -> None:
    config = write_config(tmp_path, subscription="backfill = 3")
    store = tmp_path / "store"
    titles = [f"Story number {i}" for i in range(5)]  # 4 is the newest
    for i, title in enumerate(titles):
        write_atomically(
            store / f"story-{i}.md",
            article_text(title, f"https://example.com/s/{i}", f"2026-11-0{i + 1}T08:00:00Z"),
        )

    first = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert first.returncode == 0, first.stderr
    assert [t for t in titles if t in first.stdout] == titles[2:]
    assert first.stdout.count(RULE) == 3
    assert (tmp_path / "data" / "state.db").is_file()

    second = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert second.returncode == 0, second.stderr
    assert RULE not in second.stdout
    assert not any(t in second.stdout for t in titles)

    write_atomically(
        store / "later.md",
        article_text("Arrived between runs", "https://example.com/later", "2026-01-01T00:00:00Z"),
    )
    third = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert third.returncode == 0, third.stderr
    assert "Arrived between runs" in third.stdout
    assert third.stdout.count(RULE) == 1
    assert "1 new articles" in third.stderr


# --- (b) the long-running watcher ----------------------------------------------------------------


def test_run_once_reports_a_bad_file_written_just_before(tmp_path: Path) -> None:
    """`--once` has no later rescan: a file that fails while it may still be being written is
    looked at again after the settle window, then reported, in the same run."""
    config = write_config(tmp_path)
    store = tmp_path / "store"
    good = article_text("Fine story", "https://example.com/ok", "2026-11-01T08:00:00Z")
    write_atomically(store / "good.md", good)
    (store / "broken.md").write_text("---\ntitle: [unclosed\n", encoding="utf-8")

    run = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "broken.md" in run.stderr
    assert "1 bad files" in run.stderr
    rows = sql(tmp_path / "data" / "state.db", "SELECT path, error FROM files ORDER BY path")
    assert [r[0] for r in rows] == ["broken.md", "good.md"]
    assert rows[0][1] and rows[1][1] is None


def test_run_watches_the_store_and_stops_on_sigterm(
    tmp_path: Path, start_bot: Callable[..., Bot]
) -> None:
    # Rescans are 10 minutes apart: a file shows up within seconds only through file-system
    # events (watchfiles). The start-up rescans can carry at most the first files; each file
    # here is written only after the previous one was posted, so the later ones need events.
    config = write_config(tmp_path)
    bot = start_bot(["run", "--config", str(config)], tmp_path)
    bot.wait_for("stderr", r"watching .*store", timeout=20)
    for i in range(3):
        title = f"Watched story {i}"
        write_atomically(
            tmp_path / "store" / f"watched-{i}.md",
            article_text(title, f"https://example.com/w/{i}", "2026-11-29T12:00:00Z"),
        )
        bot.wait_for("stdout", re.escape(title), timeout=5)
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.finish(timeout=10) == 0
    assert any("stopped cleanly" in line for line in bot.stderr)
    assert sum(1 for line in bot.stdout if line == RULE) == 3


# --- (c) kill -9 during a large scan ----------------------------------------------------------


def make_large_store(articles: Path, store: Path, at_least: int) -> int:
    """Copies of real articles, each copy a story of its own, until there are `at_least`."""
    store.mkdir(parents=True, exist_ok=True)
    url_line = re.compile(r'^(webUrl|originalUrl):\s*("?)(https?://[^/\s"]+)', re.MULTILINE)
    sources = sorted(articles.iterdir())
    copies = -(-at_least // len(sources))
    count = 0
    for source in sources:
        text = source.read_text(encoding="utf-8")
        for copy in range(copies):
            varied = url_line.sub(rf"\1: \2\3/copy-{copy}", text)
            (store / f"c{copy}-{source.name}").write_text(varied, encoding="utf-8")
            count += 1
    return count


def indexed_files(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])
        except sqlite3.OperationalError:  # no tables yet
            return 0


def wait_for_first_commit(db: Path, timeout: float = 20) -> None:
    """Block until the scan's first batch is committed, woken by writes to the database files."""
    import watchfiles

    if indexed_files(db):
        return
    deadline = time.monotonic() + timeout
    for _changes in watchfiles.watch(
        db.parent, debounce=20, step=5, rust_timeout=500, yield_on_timeout=True
    ):
        if indexed_files(db):
            return
        if time.monotonic() > deadline:
            raise AssertionError("the scan committed nothing")


def test_kill_9_during_a_large_scan_leaves_a_sound_database(
    tmp_path: Path, real_articles_dir: Path, start_bot: Callable[..., Bot]
) -> None:
    config = write_config(tmp_path)
    files = make_large_store(real_articles_dir, tmp_path / "store", at_least=2100)
    assert files > 2000
    db = tmp_path / "data" / "state.db"

    # Its own session: pool workers it may have started are found and cleaned up after.
    bot = start_bot(["run", "--config", str(config)], tmp_path, start_new_session=True)
    bot.wait_for("stderr", r"migrating the database to schema version 2", timeout=20)
    wait_for_first_commit(db)
    bot.proc.send_signal(signal.SIGKILL)
    assert bot.proc.wait(timeout=10) == -signal.SIGKILL
    try:
        os.killpg(bot.proc.pid, 0)
        leftovers = True
        os.killpg(bot.proc.pid, signal.SIGKILL)  # orphaned parse workers
    except ProcessLookupError:
        leftovers = False
    print(f"processes left behind by the killed bot: {leftovers}")

    assert sql(db, "PRAGMA integrity_check") == [("ok",)]
    recorded_before = sql(db, "SELECT COUNT(*) FROM files")[0][0]
    # Nothing half-recorded: every indexed file's story is there.
    orphan_query = (
        "SELECT COUNT(*) FROM files WHERE article_key IS NOT NULL "
        "AND article_key NOT IN (SELECT key FROM articles)"
    )
    assert sql(db, orphan_query) == [(0,)]

    scan = newsbot(["scan", "--json", str(tmp_path / "store")], tmp_path)
    assert scan.returncode == 0, scan.stderr
    expected = json.loads(scan.stdout)

    again = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert RULE not in again.stdout  # still the first scan of this store: nothing old posted
    assert sql(db, "PRAGMA integrity_check") == [("ok",)]
    assert sql(db, "SELECT COUNT(*) FROM files") == [(files,)]
    assert sql(db, "SELECT COUNT(*) FROM articles") == [(expected["stories"],)]
    assert sql(db, orphan_query) == [(0,)]
    assert sql(db, "SELECT COUNT(*) FROM deliveries") == [(0,)]
    assert recorded_before < files  # the kill did land before the scan was done


def test_sigterm_during_a_long_first_scan_stops_cleanly_and_the_restart_completes_it(
    tmp_path: Path, real_articles_dir: Path, start_bot: Callable[..., Bot]
) -> None:
    config = write_config(tmp_path)
    files = make_large_store(real_articles_dir, tmp_path / "store", at_least=2100)
    db = tmp_path / "data" / "state.db"
    bot = start_bot(["run", "--config", str(config)], tmp_path, start_new_session=True)
    # Signals are handled from the start; this line comes before the scan begins.
    bot.wait_for("stderr", r"migrating the database to schema version 1", timeout=20)
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.finish(timeout=10) == 0
    assert RULE not in "\n".join(bot.stdout)
    recorded = sql(db, "SELECT COUNT(*) FROM files")[0][0]
    assert recorded < files  # the stop cut the scan short
    assert sql(db, "SELECT value FROM meta WHERE key = 'store_baseline_done'") == []

    again = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert RULE not in again.stdout  # the first scan, completed: nothing old is posted
    assert sql(db, "SELECT COUNT(*) FROM files") == [(files,)]
    assert sql(db, "SELECT COUNT(*) FROM deliveries") == [(0,)]


# --- (d) no config at all ------------------------------------------------------------------------


def test_no_config_uses_seeds_in_the_current_folder(tmp_path: Path, seeds_dir: Path) -> None:
    shutil.copytree(seeds_dir, tmp_path / "seeds")
    result = newsbot(["run", "--once"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "newsbot.db").is_file()
    assert SEED_TITLE in result.stdout
    assert result.stdout.count(RULE) >= 3
    # And a second run does not post them again.
    again = newsbot(["run", "--once"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert RULE not in again.stdout


def test_no_config_and_no_seeds_says_what_to_do(tmp_path: Path) -> None:
    result = newsbot(["run", "--once"], tmp_path)
    assert result.returncode == 2
    assert "seeds" in result.stderr and "store.path" in result.stderr
    assert "Traceback" not in result.stderr


# --- (e) check-config -------------------------------------------------------------------------


def test_check_config_reports_unknown_keys_and_wrong_types(tmp_path: Path) -> None:
    good = write_config(tmp_path)
    ok = newsbot(["check-config", "--config", str(good)], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout and str(tmp_path / "store") in ok.stdout

    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[store]\npath = "store"\nrescan_intervall_s = 5\n', encoding="utf-8")
    result = newsbot(["check-config", "--config", str(unknown)], tmp_path)
    assert result.returncode == 1  # problems found (2 is for a file that cannot be read)
    assert "store.rescan_intervall_s" in result.stdout
    assert "did you mean `store.rescan_interval_s`" in result.stdout
    assert "Traceback" not in result.stderr

    wrong = tmp_path / "wrong.toml"
    wrong.write_text('min_quality = "high"\n', encoding="utf-8")
    result = newsbot(["check-config", "--config", str(wrong)], tmp_path)
    assert result.returncode == 1
    assert "`min_quality`" in result.stdout and "'high'" in result.stdout

    missing = newsbot(["check-config", "--config", str(tmp_path / "nope.toml")], tmp_path)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_a_database_from_a_newer_version_is_refused_cleanly(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "state.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    result = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert result.returncode == 2
    assert "version 999" in result.stderr and "upgrade newsbot" in result.stderr
    assert "Traceback" not in result.stderr


# --- (f) subscriptions from the command line ----------------------------------------------------


def test_subscriptions_add_list_remove_round_trip(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))

    def subs(*args: str) -> subprocess.CompletedProcess[str]:
        return newsbot(["subscriptions", *args, "--config", config], tmp_path)

    empty = subs("list")
    assert empty.returncode == 0 and "no subscriptions" in empty.stdout

    added = subs("add", "--platform", "slack", "--channel", "C1", "--topic", "AI",
                 "--topic", "Robotics", "--min-quality", "60")
    assert added.returncode == 0, added.stderr
    match = re.search(r"added subscription (\d+)", added.stdout)
    assert match, added.stdout
    sub_id = match.group(1)

    updated = subs("add", "--platform", "slack", "--channel", "C1", "--topic", "robotics",
                   "--topic", "ai", "--min-quality", "70")
    assert f"updated subscription {sub_id}" in updated.stdout

    listed = subs("list")
    assert listed.returncode == 0
    lines = [line for line in listed.stdout.splitlines() if "slack:C1" in line]
    assert len(lines) == 1
    assert "ai" in lines[0].casefold() and "robotics" in lines[0].casefold()
    assert "quality ≥ 70" in lines[0] and "made with the CLI" in lines[0]

    removed_topic = subs("remove", "--platform", "slack", "--channel", "C1", "--topic", "ai")
    assert removed_topic.returncode == 0 and "changed 1" in removed_topic.stdout
    lines = [line for line in subs("list").stdout.splitlines() if "slack:C1" in line]
    assert len(lines) == 1 and "robotics" in lines[0] and " ai" not in lines[0].casefold()

    gone = subs("remove", "--id", sub_id)
    assert gone.returncode == 0 and f"removed subscription {sub_id}" in gone.stdout
    assert "no subscriptions" in subs("list").stdout
    again = subs("remove", "--id", sub_id)
    assert again.returncode == 1 and "no such id" in again.stdout
    incomplete = subs("remove", "--platform", "slack")
    assert incomplete.returncode == 2


def test_json_logs_carry_one_structured_line_per_delivery(tmp_path: Path) -> None:
    config = write_config(tmp_path, subscription="backfill = 2")
    for i in range(2):
        write_atomically(
            tmp_path / "store" / f"s{i}.md",
            article_text(f"Story {i}", f"https://example.com/j/{i}", f"2026-11-0{i + 1}T08:00:00Z"),
        )
    run = newsbot(["run", "--once", "--log-format", "json", "--config", str(config)], tmp_path)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines()]  # every line is JSON
    sent = [e for e in lines if e.get("outcome") == "sent"]
    assert len(sent) == 2
    for entry in sent:
        assert entry["platform"] == "console" and entry["channel"] == "terminal"
        assert entry["article"].startswith("https://example.com/j/")
        assert entry["attempt"] == 1 and isinstance(entry["latency_ms"], int)
        assert entry["level"] == "INFO" and entry["logger"] == "bot.delivery"
    assert any("deliveries queued" in e["message"] for e in lines)  # the run's summary
