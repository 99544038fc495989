"""`newsbot explain FILE_OR_URL [--json]` as a user runs it, after a real `run --once`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.processes import BotProcess
from tests.test_story_delivery import article_text


def write(store: Path, name: str, text: str) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    path = store / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


async def test_explain_agrees_with_what_a_run_posted(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write(store, "a", article_text("gtc", "Nvidia unveils Blackwell", "alpha", quality=90,
                                   published="2026-11-19T10:00:00Z"))
    late = write(store, "b", article_text("b", "Blackwell, explained", "beta", quality=70,
                                          related=["https://alpha.example/gtc"]))
    config = tmp_path / "newsbot.toml"
    config.write_text(
        "\n".join(
            [
                "[store]", f'path = "{store}"', "[database]", f'path = "{tmp_path / "n.db"}"',
                "[[subscriptions]]", 'platform = "console"', 'channel = "all"', "backfill = 5",
                "[[subscriptions]]", 'platform = "console"', 'channel = "picky"',
                "min_quality = 80", "backfill = 5",
            ]
        ),
        encoding="utf-8",
    )
    run = await BotProcess.spawn("run", "--once", "--config", str(config))
    assert await run.finish() == 0, run.stderr
    # One story, one post per channel.
    assert run.stdout.count("[all]") == 1 and run.stdout.count("[picky]") == 1

    shown = await BotProcess.spawn("explain", str(late), "--config", str(config))
    assert await shown.finish() == 0, shown.stderr
    assert "story #" in shown.stdout and "2 articles from Alpha News, Beta News" in shown.stdout
    as_json = await BotProcess.spawn(
        "explain", "https://beta.example/b", "--json", "--config", str(config)
    )
    assert await as_json.finish() == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    fates = {e["target"]: (e["fate"], e["reason"]) for e in report["explanations"]}
    # The backfill took the newest first: this one brought the story to `all`...
    assert fates["console:all"][0] == "delivered"
    assert fates["console:all"][1].startswith("posted at ")
    # ...while `picky` (floor 80) got the story through the older, better article.
    assert fates["console:picky"] == (
        "not delivered",
        "below the floor: quality 70 is under 80 (its story #1 reached the channel through "
        "https://alpha.example/gtc)",
    )

    older = await BotProcess.spawn(
        "explain", "https://alpha.example/gtc", "--json", "--config", str(config)
    )
    assert await older.finish() == 0
    fates = {e["target"]: e for e in json.loads(older.stdout)["explanations"]}
    assert "part of story #1, already posted" in fates["console:all"]["reason"]
    assert fates["console:picky"]["reason"].startswith("posted at ")

    missing = await BotProcess.spawn("explain", "https://nowhere.example/x", "--config",
                                     str(config))
    assert await missing.finish() == 1
    assert "neither an article file nor the URL" in missing.stderr
