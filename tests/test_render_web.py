"""The panel's previews (bot/render/web.py): the real Discord and Slack payloads drawn as HTML,
every article string escaped, Slack's bold headline shown bold and not as asterisks."""

from __future__ import annotations

import re

from bot.articles import Article, parse_article
from bot.render.style import RenderStyle
from bot.render.web import discord_preview, slack_preview
from tests.builders import store_file_text

HOSTILE = '*Bold* <script>window.pwned = 1</script><img src=x onerror="alert(1)">'


def article(title: str) -> Article:
    text = store_file_text("https://example.com/a", title.replace('"', '\\"'))
    return parse_article(text.encode(), "a.md")


def test_the_slack_headline_is_bold_and_its_link_kept() -> None:
    html = slack_preview(article("Robots fold laundry"), RenderStyle())
    assert '<strong><a href="https://example.com/a"' in html
    assert "Robots fold laundry</a></strong>" in html
    assert "*<" not in html and ">*" not in html


def test_hostile_titles_stay_text_in_both_previews() -> None:
    for html in (
        slack_preview(article(HOSTILE), RenderStyle()),
        discord_preview(article(HOSTILE), RenderStyle()),
    ):
        assert "<script" not in html and "<img" not in html
        assert "&lt;script&gt;" in html
        # Only our own tags: every '<' that opens a tag opens one of these.
        tags = set(re.findall(r"<(/?[a-z]+)", html))
        assert tags <= {
            "div",
            "/div",
            "a",
            "/a",
            "strong",
            "/strong",
            "span",
            "/span",
            "hr",
            "p",
            "/p",
            "br",
            "em",
            "/em",
            "b",
            "/b",
        }
