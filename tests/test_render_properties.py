"""The shared render helpers (bot/render/common.py) by example, then every renderer by property:
any article at all, however long, empty or hostile, renders within every platform limit.

The limit checks here are written independently of the renderers' own budgets on purpose.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.articles import Article, Image, Provider, RelatedCoverage, parse_article
from bot.render import (
    RenderStyle,
    SlackMessage,
    format_quality,
    render_console,
    render_discord,
    render_discord_compact,
    render_slack,
    render_slack_compact,
    select_related,
    topic_colour,
    trim_text,
)
from bot.render.common import (
    COLOUR_HIGH,
    COLOUR_LOW,
    COLOUR_MID,
    COLOUR_TOP,
    COLOUR_UNSCORED,
    clean_text,
    fit_text,
    safe_link_url,
    utf16_len,
)
from bot.render.discord import escape_markdown
from bot.render.slack import escape_mrkdwn
from bot.urls import normalize_url
from tests.builders import make_article

T0 = datetime(2021, 5, 18, 19, 56, tzinfo=UTC)


def related(
    url: str,
    title: str = "Other take",
    *,
    name: str | None = "Outlet",
    quality: float | None = None,
    published_at: datetime | None = None,
    amp: str | None = None,
    cdn: str | None = None,
) -> RelatedCoverage:
    provider = Provider(name=name, domain="") if name is not None else None
    return RelatedCoverage(
        title=title,
        web_url=url,
        amp_web_url=amp,
        cdn_amp_web_url=cdn,
        provider=provider,
        quality=quality,
        published_at=published_at,
    )


# --- select_related ------------------------------------------------------------------------------


def test_duplicates_by_normalized_url_are_listed_once() -> None:
    article = make_article(
        related=(
            related("https://a.example/x?utm_source=feed", name="A", quality=10),
            related("HTTPS://A.EXAMPLE/x#top", name="A again", quality=5),
            related("https://b.example/y", name="B", quality=1),
        )
    )
    selection = select_related(article, 5)
    assert [link.outlet for link in selection.items] == ["A", "B"]
    assert selection.more == 0


def test_a_related_item_pointing_back_at_the_article_is_dropped() -> None:
    article = make_article(
        original_url="https://orig.example/story",
        amp_web_url="https://news.example.com/story/amp",
        related=(
            related("https://NEWS.example.com/story?utm_medium=x", name="Self"),
            related("https://orig.example/story", name="Self via original"),
            related("https://elsewhere.example/z", amp="https://news.example.com/story/amp"),
            related("https://other.example/w", name="Other"),
        ),
    )
    assert [link.outlet for link in select_related(article, 5).items] == ["Other"]


def test_web_url_is_preferred_over_amp_and_the_amp_cache() -> None:
    item = related(
        "https://www.forbes.com/story/",
        amp="https://www.forbes.com/story/amp/",
        cdn="https://www-forbes-com.cdn.ampproject.org/c/s/www.forbes.com/story/amp/",
    )
    only_cache = related(
        "https://www-x-com.cdn.ampproject.org/c/s/x.com/a/amp",
        amp="https://x.com/a/amp",
        name="X",
    )
    links = select_related(make_article(related=(item, only_cache)), 5).items
    assert [link.url for link in links] == ["https://www.forbes.com/story/", "https://x.com/a/amp"]


def test_an_item_without_a_provider_or_title_is_named_after_its_domain() -> None:
    article = make_article(related=(related("https://www.theverge.com/a", "", name=None),))
    (link,) = select_related(article, 5).items
    assert (link.outlet, link.headline) == ("theverge.com", "")


def test_order_is_quality_descending_then_newest_with_unscored_last() -> None:
    article = make_article(
        related=(
            related("https://a.example/", name="unscored new", published_at=T0),
            related(
                "https://b.example/", name="q10 old", quality=10, published_at=T0 - timedelta(1)
            ),
            related("https://c.example/", name="q10 new", quality=10, published_at=T0),
            related("https://d.example/", name="q90", quality=90),
            related("https://e.example/", name="q10 undated", quality=10),
        )
    )
    names = [link.outlet for link in select_related(article, 10).items]
    assert names == ["q90", "q10 new", "q10 old", "q10 undated", "unscored new"]


def test_at_most_max_related_are_kept_and_the_rest_counted() -> None:
    article = make_article(
        related=tuple(related(f"https://o{i}.example/", name=f"O{i}") for i in range(8))
    )
    selection = select_related(article, 3)
    assert [link.outlet for link in selection.items] == ["O0", "O1", "O2"]
    assert selection.more == 5
    assert select_related(article, 0).more == 8
    assert select_related(article, -1) == select_related(article, 0)


def test_same_outlet_same_headline_twice_is_one_story() -> None:
    article = make_article(
        related=(
            related("https://a.example/1", "Big news", name="A", quality=3),
            related("https://a.example/2", "Big  NEWS", name="A", quality=2),
            related("https://b.example/1", "Big news", name="B", quality=1),
        )
    )
    assert [link.url for link in select_related(article, 5).items] == [
        "https://a.example/1",
        "https://b.example/1",
    ]


def test_non_http_links_are_never_selected() -> None:
    article = make_article(
        related=(
            related("javascript:alert(1)", name="JS"),
            related("ftp://files.example/x", name="FTP"),
            related("https://ok.example/x", name="OK"),
        )
    )
    assert [link.outlet for link in select_related(article, 5).items] == ["OK"]


def test_an_outlet_suffix_on_the_headline_is_not_repeated() -> None:
    item = related(
        "https://c.example/",
        "Amazon to extend pause | Charlotte Observer",
        name="Charlotte Observer",
    )
    (link,) = select_related(make_article(related=(item,)), 5).items
    assert link.headline == "Amazon to extend pause"


# --- small helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "shown"), [(43.0, "43"), (12.5, "12.5"), (0.0, "0"), (170.0, "170"), (3.14159, "3.1")]
)
def test_format_quality(q: float, shown: str) -> None:
    assert format_quality(q) == shown


def test_trim_text_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    assert trim_text("The quick brown fox jumps", 16) == "The quick brown…"
    assert trim_text("  spaced \n\t out  ", 100) == "spaced out"
    assert trim_text("short", 5) == "short"
    assert trim_text("Supercalifragilistic", 8) == "Superca…"  # one long word: cut inside it
    assert trim_text("anything", 0) == ""
    assert trim_text("word, next", 7) == "word…"  # no dangling comma before the ellipsis


def test_trim_text_can_count_utf16_units() -> None:
    emoji = "😀" * 10
    trimmed = trim_text(emoji, 9, measure=utf16_len)
    assert utf16_len(trimmed) <= 9
    assert trimmed == "😀" * 4 + "…"


def test_clean_text_removes_terminal_escapes_and_bidi_overrides() -> None:
    hostile = "\x1b[2J\x1b[31mRed\x1b[0m\x07 \x1b]0;title\x07Text\u202e\u2066gnp.exe\r\n\x00end"
    assert clean_text(hostile) == "Red Textgnp.exe end"


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://a.example/x y(1)|>", "https://a.example/x%20y%281%29%7C%3E"),
        ("https://user:pw@a.example/p", "https://a.example/p"),
        ("https://bücher.example/ä", "https://xn--bcher-kva.example/%C3%A4"),
        ("https://a.example/100%", "https://a.example/100%25"),
        ("https://a.example/?q=a&b=c#frag", "https://a.example/?q=a&b=c#frag"),
        ("javascript:alert(1)", None),
        ("mailto:x@example.com", None),
        ("https://", None),
        ("https://a.example/" + "x" * 3000, None),
    ],
)
def test_safe_link_url(url: str, safe: str | None) -> None:
    assert safe_link_url(url) == safe


@pytest.mark.parametrize(
    ("quality", "colour"),
    [
        (None, COLOUR_UNSCORED),
        (4.0, COLOUR_LOW),
        (20.0, COLOUR_MID),
        (43.0, COLOUR_MID),
        (50.0, COLOUR_HIGH),
        (99.5, COLOUR_HIGH),
        (100.0, COLOUR_TOP),
        (170.0, COLOUR_TOP),
    ],
)
def test_colour_follows_the_quality_band(quality: float | None, colour: int) -> None:
    assert topic_colour(make_article(quality=quality)) == colour


# --- independent limit checks --------------------------------------------------------------------

DISCORD_SPECIALS = set("\\*_~`|<>[]()")
_MASKED_LINE = re.compile(r"• \[(?:[^\[\]\\]|\\.)*\]\(https?://[^\s()<>]+\)")
_MORE_LINE = re.compile(r"\+\d+ more")
_SLACK_TOKEN = re.compile(r"<([^<>]*)>")


def _http(url: object) -> bool:
    return isinstance(url, str) and re.fullmatch(r"https?://[^\s<>|()\"\\]+", url) is not None


def unescaped_discord_specials(text: str) -> list[str]:
    """Markdown characters not preceded by a backslash escape."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in DISCORD_SPECIALS:
            found.append(text[i])
        i += 1
    return found


def embed_total(embed: dict[str, Any]) -> int:
    parts = [embed.get("title", ""), embed.get("description", "")]
    parts += [f["name"] + f["value"] for f in embed.get("fields", [])]
    parts += [embed.get("footer", {}).get("text", ""), embed.get("author", {}).get("name", "")]
    return sum(utf16_len(p) for p in parts)


def check_embed(embed: dict[str, Any], total_limit: int) -> None:
    assert 1 <= utf16_len(embed["title"]) <= 256
    assert utf16_len(embed.get("description", "x")) in range(1, 4097)
    assert len(embed.get("fields", [])) <= 25
    for field in embed.get("fields", []):
        assert 1 <= utf16_len(field["name"]) <= 256
        assert 1 <= utf16_len(field["value"]) <= 1024
        for line in field["value"].split("\n"):
            assert _MASKED_LINE.fullmatch(line) or _MORE_LINE.fullmatch(line), line
    if "footer" in embed:
        assert 1 <= utf16_len(embed["footer"]["text"]) <= 2048
    if "author" in embed:
        assert 1 <= utf16_len(embed["author"]["name"]) <= 256
        assert "icon_url" not in embed["author"] or _http(embed["author"]["icon_url"])
    assert embed_total(embed) <= total_limit
    for key in ("url",):
        assert key not in embed or _http(embed[key])
    for key in ("image", "thumbnail"):
        assert key not in embed or _http(embed[key]["url"])
    assert not unescaped_discord_specials(embed["title"])
    assert not unescaped_discord_specials(embed.get("description", ""))
    assert isinstance(embed["color"], int) and 0 <= embed["color"] <= 0xFFFFFF


def check_discord(payload: dict[str, Any]) -> None:
    assert payload["allowed_mentions"] == {"parse": []}
    (embed,) = payload["embeds"]
    check_embed(embed, 6000)
    json.dumps(payload, ensure_ascii=False).encode("utf-8")  # sendable as it is


def check_mrkdwn(text: str) -> None:
    assert 1 <= utf16_len(text) <= 3000
    # Every `<…>` is ours: a link to http(s) or a date; no stray angle brackets or `&`.
    for token in _SLACK_TOKEN.findall(text):
        if token.startswith("!date^"):
            continue
        url, _, label = token.partition("|")
        assert _http(url.replace("&amp;", "&")), token
        assert label and "|" not in url
    outside = _SLACK_TOKEN.sub("", text)
    assert "<" not in outside and ">" not in outside
    assert re.search(r"&(?!amp;|lt;|gt;)", text) is None


def check_slack_blocks(blocks: tuple[dict[str, Any], ...]) -> None:
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            check_mrkdwn(block["text"]["text"])
            if "accessory" in block:
                check_image(block["accessory"])
        else:
            assert block["type"] == "context"
            assert 1 <= len(block["elements"]) <= 10
            for element in block["elements"]:
                if element["type"] == "image":
                    check_image(element)
                else:
                    check_mrkdwn(element["text"])


def check_image(element: dict[str, Any]) -> None:
    assert element["type"] == "image"
    assert _http(element["image_url"]) and len(element["image_url"]) <= 3000
    assert 1 <= utf16_len(element["alt_text"]) <= 2000


def check_slack(message: SlackMessage) -> None:
    check_slack_blocks(message.blocks)
    assert 1 <= utf16_len(message.text) <= 40000
    assert "<" not in message.text and ">" not in message.text
    json.dumps(message.to_payload(), ensure_ascii=False).encode("utf-8")


def check_console(text: str) -> None:
    assert "\x1b" not in text
    assert all(ch == "\n" or ord(ch) >= 0x20 for ch in text)
    assert not any(0x7F <= ord(ch) <= 0x9F for ch in text)


# --- hypothesis strategies -----------------------------------------------------------------------

HOSTILE = [
    "@everyone",
    "@here",
    "<@123456789012345678>",
    "<@&1>",
    "<#1>",
    "<t:1621367760:R>",
    "[x](http://evil.example)",
    "<!channel>",
    "<!here>",
    "<@U123>",
    "<http://evil.example|click>",
    "||spoiler||",
    "**bold**",
    "`code`",
    "```block```",
    "~~strike~~",
    "_it_",
    "> quote",
    "# heading",
    "-# small",
    "1. item",
    "\\",
    "https://evil.example/x",
    "&amp;",
    "\x1b[31m",
    "\x1b]0;title\x07",
    "\u202e",
    "\u200b",
    "שלום עולם",
    "مرحبا",
    "👩‍👩‍👧‍👦",
    "e\u0301\u0302\u0303",
    "😀",
]
_chars = st.characters(exclude_categories=["Cs"])
plain_text = st.text(_chars, max_size=80)
hostile_text = st.lists(st.one_of(plain_text, st.sampled_from(HOSTILE)), max_size=12).map(" ".join)
any_text = st.one_of(
    plain_text,
    hostile_text,
    st.tuples(st.text(_chars, min_size=1, max_size=12), st.integers(1, 900)).map(
        lambda pair: pair[0] * pair[1]  # huge: up to about 10,000 characters
    ),
)
url_paths = st.text(st.sampled_from(string.ascii_letters + "/ ()|<>&%?=#ä😀[]_*"), max_size=60)
http_urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    st.sampled_from(["a.example", "www.b.example", "c.example:8080", "bücher.example"]),
    url_paths,
)
any_urls = st.one_of(
    http_urls,
    st.sampled_from(["javascript:alert(1)", "ftp://x.example/", "", "https://", "not a url"]),
    st.builds(lambda n: "https://long.example/" + "x" * n, st.integers(1000, 4000)),
)
moments = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
)
qualities = st.one_of(
    st.none(), st.floats(min_value=0, max_value=1e12, allow_nan=False), st.just(float("inf"))
)
images = st.lists(
    st.builds(
        Image, url=any_urls, width=st.none() | st.integers(0, 5000), title=st.none() | any_text
    ),
    max_size=3,
).map(tuple)
providers = st.builds(
    Provider, name=any_text, domain=st.sampled_from(["", "x.example"]), images=images
)
related_items = st.builds(
    RelatedCoverage,
    title=any_text,
    web_url=any_urls,
    excerpt=st.just(""),
    amp_web_url=st.none() | any_urls,
    cdn_amp_web_url=st.none() | http_urls,
    published_at=moments,
    provider=st.none() | providers,
    quality=qualities,
)


def _many_related(count: int) -> tuple[RelatedCoverage, ...]:
    # Thousands of items are built directly: generating each with hypothesis would be slow.
    return tuple(
        RelatedCoverage(
            title=f"Story {i} " + "word " * (i % 40),
            web_url=f"https://outlet{i % 997}.example/{i}/" + "p" * (i % 300),
            provider=Provider(name=f"Outlet {i}", domain=""),
            quality=float(i % 170) if i % 3 else None,
        )
        for i in range(count)
    )


related_lists = st.one_of(
    st.lists(related_items, max_size=30).map(tuple),
    st.integers(0, 3000).map(_many_related),
)
articles = st.builds(
    Article,
    key=st.just("https://a.example/"),
    title=any_text,
    web_url=any_urls,
    excerpt=any_text,
    published_at=moments,
    quality=qualities,
    provider=providers,
    topics=st.lists(any_text, max_size=30).map(tuple),
    images=images,
    related=related_lists,
)
styles = st.builds(
    RenderStyle,
    max_related=st.integers(-2, 60),
    show_images=st.booleans(),
    show_quality=st.booleans(),
    show_topics=st.booleans(),
    unfurl_links=st.booleans(),
)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(articles, styles)
def test_any_article_fits_discord(article: Article, style: RenderStyle) -> None:
    check_discord(render_discord(article, style))
    check_embed(render_discord_compact(article, style), 600)


@PROPERTY_SETTINGS
@given(articles, styles)
def test_any_article_fits_slack(article: Article, style: RenderStyle) -> None:
    check_slack(render_slack(article, style))
    check_slack_blocks(render_slack_compact(article, style))


@PROPERTY_SETTINGS
@given(articles, styles)
def test_any_article_is_safe_for_a_terminal(article: Article, style: RenderStyle) -> None:
    check_console(render_console(article, style))


@PROPERTY_SETTINGS
@given(hostile_text, styles)
def test_hostile_text_never_pings_or_links(text: str, style: RenderStyle) -> None:
    article = make_article(
        title=text or "t",
        excerpt=text,
        provider=Provider(name=text, domain="x.example"),
        topics=(text,),
        related=(related("https://r.example/", text, name=text),),
    )
    payload = render_discord(article, style)
    check_discord(payload)  # title and description: every markdown character escaped
    discord = json.dumps(payload, ensure_ascii=False)
    slack = json.dumps(render_slack(article, style).to_payload(), ensure_ascii=False)
    for rendered in (discord, slack):
        assert "@everyone" not in rendered.lower() and "@here" not in rendered.lower()
    for token in ("<@", "<#", "<t:", "<!"):
        assert token not in slack.replace("<!date^", "")
    # In Discord's markdown fields the only masked link is ours, to the related item (author
    # name and footer are plain text there: nothing in them can link).
    (embed,) = payload["embeds"]
    markdown = [embed["title"], embed.get("description", "")]
    markdown += [field["value"] for field in embed.get("fields", [])]
    joined = "\n".join(markdown)
    assert joined.count("](") == joined.count("](https://r.example/)")


@settings(max_examples=200, deadline=None)
@given(any_text, st.integers(-5, 5000))
def test_trim_text_never_exceeds_its_limit(text: str, limit: int) -> None:
    trimmed = trim_text(text, limit)
    assert len(trimmed) <= max(limit, 0)
    collapsed = " ".join(text.split())
    if len(collapsed) <= limit:
        assert trimmed == collapsed
    elif trimmed:
        assert trimmed.endswith("…") and collapsed.startswith(trimmed[:-1])


@settings(max_examples=200, deadline=None)
@given(any_text, st.integers(1, 3000), st.sampled_from([escape_markdown, escape_mrkdwn]))
def test_fit_text_fits_and_does_not_waste_the_space(
    text: str, limit: int, escape: Callable[[str], str]
) -> None:
    fitted = fit_text(clean_text(text), limit, escape)
    assert utf16_len(fitted) <= limit
    whole = escape(clean_text(text))
    if utf16_len(whole) <= limit:
        assert fitted == whole
    elif clean_text(text) and limit >= 12:
        # Escaping at most quintuples a character (`&` -> `&amp;`) and a word-boundary cut
        # keeps at least half, so a fitted text is never starved. (Below 12 units a single
        # escaped character plus "…" may not fit at all.)
        assert fitted and utf16_len(fitted) >= limit // 12


@settings(max_examples=150, deadline=None)
@given(related_lists, st.integers(0, 40))
def test_selection_is_ranked_distinct_and_accounts_for_every_outlet(
    items: tuple[RelatedCoverage, ...], max_related: int
) -> None:
    article = make_article(related=items)
    everything = select_related(article, 10_000).items
    selection = select_related(article, max_related)
    assert selection.items == everything[:max_related]
    assert len(selection.items) + selection.more == len(everything)
    keys = [normalize_url(link.url) for link in everything]
    assert len(keys) == len(set(keys))
    ranks = [(link.quality is None, -(link.quality or 0)) for link in everything]
    assert ranks == sorted(ranks)


# --- the real corpus -----------------------------------------------------------------------------


def test_every_real_article_renders_within_limits(real_articles_dir: Path) -> None:
    paths = sorted(real_articles_dir.glob("*.md"))
    assert len(paths) >= 10 and len(paths) == len(list(real_articles_dir.iterdir()))
    style = RenderStyle()
    for path in paths:
        article = parse_article(path.read_bytes(), str(path))
        check_discord(render_discord(article, style))
        check_embed(render_discord_compact(article, style), 600)
        check_slack(render_slack(article, style))
        check_slack_blocks(render_slack_compact(article, style))
        check_console(render_console(article, style))
