"""Console: readable terminal text, and nothing from an article that can drive the terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.articles import Article, Provider, RelatedCoverage
from bot.render import RenderStyle, render_console
from tests.builders import make_article, seed_article


@pytest.fixture
def seed() -> Article:
    return seed_article()


def test_seed_article_reads_well(seed: Article) -> None:
    lines = render_console(seed, RenderStyle()).split("\n")
    assert lines[0] == seed.title
    assert lines[1] == (
        "U.S. News & World Report · 18 May 2021 19:56 UTC · Quality 43 · Computer Vision, AI"
    )
    assert lines[2] == ""
    assert lines[3].startswith("Amazon.com Inc told Reuters") and len(lines[3]) <= 88
    assert seed.web_url in lines
    heading = lines.index("Also covered by:")
    assert lines[heading + 1] == (
        "  • Forbes — Amazon Indefinitely Bans Police Use Of Facial Recognition Technology  "
        "<https://www.forbes.com/sites/davidjeans/2021/05/18/amazon-indefinitely-bans-police-"
        "use-of-facial-recognition-technology/>"
    )
    assert lines[heading + 6] == "  +7 more"
    assert lines[-1] == ""  # ends with a newline


def test_minimal_article() -> None:
    text = render_console(make_article(), RenderStyle())
    assert text == "A story\nExample News\n\nhttps://news.example.com/story\n"


def test_style_switches(seed: Article) -> None:
    style = RenderStyle(max_related=1, show_quality=False, show_topics=False)
    lines = render_console(seed, style).split("\n")
    assert lines[1] == "U.S. News & World Report · 18 May 2021 19:56 UTC"
    assert lines[-3:] == [lines[-3], "  +11 more", ""] and lines[-3].startswith("  • Forbes")


def test_unscored_article_and_fractional_quality() -> None:
    moment = datetime(2021, 3, 2, 14, 46, tzinfo=UTC)
    unscored = render_console(make_article(published_at=moment), RenderStyle())
    assert unscored.split("\n")[1] == "Example News · 2 Mar 2021 14:46 UTC"
    scored = render_console(make_article(quality=12.5, topics=("AI",)), RenderStyle())
    assert scored.split("\n")[1] == "Example News · Quality 12.5 · AI"


def test_terminal_escapes_and_controls_are_stripped() -> None:
    hostile = "\x1b[2J\x1b[31mRed\x1b[0m \x1b]0;pwned\x07Title\x07\u202e\r\n\x9b1mX\x00"
    article = make_article(
        title=hostile,
        excerpt=hostile,
        provider=Provider(name=hostile, domain="x"),
        topics=(hostile,),
        related=(
            RelatedCoverage(
                title=hostile,
                web_url="https://r.example/\x1b[31m",
                provider=Provider(name=hostile, domain=""),
            ),
        ),
    )
    text = render_console(article, RenderStyle())
    assert text.split("\n")[0] == "Red Title X"
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text and "\r" not in text
    assert all(ch == "\n" or ch >= " " for ch in text)
    assert "  • Red Title X — Red Title X  <https://r.example/%1B%5B31m>" in text


def test_bad_link_is_left_out_rather_than_printed() -> None:
    text = render_console(make_article(web_url="javascript:alert(1)"), RenderStyle())
    assert "javascript" not in text
