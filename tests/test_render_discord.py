"""Discord: the embed's shape, the style switches, every limit, and hostile article text."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bot.articles import Article, Image, Provider, RelatedCoverage
from bot.render import RenderStyle, render_discord, render_discord_compact
from bot.render import discord as d
from bot.render.common import COLOUR_MID, utf16_len
from bot.render.discord import embed_text_length, escape_markdown
from tests.builders import make_article, seed_article

ZW = "\u200b"
LOGO = "https://everyday-cc.github.io/ai/assets/images/organizations/usnews.com-50x50.jpg"


@pytest.fixture
def seed() -> Article:
    return seed_article()


def embed_of(article: Article, style: RenderStyle | None = None) -> dict[str, Any]:
    payload = render_discord(article, style or RenderStyle())
    assert payload["allowed_mentions"] == {"parse": []}
    (embed,) = payload["embeds"]
    assert isinstance(embed, dict)
    return embed


# --- shape ---------------------------------------------------------------------------------------


def test_seed_article_embed(seed: Article) -> None:
    payload = render_discord(seed, RenderStyle())
    assert set(payload) == {"embeds", "allowed_mentions"}
    embed = payload["embeds"][0]
    assert embed["title"] == seed.title
    assert embed["url"] == seed.web_url
    assert embed["description"].startswith("Amazon.com Inc told Reuters on Tuesday")
    assert embed["author"] == {
        "name": "U.S. News & World Report",
        "icon_url": LOGO,
    }
    assert "image" not in embed and "thumbnail" not in embed  # the seed has no article image
    assert embed["footer"] == {"text": "Quality 43 · Computer Vision, AI"}
    assert embed["timestamp"] == "2021-05-18T19:56:00+00:00"
    assert embed["color"] == COLOUR_MID
    (field,) = embed["fields"]
    assert field["name"] == "Also covered by"
    lines = field["value"].split("\n")
    assert lines[0] == (
        "• [Forbes — Amazon Indefinitely Bans Police Use Of Facial Recognition Technology]"
        "(https://www.forbes.com/sites/davidjeans/2021/05/18/"
        "amazon-indefinitely-bans-police-use-of-facial-recognition-technology/)"
    )
    outlets = [line.split("[", 1)[1].split(" — ")[0] for line in lines[:-1]]
    assert outlets == [
        "Forbes",
        "New York Times",
        "CBS News",
        "The Pantagraph",
        "The Financial Times",
    ]
    assert lines[-1] == "+7 more"
    assert "ampproject" not in field["value"] and "/amp" not in field["value"]


def test_style_switches(seed: Article) -> None:
    bare = embed_of(
        seed,
        RenderStyle(max_related=2, show_images=False, show_quality=False, show_topics=False),
    )
    assert "icon_url" not in bare["author"]
    assert "footer" not in bare
    assert bare["fields"][0]["value"].split("\n")[-1] == "+10 more"
    assert "fields" not in embed_of(seed, RenderStyle(max_related=0))
    compact = render_discord_compact(seed, RenderStyle(max_related=0))
    assert compact["footer"]["text"] == "Quality 43 · Computer Vision, AI"


def test_large_image_is_an_image_and_a_small_one_a_thumbnail() -> None:
    big = make_article(images=(Image("https://img.example/big.jpg", width=1200),))
    small = make_article(images=(Image("https://img.example/small.jpg", width=120),))
    unknown = make_article(images=(Image("https://img.example/what.jpg"),))
    assert embed_of(big)["image"] == {"url": "https://img.example/big.jpg"}
    assert embed_of(small)["thumbnail"] == {"url": "https://img.example/small.jpg"}
    assert embed_of(unknown)["image"] == {"url": "https://img.example/what.jpg"}
    assert "image" not in embed_of(big, RenderStyle(show_images=False))


def test_missing_optional_fields_are_left_out_not_sent_empty() -> None:
    embed = embed_of(make_article(provider=Provider(name="", domain="")))
    assert embed == {
        "title": "A story",
        "url": "https://news.example.com/story",
        "author": {"name": "news.example.com"},
        "color": 0x5865F2,
    }


def test_compact_embed_is_small_and_summarises_related(seed: Article) -> None:
    embed = render_discord_compact(seed, RenderStyle())
    assert embed_text_length(embed) <= 600
    assert "fields" not in embed and "icon_url" not in embed["author"]
    assert (
        embed["footer"]["text"] == "Quality 43 · Computer Vision, AI · also covered by 12 outlets"
    )
    huge = make_article(title="word " * 3000, excerpt="word " * 3000, topics=("t" * 500,) * 9)
    assert embed_text_length(render_discord_compact(huge, RenderStyle())) <= 600


# --- limits ------------------------------------------------------------------------------------


def test_budgets_add_up_within_the_limits() -> None:
    # Each part has a fixed budget, so the 6000 (and 600 compact) totals hold by construction.
    full = (
        d.TITLE_LIMIT
        + d.EXCERPT_BUDGET
        + len(d.RELATED_FIELD_NAME)
        + d.FIELD_VALUE_LIMIT
        + d.FOOTER_BUDGET
        + d.AUTHOR_LIMIT
    )
    assert full <= d.EMBED_TOTAL_LIMIT
    assert d.EXCERPT_BUDGET <= d.DESCRIPTION_LIMIT and d.FOOTER_BUDGET <= d.FOOTER_LIMIT
    compact = (
        d.COMPACT_TITLE_BUDGET
        + d.COMPACT_DESCRIPTION_BUDGET
        + d.COMPACT_AUTHOR_BUDGET
        + d.COMPACT_FOOTER_BUDGET
    )
    assert compact <= d.COMPACT_TOTAL_LIMIT


# --- limits by example -----------------------------------------------------------------------


def test_huge_text_is_trimmed_at_word_boundaries_within_limits() -> None:
    article = make_article(
        title="Headline " * 100,
        excerpt="Sentence with words. " * 500,
        provider=Provider(name="Outlet " * 100, domain="x"),
        topics=tuple(f"Topic {i}" for i in range(500)),
    )
    embed = embed_of(article)
    assert utf16_len(embed["title"]) <= 256 and embed["title"].endswith("Headline…")
    assert utf16_len(embed["description"]) <= 4096 and embed["description"].endswith("words.…")
    assert utf16_len(embed["author"]["name"]) <= 256
    assert utf16_len(embed["footer"]["text"]) <= 2048
    assert embed_text_length(embed) <= 6000


def test_thousands_of_related_items_fit_one_field() -> None:
    items = tuple(
        RelatedCoverage(
            title=f"[Story] number {i} " + "(long) " * 30,
            web_url=f"https://outlet{i}.example/" + "path/" * 40,
            provider=Provider(name=f"Outlet {i}", domain=""),
            quality=float(i % 100),
        )
        for i in range(3000)
    )
    style = RenderStyle(max_related=25)
    (field,) = embed_of(make_article(related=items), style)["fields"]
    assert utf16_len(field["value"]) <= 1024
    lines = field["value"].split("\n")
    shown = len(lines) - 1
    assert lines[-1] == f"+{3000 - shown} more"


def test_emoji_count_double_towards_limits() -> None:
    embed = embed_of(make_article(title="😀" * 300))
    assert len(embed["title"]) < 256 and utf16_len(embed["title"]) <= 256


# --- hostile text --------------------------------------------------------------------------------


def test_hostile_title_is_shown_literally_and_cannot_ping_or_link() -> None:
    title = (
        "@everyone <@123> <@&1> <#1> <t:1621367760:R> [x](http://evil) ||s|| **b** `c` ~~s~~ _i_"
    )
    embed = embed_of(make_article(title=title, excerpt=title))
    expected = (
        f"@{ZW}everyone \\<@123\\> \\<@&1\\> \\<#1\\> \\<t:1621367760:R\\> "
        "\\[x\\]\\(http\\://evil\\) \\|\\|s\\|\\| \\*\\*b\\*\\* \\`c\\` \\~\\~s\\~\\~ \\_i\\_"
    )
    assert embed["title"] == expected
    assert embed["description"] == expected
    rendered = json.dumps(embed, ensure_ascii=False)
    assert "@everyone" not in rendered and "](" not in rendered


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("# Heading", "\\# Heading"),
        ("-# small print", "\\-# small print"),
        ("- item", "\\- item"),
        ("+ item", "\\+ item"),
        ("1. item", "1\\. item"),
        ("> quote", "\\> quote"),
        ("a - b # c", "a - b # c"),  # mid-line these are not markdown
        ("back\\slash", "back\\\\slash"),
        ("see https://evil.example/x now", "see https\\://evil.example/x now"),
        ("@here @Everyone mail@here.example", f"@{ZW}here @{ZW}Everyone mail@{ZW}here.example"),
        ("Wall’s [W]e “quoted”", "Wall’s \\[W\\]e “quoted”"),  # noqa: RUF001
    ],
)
def test_escape_markdown(text: str, escaped: str) -> None:
    assert escape_markdown(text) == escaped


def test_hostile_related_labels_and_urls_cannot_break_the_masked_link() -> None:
    items = (
        RelatedCoverage(
            title="pwned](http://evil.example) [click",
            web_url="https://ok.example/a (b)",
            provider=Provider(name="@everyone", domain=""),
            quality=3.0,
        ),
        RelatedCoverage(title="script", web_url="javascript:alert(1)", quality=9.0),
    )
    (field,) = embed_of(make_article(related=items))["fields"]
    assert field["value"] == (
        f"• [@{ZW}everyone — pwned\\]\\(http\\://evil.example\\) \\[click]"
        "(https://ok.example/a%20%28b%29)"
    )


def test_plain_text_fields_are_not_backslash_escaped() -> None:
    # Author names and footers are not markdown in Discord: an escape would show as a backslash.
    article = make_article(
        provider=Provider(name="Ars *Technica*", domain="x"), topics=("C++", "_ML_", "@here")
    )
    embed = embed_of(article)
    assert embed["author"]["name"] == "Ars *Technica*"
    assert embed["footer"]["text"] == f"C++, _ML_, @{ZW}here"


def test_published_time_in_any_zone_is_sent_as_utc() -> None:
    moment = datetime(2021, 5, 18, 21, 56, tzinfo=timezone(timedelta(hours=2)))
    assert embed_of(make_article(published_at=moment))["timestamp"] == "2021-05-18T19:56:00+00:00"
    naive = datetime(2021, 5, 18, 19, 56)
    assert embed_of(make_article(published_at=naive))["timestamp"] == "2021-05-18T19:56:00+00:00"
