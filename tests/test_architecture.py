"""The house rules that keep the design readable: the platform SDKs live only in their adapters
(the core never imports them), and arrows between core modules run one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

ADAPTERS = {
    "discord": {"bot/platforms/discord.py", "bot/platforms/discord_commands.py"},
    "slack_sdk": {"bot/platforms/slack.py", "bot/platforms/slack_commands.py"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def source_files() -> list[tuple[str, set[str]]]:
    return [
        (path.relative_to(REPO).as_posix(), imported_modules(path))
        for path in sorted((REPO / "bot").rglob("*.py"))
    ]


@pytest.mark.parametrize("sdk", sorted(ADAPTERS))
def test_only_the_adapters_import_a_platform_sdk(sdk: str) -> None:
    importers = {
        rel for rel, names in source_files() if any(n.split(".")[0] == sdk for n in names)
    }
    assert importers <= ADAPTERS[sdk]
    assert importers  # the rule is about something that exists


def test_the_pure_core_does_no_io_of_its_own() -> None:
    """Routing, rendering and the domain objects are pure: no SQLite, HTTP, or event loop."""
    pure = ["bot/routing.py", "bot/articles.py", "bot/urls.py", "bot/subscriptions.py"]
    pure += [rel for rel, _ in source_files() if rel.startswith("bot/render/")]
    io_modules = {"aiosqlite", "sqlite3", "aiohttp", "asyncio", "watchfiles", "socket"}
    imports = dict(source_files())
    for rel in pure:
        used = {n.split(".")[0] for n in imports[rel]}
        assert not used & io_modules, rel
