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
    pure += ["bot/schedule_time.py", "bot/breaking.py", "bot/digest.py"]
    pure += [rel for rel, _ in source_files() if rel.startswith("bot/render/")]
    io_modules = {"aiosqlite", "sqlite3", "aiohttp", "asyncio", "watchfiles", "socket"}
    imports = dict(source_files())
    for rel in pure:
        used = {n.split(".")[0] for n in imports[rel]}
        assert not used & io_modules, rel



# Modules that may name a platform: the adapters and their registry, and the renderers (one
# module per platform's format).
PLATFORM_OWNERS = ("bot/platforms/", "bot/render/")
PLATFORM_NAMES = {"console", "discord", "slack"}


def _is_platform(node: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.lower() in PLATFORM_NAMES
    )


def platform_branches(tree: ast.AST) -> list[int]:
    """Lines that branch on or enumerate platforms by name: comparisons (`==`, `in`), lookups
    (`x["slack"]`, `.get("slack")`), and collections of names (tuples, sets, dict keys)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            found = any(_is_platform(n) for n in (node.left, *node.comparators))
        elif isinstance(node, ast.Subscript):
            found = _is_platform(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            found = node.func.attr in {"get", "pop"} and any(map(_is_platform, node.args[:1]))
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            found = any(map(_is_platform, node.elts))
        elif isinstance(node, ast.Dict):
            found = any(map(_is_platform, node.keys))
        else:
            found = False
        if found:
            lines.append(node.lineno)
    return sorted(lines)


def test_platforms_are_branched_on_only_in_the_adapters_and_their_registry() -> None:
    """Outside the adapters and their registry, code loops over the registry instead of naming
    platforms (`if platform == "discord"`, `("console", "discord", "slack")`)."""
    naming = []
    for path in sorted((REPO / "bot").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(PLATFORM_OWNERS):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        naming += [f"{rel}:{line}" for line in platform_branches(tree)]
    assert not naming, naming


def test_the_platform_rule_sees_a_branch() -> None:
    code = 'if p == "discord": pass\nx = {"console": 1}\ny = ("slack",)\nz = d.get("Slack")\n'
    assert platform_branches(ast.parse(code)) == [1, 2, 3, 4]
    assert platform_branches(ast.parse('f(platform="console")\ntable_of("slack")\n')) == []
