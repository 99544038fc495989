"""Untrusted text (file names, titles, channel names) in logs and terminal output: a hostile
name must not forge a log line, move the cursor or recolour the terminal. Real files, the real
command."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.printable import json_text, printable
from tests.test_process import article_text, write_atomically, write_config

# A file name that tries everything: a newline and a fake log line, a colour escape, an 8-bit
# CSI, DEL, a Unicode line separator and a right-to-left override.
EVIL_NAME = (
    "evil\n12:00:00 ERROR   bot.worker: FORGED \x1b[31mred\x1b[0m \x9b2J\x7f"
    "\u2028second line \u202etxt.exe.md"
)
# Characters no printed line may carry raw (a newline only between lines).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
TEXT_LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+: ")


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def assert_clean_lines(text: str) -> None:
    assert not RAW_CONTROL.search(text), repr(RAW_CONTROL.search(text))


@pytest.fixture
def evil_store(tmp_path: Path) -> Path:
    """A config whose store holds one good article and one bad file with the hostile name."""
    config = write_config(tmp_path)
    store = tmp_path / "store"
    write_atomically(
        store / "good.md",
        article_text("A good story", "https://example.com/good", "2026-11-01T08:00:00Z"),
    )
    (store / EVIL_NAME).write_text("no front matter\n", encoding="utf-8")
    os.utime(store / EVIL_NAME, (1, 1))  # long settled: reported at once
    return config


def test_printable_escapes_controls_and_keeps_ordinary_text() -> None:
    assert printable("a\nb\r\tc\x00\x1b[31m\x7f\x85\x9b") == (
        "a\\nb\\r\\tc\\x00\\x1b[31m\\x7f\\x85\\x9b"
    )
    assert printable("x\u2028y\u2029z\u202e\u2066\u200f\u061c") == (
        "x\\u2028y\\u2029z\\u202e\\u2066\\u200f\\u061c"
    )
    # A file name that is not UTF-8 shows its raw byte instead of failing to print.
    assert printable(os.fsdecode(b"caf\xe9.md")) == "caf\\xe9.md"
    ordinary = "Café — 東京 · naïve · 👩‍💻 · Ελληνικά · עברית"
    assert printable(ordinary) == ordinary


def test_json_text_is_valid_json_that_keeps_the_value_and_no_raw_control() -> None:
    value = {"path": EVIL_NAME, "ok": "Café 東京 👩‍💻"}
    text = json_text(value)
    assert_clean_lines(text)
    assert "Café 東京 👩‍💻" in text  # readable, not \\u-escaped
    assert json.loads(text) == value


def test_text_log_keeps_one_line_per_record_and_no_escape_codes(
    evil_store: Path, tmp_path: Path
) -> None:
    result = run(["run", "--once", "--config", str(evil_store)], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(TEXT_LOG_LINE.match(line) for line in lines), lines
    assert_clean_lines(result.stderr.replace("\n", ""))
    # The fake record stays inside the one real one, escaped.
    [warning] = [line for line in lines if "FORGED" in line]
    assert re.match(r"\d\d:\d\d:\d\d WARNING +bot\.worker: bad article file ", warning), warning
    assert printable(EVIL_NAME) in warning


def test_json_log_escapes_and_round_trips_the_name(evil_store: Path, tmp_path: Path) -> None:
    result = run(["run", "--once", "--log-format", "json", "--config", str(evil_store)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert_clean_lines(result.stderr.replace("\n", ""))
    records = [json.loads(line) for line in result.stderr.splitlines()]
    [warning] = [r for r in records if "bad article file" in r["message"]]
    # JSON keeps the exact name (escaped in the text, restored by any JSON reader).
    assert EVIL_NAME in warning["message"]


def test_scan_text_and_json_print_the_name_escaped(evil_store: Path, tmp_path: Path) -> None:
    text = run(["scan", "--config", str(evil_store)], tmp_path)
    assert text.returncode == 0, text.stderr
    assert_clean_lines(text.stdout.replace("\n", ""))
    expected = f"  {printable(EVIL_NAME)}: no front matter"
    assert any(line.startswith(expected) for line in text.stdout.splitlines()), text.stdout
    as_json = run(["scan", "--json", "--config", str(evil_store)], tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout.count("\n") == 1
    assert_clean_lines(as_json.stdout.rstrip("\n"))
    report = json.loads(as_json.stdout)
    assert [entry["path"] for entry in report["bad"]] == [EVIL_NAME]


def test_preview_names_a_hostile_file_escaped(tmp_path: Path) -> None:
    path = tmp_path / EVIL_NAME
    path.write_text("no front matter\n", encoding="utf-8")
    result = run(["preview", str(path)], tmp_path)
    assert result.returncode == 1
    assert_clean_lines(result.stderr.rstrip("\n"))
    assert result.stderr.count("\n") == 1 and printable(EVIL_NAME) in result.stderr


def test_preview_of_a_hostile_title_prints_no_control(tmp_path: Path) -> None:
    path = tmp_path / "title.md"
    path.write_text(
        '---\ntitle: "Title \\e[31mred\\u2028\\u202e \\x9b2J"\nwebUrl: https://e.com/a\n'
        'provider:\n  name: "Out\\nlet"\ntopics: ["A\\x1bI"]\n---\n',
        encoding="utf-8",
    )
    for platform in ("console", "discord", "slack"):
        result = run(["preview", str(path), "--platform", platform], tmp_path)
        assert result.returncode == 0, result.stderr
        assert_clean_lines(result.stdout.replace("\n", ""))
        assert "red" in result.stdout


def test_subscriptions_list_prints_a_hostile_channel_on_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    channel = "ops\n   9  console:forged — all topics\x1b]0;pwned\x07"
    added = run(
        ["subscriptions", "add", "--config", str(config), "--platform", "console",
         "--channel", channel, "--topic", "A\u202eI"],
        tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.count("\n") == 1
    assert_clean_lines(added.stdout.rstrip("\n"))
    listed = run(["subscriptions", "list", "--config", str(config)], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert_clean_lines(listed.stdout.replace("\n", ""))
    with sqlite3.connect(tmp_path / "data" / "state.db") as conn:
        [(count,)] = conn.execute("SELECT COUNT(*) FROM subscriptions").fetchall()
    lines = listed.stdout.splitlines()
    assert len(lines) == count  # one line per subscription, whatever its channel holds
    assert any(printable(channel) in line for line in lines)


def test_a_traceback_in_the_text_log_cannot_start_a_line_of_its_own() -> None:
    import logging

    from bot.logs import TextFormatter

    try:
        raise ValueError(f"cannot parse {EVIL_NAME}")
    except ValueError:
        record = logging.LogRecord(
            "bot.store", logging.ERROR, __file__, 1, "failed on %s", (EVIL_NAME,), sys.exc_info()
        )
    lines = TextFormatter().format(record).split("\n")
    assert TEXT_LOG_LINE.match(lines[0]) and printable(EVIL_NAME) in lines[0]
    assert len(lines) > 3 and all(line.startswith("    ") for line in lines[1:]), lines
    assert any(line.strip().startswith("ValueError: cannot parse evil") for line in lines)
    assert_clean_lines("".join(lines))
