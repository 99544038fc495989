"""The README's command table and `newsbot … --help` tell the same story: every option of every
command is named in the table, and each command's exit statuses are the same in both."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from bot.cli import _parser
from tests.conftest import REPO


def commands() -> dict[str, argparse.ArgumentParser]:
    """`run`, `subscriptions add`, …: each command's own parser."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prefix} {name}".strip())
                return
        found[prefix] = parser

    walk(_parser(), "")
    return found


def readme_rows() -> dict[str, str]:
    """The command table's rows, by the command they start with."""
    rows: dict[str, str] = {}
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        match = re.match(r"\| `newsbot ([a-z-]+(?: (?:list|add|remove))?)", line)
        if match:
            rows[match.group(1)] = line
    return rows


def statuses(text: str) -> list[int]:
    """`exit status: 0 …; 1 …; 2 …` as [0, 1, 2]."""
    after = text.split("exit status:", 1)[1]
    return [int(n) for n in re.findall(r"(?:^|;)\s*\*{0,2}(\d+)\*{0,2}\s", after)]


@pytest.mark.parametrize("name", sorted(commands()))
def test_the_readme_names_every_option_and_the_exit_statuses(name: str) -> None:
    parser = commands()[name]
    row = readme_rows().get(name)
    assert row is not None, f"the README's command table has no row for `newsbot {name}`"
    options = {
        option
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }
    missing = sorted(o for o in options if not re.search(rf"(?<![\w-]){o}(?![\w-])", row))
    assert not missing, f"`newsbot {name}`: the README does not name {missing}"
    assert parser.epilog and "exit status:" in parser.epilog
    assert statuses(row) == statuses(parser.epilog), (row, parser.epilog)
    assert statuses(row)[0] == 0


def test_help_shows_the_exit_statuses() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--help"],
        capture_output=True, text=True, cwd=REPO, timeout=30,
    )
    assert shown.returncode == 0
    assert "exit status: 0" in shown.stdout and "--show" in shown.stdout
