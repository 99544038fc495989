"""Golden tests: real article files rendered for every platform, compared with reviewed output.

After an intended change, regenerate with `UPDATE_GOLDEN=1 python -m pytest
tests/test_render_golden.py` and review the diff of `tests/golden/` like code.

The articles are copies, so these tests do not need `shared/`:
- seed-amazon-moratorium.md: shared/seeds/000_9b0c7d64d6b1f023.txt (12 related, provider logo)
- related-facial-recognition.md: 2019-12-21-is-facial-recognition-tech-too-young-… (3 related,
  image, quality 3)
- korean-provider-unscored.md: 2021-03-11-worldwide-ai-in-computer-vision-… (provider 아크로팬,
  no quality, no images)
- unscored-with-image.md: 2021-03-02-microsoft-launches-semantic-search-… (no quality, curly quote)
- no-images-brackets.md: 2016-02-23-trolls-vs-pirates-… (no images, quality 102, `[W]e`)
- pipe-title-raw-space-url.md: 2019-12-27-image-recognition-market-… (`|` in the title, a raw
  space in a related URL, a relative logo URL)
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.platforms.registry import PLATFORM_NAMES as PLATFORMS
from bot.platforms.registry import render_preview
from bot.render import RenderStyle, render_console, render_discord, render_slack

HERE = Path(__file__).resolve().parent
ARTICLES = HERE / "data" / "articles"
GOLDEN = HERE / "golden"
NAMES = sorted(path.stem for path in ARTICLES.glob("*.md"))
SUFFIX = {"console": "txt", "discord": "json", "slack": "json"}


def load(name: str) -> Article:
    path = ARTICLES / f"{name}.md"
    return parse_article(path.read_bytes(), str(path))


def test_the_chosen_articles_are_all_there() -> None:
    assert len(NAMES) == 6


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", NAMES)
def test_rendering_matches_golden(name: str, platform: str) -> None:
    rendered = render_preview(load(name), platform, RenderStyle())
    rendered += "" if rendered.endswith("\n") else "\n"  # files end with a newline
    golden = GOLDEN / f"{name}.{platform}.{SUFFIX[platform]}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered, encoding="utf-8")
    if not golden.exists():
        pytest.fail(f"{golden.name} is missing: run with UPDATE_GOLDEN=1 and review it")
    expected = golden.read_text(encoding="utf-8")
    if rendered != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            rendered.splitlines(keepends=True),
            fromfile=f"golden/{golden.name}",
            tofile="rendered now",
        )
        pytest.fail(
            "output changed (if intended: UPDATE_GOLDEN=1, then review the diff):\n"
            + "".join(diff),
            pytrace=False,
        )


def test_no_stray_golden_files() -> None:
    expected = {f"{n}.{p}.{SUFFIX[p]}" for n in NAMES for p in PLATFORMS}
    assert {path.name for path in GOLDEN.iterdir()} == expected


# --- render_preview ------------------------------------------------------------------------------


def test_preview_is_exactly_the_payload_that_would_be_sent() -> None:
    article, style = load("seed-amazon-moratorium"), RenderStyle()
    assert json.loads(render_preview(article, "discord", style)) == render_discord(article, style)
    slack = render_slack(article, style).to_payload()
    assert json.loads(render_preview(article, "slack", style)) == slack
    assert render_preview(article, "console", style) == render_console(article, style)


def test_preview_keeps_non_ascii_readable() -> None:
    preview = render_preview(load("korean-provider-unscored"), "discord", RenderStyle())
    assert "아크로팬" in preview and "\\u" not in preview
    assert preview.startswith('{\n  "embeds": [')


def test_preview_platform_names_are_forgiving_about_case() -> None:
    article = load("no-images-brackets")
    assert render_preview(article, " Slack ", RenderStyle()).startswith("{")


def test_preview_rejects_an_unknown_platform_helpfully() -> None:
    with pytest.raises(
        ValueError, match=r"unknown platform 'teams': choose one of console, discord"
    ):
        render_preview(load("no-images-brackets"), "teams", RenderStyle())
