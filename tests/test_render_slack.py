"""Slack: the Block Kit layout, the fallback text, every limit, and hostile article text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.articles import Article, Image, Provider, RelatedCoverage
from bot.render import RenderStyle, SlackMessage, render_slack, render_slack_compact
from bot.render.common import utf16_len
from bot.render.slack import date_token, escape_mrkdwn
from tests.builders import make_article, seed_article

ZW = "\u200b"
LOGO = "https://everyday-cc.github.io/ai/assets/images/organizations/usnews.com-50x50.jpg"


@pytest.fixture
def seed() -> Article:
    return seed_article()


def texts(message: SlackMessage) -> list[str]:
    found = []
    for block in message.blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        found += [e["text"] for e in block.get("elements", []) if e["type"] == "mrkdwn"]
    return found


# --- shape ---------------------------------------------------------------------------------------


def test_seed_article_blocks(seed: Article) -> None:
    message = render_slack(seed, RenderStyle())
    title, context, excerpt, related = message.blocks
    assert title == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": f"*<{seed.web_url}|Exclusive - Amazon Extends Moratorium on Police Use of "
            "Facial Recognition Software>*",
        },
    }
    logo, meta = context["elements"]
    assert logo == {
        "type": "image",
        "image_url": LOGO,
        "alt_text": "U.S. News & World Report",  # plain text: not escaped
    }
    assert meta == {
        "type": "mrkdwn",
        "text": "U.S. News &amp; World Report · <!date^1621367760^{date_short_pretty} {time}"
        "|18 May 2021 19:56 UTC> · Quality 43 · Computer Vision, AI",
    }
    assert excerpt["text"]["text"].startswith("Amazon.com Inc told Reuters")
    assert "accessory" not in excerpt  # the seed has no article image
    lines = related["text"]["text"].split("\n")
    assert lines[0] == "*Also covered by*"
    assert lines[1] == (
        "• <https://www.forbes.com/sites/davidjeans/2021/05/18/amazon-indefinitely-bans-police-"
        "use-of-facial-recognition-technology/|Forbes — Amazon Indefinitely Bans Police Use Of "
        "Facial Recognition Technology>"
    )
    assert len(lines) == 1 + 5 + 1 and lines[-1] == "+7 more"
    assert message.text == (
        "Exclusive - Amazon Extends Moratorium on Police Use of Facial Recognition Software"
        " — U.S. News &amp; World Report"
    )


def test_payload_is_chat_post_message_kwargs(seed: Article) -> None:
    message = render_slack(seed, RenderStyle(unfurl_links=True))
    payload = message.to_payload()
    assert set(payload) == {"text", "blocks", "unfurl_links", "unfurl_media"}
    assert payload["blocks"] == list(message.blocks)
    assert payload["unfurl_links"] is True and payload["unfurl_media"] is True
    assert render_slack(seed, RenderStyle()).to_payload()["unfurl_links"] is False
    json.dumps(payload)


def test_image_is_the_excerpt_accessory_or_beside_the_title_without_excerpt() -> None:
    image = (Image("https://img.example/a.jpg", width=800, title="A <b>photo</b>"),)
    with_excerpt = render_slack(make_article(images=image, excerpt="Words."), RenderStyle())
    accessory = {
        "type": "image",
        "image_url": "https://img.example/a.jpg",
        "alt_text": image[0].title,
    }
    assert with_excerpt.blocks[2]["accessory"] == accessory
    without_excerpt = render_slack(make_article(images=image), RenderStyle())
    assert without_excerpt.blocks[0]["accessory"] == accessory
    assert len(without_excerpt.blocks) == 2  # title, context: no empty sections
    no_images = render_slack(
        make_article(images=image, excerpt="x"), RenderStyle(show_images=False)
    )
    assert all("accessory" not in block for block in no_images.blocks)


def test_style_switches_trim_the_context_line(seed: Article) -> None:
    message = render_slack(
        seed, RenderStyle(max_related=0, show_images=False, show_quality=False, show_topics=False)
    )
    (context,) = [b for b in message.blocks if b["type"] == "context"]
    assert context["elements"] == [
        {
            "type": "mrkdwn",
            "text": "U.S. News &amp; World Report · <!date^1621367760^{date_short_pretty} {time}"
            "|18 May 2021 19:56 UTC>",
        }
    ]
    assert len(message.blocks) == 3  # no related section at all with max_related=0


def test_date_token_uses_epoch_and_a_readable_fallback() -> None:
    moment = datetime(2021, 5, 18, 19, 56, tzinfo=UTC)
    assert date_token(moment) == (
        "<!date^1621367760^{date_short_pretty} {time}|18 May 2021 19:56 UTC>"
    )


def test_compact_blocks_for_a_ten_article_reply(seed: Article) -> None:
    blocks = render_slack_compact(seed, RenderStyle())
    assert [b["type"] for b in blocks] == ["section", "context"]
    assert blocks[0]["text"]["text"].startswith(f"*<{seed.web_url}|Exclusive")
    assert blocks[1]["elements"][-1]["text"].endswith("also covered by 12 outlets")
    assert len(blocks) * 10 <= 50


# --- limits --------------------------------------------------------------------------------------


def test_huge_text_stays_within_block_limits() -> None:
    article = make_article(
        title="*bold* " * 2000,
        excerpt="_x_ & <y> " * 3000,
        provider=Provider(name="P" * 5000, domain="x"),
        topics=tuple(f"t{i}" for i in range(3000)),
        images=(Image("https://img.example/a.jpg", title="alt " * 2000),),
        related=tuple(
            RelatedCoverage(title=f"~s~ {i} " * 40, web_url=f"https://o{i}.example/" + "p" * 200)
            for i in range(2000)
        ),
    )
    message = render_slack(article, RenderStyle(max_related=50))
    assert len(message.blocks) <= 50
    for text in texts(message):
        assert 1 <= utf16_len(text) <= 3000
    assert utf16_len(message.blocks[2]["accessory"]["alt_text"]) <= 2000
    for block in (*message.blocks, *render_slack_compact(article, RenderStyle())):
        assert len(block.get("elements", [])) <= 10
        if block["type"] == "section":
            assert 1 <= utf16_len(block["text"]["text"]) <= 3000


# --- hostile text --------------------------------------------------------------------------------


def test_hostile_title_is_shown_literally_and_cannot_ping_or_link() -> None:
    title = "<!channel> <!here> <@U123> <http://evil|click> & *bold* _it_ ~s~ `c` @here"
    message = render_slack(make_article(title=title, excerpt=title), RenderStyle())
    expected = (
        "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;http://evil|click&gt; &amp; "
        f"{ZW}*{ZW}bold{ZW}*{ZW} {ZW}_{ZW}it{ZW}_{ZW} {ZW}~{ZW}s{ZW}~{ZW} {ZW}`{ZW}c{ZW}`{ZW} "
        f"@{ZW}here"
    )
    assert message.blocks[0]["text"]["text"] == f"*<https://news.example.com/story|{expected}>*"
    assert message.blocks[2]["text"]["text"] == expected
    assert message.text == f"{expected} — Example News"
    rendered = json.dumps(message.to_payload(), ensure_ascii=False)
    for token in ("<!channel>", "<!here>", "<@U123>", "<http://evil", "@here"):
        assert token not in rendered


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a & b < c > d", "a &amp; b &lt; c &gt; d"),
        ("&amp; stays visible", "&amp;amp; stays visible"),
        ("> not a quote", f"{ZW}&gt; not a quote"),
        ("Wall’s “curly” 아크로팬 שלום", "Wall’s “curly” 아크로팬 שלום"),  # noqa: RUF001
    ],
)
def test_escape_mrkdwn(text: str, escaped: str) -> None:
    assert escape_mrkdwn(text) == escaped


def test_link_targets_cannot_break_out_of_the_link() -> None:
    item = RelatedCoverage(
        title="Label|with>pipes",
        web_url="https://ok.example/a|b>c d?x=1&y=2",
        provider=Provider(name="Outlet", domain=""),
    )
    message = render_slack(make_article(related=(item,)), RenderStyle())
    assert message.blocks[-1]["text"]["text"] == (
        "*Also covered by*\n"
        "• <https://ok.example/a%7Cb%3Ec%20d?x=1&amp;y=2|Outlet — Label|with&gt;pipes>"
    )


def test_non_http_article_link_is_not_linked() -> None:
    message = render_slack(make_article(web_url="javascript:alert(1)"), RenderStyle())
    assert message.blocks[0]["text"]["text"] == "*A story*"
