"""A digest and what is breaking, as pure rules: outlets counted, stories ranked by quality and
outlets, the top ten listed; when a new post may go (quiet hours, breaking); and each
platform's digest message within its limits, its article text inert, pinging only the one
mention it is given."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.articles import Article, Provider, RelatedCoverage
from bot.breaking import BreakingRule, StoryFacts, outlets_of, story_facts
from bot.digest import MAX_STORIES, DigestStory, build_digest, digest_title, pick_headline
from bot.outbox import HELD_BY_QUIET_HOURS, post_timing
from bot.render import RenderStyle
from bot.render.common import utf16_len
from bot.render.console import render_console_digest
from bot.render.discord import (
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    embed_text_length,
    render_discord,
    render_discord_digest,
)
from bot.render.slack import render_slack, render_slack_digest
from bot.schedule_time import DeliveryMode, QuietHours
from bot.subscriptions import Subscription
from tests.builders import make_article
from tests.fakes.slack_server import validate_blocks
from tests.test_render_properties import (
    articles,
    check_console,
    check_mrkdwn,
    styles,
    unescaped_discord_specials,
)

ROLE = "123456789012345678"
GROUP = "S0614TZR7"
HOSTILE = "@everyone <@&999999999999999999> <@42> <!channel> <!subteam^SEVIL> [x](http://evil.test)"


def article(slug: str, outlet: str, quality: float | None = 80.0, **kwargs: object) -> Article:
    return make_article(
        key=f"https://{outlet}.example/{slug}",
        web_url=f"https://{outlet}.example/{slug}",
        title=kwargs.pop("title", f"Story {slug}"),
        quality=quality,
        provider=Provider(name=f"{outlet.title()} News", domain=f"{outlet}.example"),
        published_at=kwargs.pop("published_at", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        **kwargs,
    )


def related(url: str, domain: str | None = None) -> RelatedCoverage:
    provider = Provider(name=domain or "", domain=domain) if domain is not None else None
    return RelatedCoverage(title="Same story", web_url=url, provider=provider)


# --- outlets, facts, breaking -----------------------------------------------------------------


def test_outlets_are_counted_by_domain_over_articles_and_their_related_coverage() -> None:
    first = article("a", "alpha", related=(
        related("https://www.beta.example/x"),  # no provider: the link's domain, www. dropped
        related("https://gamma.example/y", "Gamma.Example"),  # the provider's, case-folded
        related("https://alpha.example/other"),  # the same outlet again
    ))
    second = article("b", "beta", quality=None)
    assert outlets_of([first, second]) == {"alpha.example", "beta.example", "gamma.example"}
    assert story_facts([first, second]) == StoryFacts(quality=80.0, outlets=3)
    assert story_facts([second]) == StoryFacts(quality=None, outlets=1)


@pytest.mark.parametrize(
    ("facts", "breaking"),
    [
        (StoryFacts(119.9, 3), False),
        (StoryFacts(120.0, 1), True),
        (StoryFacts(None, 4), True),
        (StoryFacts(None, 3), False),
    ],
)
def test_the_breaking_rule(facts: StoryFacts, breaking: bool) -> None:
    assert BreakingRule(quality=120.0, outlets=4).applies(facts) is breaking


# --- when a new post goes ---------------------------------------------------------------------

QUIET = Subscription(
    1, "discord", "1", quiet_hours=QuietHours.parse("22:00-07:00"), timezone="Europe/Berlin",
    mention=ROLE,
)
NIGHT = datetime(2026, 1, 14, 22, 30, tzinfo=UTC).timestamp()  # 23:30 in Berlin
DAY = datetime(2026, 1, 14, 12, 0, tzinfo=UTC).timestamp()
MORNING = datetime(2026, 1, 15, 6, 0, tzinfo=UTC).timestamp()  # 07:00 in Berlin


def test_quiet_hours_hold_a_post_until_they_end_unless_it_is_breaking() -> None:
    plain = StoryFacts(80.0, 1)
    held = post_timing(QUIET, plain, NIGHT)
    assert (held.due_at, held.held_by, held.mention, held.breaking) == (
        MORNING, HELD_BY_QUIET_HOURS, None, False,
    )
    assert post_timing(QUIET, plain, DAY).due_at == DAY
    for facts in (StoryFacts(150.0, 1), StoryFacts(50.0, 4)):
        breaking = post_timing(QUIET, facts, NIGHT)
        assert (breaking.due_at, breaking.held_by, breaking.mention) == (NIGHT, None, ROLE)
    # Without a mention a breaking story still goes at once, pinging nobody.
    no_mention = Subscription(1, "discord", "1", quiet_hours=QUIET.quiet_hours,
                              timezone="Europe/Berlin")
    assert post_timing(no_mention, StoryFacts(150.0, 1), NIGHT).due_at == NIGHT
    assert post_timing(no_mention, StoryFacts(150.0, 1), NIGHT).mention is None


# --- building a digest ------------------------------------------------------------------------


def story(n: int, quality: float | None, outlets: int, breaking: bool = False) -> DigestStory:
    headline = article(f"s{n}", f"outlet{n}", quality=quality, title=f"Story {n}")
    return DigestStory(n, headline, StoryFacts(quality, outlets), breaking)


def test_stories_rank_by_quality_and_outlets_and_the_top_ten_are_listed() -> None:
    stories = [
        story(1, 100.0, 1),  # 100
        story(2, 60.0, 5),  # 60 + 4 * 15 = 120
        story(3, None, 6),  # 0 + 75 = 75
        story(4, 85.0, 2),  # 100, more outlets than story 1: ahead of it
        *[story(10 + n, 10.0 + n, 1) for n in range(10)],
    ]
    digest = build_digest(DeliveryMode.DAILY, DAY, "UTC", stories)
    assert [s.story_id for s in digest.stories][:4] == [2, 4, 1, 3]
    assert len(digest.stories) == MAX_STORIES and digest.more == len(stories) - MAX_STORIES
    assert not digest.has_breaking
    assert build_digest(DeliveryMode.DAILY, DAY, "UTC", [story(1, 50.0, 1, True)]).has_breaking


def test_the_headline_is_the_best_scored_article() -> None:
    first, best = article("a", "a", 60.0), article("b", "b", 90.0)
    unscored = article("c", "c", None)
    assert pick_headline([unscored, first, best]) is best
    assert pick_headline([unscored]) is unscored
    tie = article("d", "d", 90.0)
    assert pick_headline([best, tie]) is best  # the first seen on a tie


def test_digest_titles_in_the_subscriptions_zone() -> None:
    at = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)  # a Sunday; 08:00 in Berlin
    assert digest_title(DeliveryMode.DAILY, at, "Europe/Berlin") == "Daily digest · Sun 29 Nov 2026"
    assert digest_title(DeliveryMode.HOURLY, at, "Europe/Berlin") == (
        "Hourly digest · Sun 29 Nov 2026 08:00 CET"
    )
    # 23:00 UTC on Saturday is already Sunday in Tokyo.
    late = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    assert digest_title(DeliveryMode.DAILY, late, "Asia/Tokyo").endswith("Sun 29 Nov 2026")


# --- rendering --------------------------------------------------------------------------------


def huge_digest(breaking: bool = False) -> list[DigestStory]:
    """Ten stories with the longest titles, outlets and links a digest could meet, hostile."""
    stories = []
    for n in range(12):
        long_url = f"https://outlet{n}.example/" + "path/" * 300
        headline = make_article(
            key=long_url, web_url=long_url, title=(HOSTILE + " ") * 20, quality=150.0,
            provider=Provider(name=HOSTILE * 5, domain=f"outlet{n}.example"),
        )
        stories.append(DigestStory(n, headline, StoryFacts(150.0, 9), breaking))
    return stories


def test_a_discord_digest_stays_within_every_limit_and_pings_only_its_role() -> None:
    digest = build_digest(DeliveryMode.DAILY, DAY, "UTC", huge_digest(breaking=True))
    payload = render_discord_digest(digest, RenderStyle(), ROLE)
    [embed] = payload["embeds"]
    assert utf16_len(embed["description"]) <= DESCRIPTION_LIMIT
    assert embed_text_length(embed) <= EMBED_TOTAL_LIMIT
    assert utf16_len(embed["title"]) <= 256
    assert payload["content"] == f"<@&{ROLE}> Breaking news in this digest"
    assert payload["allowed_mentions"] == {"parse": [], "roles": [ROLE]}
    text = embed["description"]
    # Article text can neither mention, ping nor link: every `<` and `[` of it is escaped
    # (a backslash before it), `@everyone` is broken, and no link goes to the evil host.
    assert re.search(r"(?<!\\)<", text) is None
    assert "@everyone" not in text and "](http://evil" not in text
    assert text.count("](https://outlet") == len(re.findall(r"(?<!\\)\[", text))
    assert re.search(r"\+\d+ more$", text)  # the stories left out are counted
    quiet = render_discord_digest(digest, RenderStyle(), None)
    assert "content" not in quiet and quiet["allowed_mentions"] == {"parse": []}


def test_a_discord_digest_lists_each_story_with_its_link_and_outlets() -> None:
    digest = build_digest(DeliveryMode.DAILY, DAY, "UTC", [story(1, 93.0, 5), story(2, 40.0, 1)])
    [embed] = render_discord_digest(digest, RenderStyle(), None)["embeds"]
    first, second = embed["description"].split("\n\n")
    assert first == (
        "1. **[Story 1](https://outlet1.example/s1)**\nOutlet1 News · 5 outlets · Quality 93"
    )
    assert second.startswith("2. **[Story 2](https://outlet2.example/s2)**\n")
    assert "1 outlet ·" in second
    assert embed["footer"]["text"].startswith("2 stories since the last digest")


def test_a_breaking_discord_post_pings_exactly_its_role() -> None:
    hostile = article("h", "alpha", title=HOSTILE, excerpt=HOSTILE)
    payload = render_discord(hostile, RenderStyle(), ROLE)
    assert payload["content"] == f"<@&{ROLE}> Breaking story"
    assert payload["allowed_mentions"] == {"parse": [], "roles": [ROLE]}
    plain = render_discord(hostile, RenderStyle())
    assert "content" not in plain and plain["allowed_mentions"] == {"parse": []}
    # Something that is not a role id never reaches the markup.
    assert "content" not in render_discord(hostile, RenderStyle(), "everyone")


def test_a_slack_digest_is_valid_block_kit_and_pings_only_its_group() -> None:
    digest = build_digest(DeliveryMode.HOURLY, DAY, "Europe/Berlin", huge_digest(breaking=True))
    payload = render_slack_digest(digest, RenderStyle(), GROUP).to_payload()
    assert validate_blocks(payload["blocks"]) == []
    assert payload["text"].startswith(f"<!subteam^{GROUP}> Hourly digest")
    tags = re.findall(r"<!subteam\^[^>]*>", str(payload))
    assert tags and set(tags) == {f"<!subteam^{GROUP}>"}  # the article's own is escaped
    assert "<!channel>" not in str(payload) and "<@42>" not in str(payload)
    assert payload["blocks"][-1] == {
        "type": "context", "elements": [{"type": "mrkdwn", "text": "+2 more"}],
    }
    quiet = render_slack_digest(digest, RenderStyle(), None).to_payload()
    assert "subteam" not in str(quiet).replace("!subteam^SEVIL", "")


def test_a_breaking_slack_post_leads_with_the_group() -> None:
    hostile = article("h", "alpha", title=HOSTILE)
    message = render_slack(hostile, RenderStyle(), GROUP).to_payload()
    assert message["text"].startswith(f"<!subteam^{GROUP}> ")
    assert message["blocks"][0]["text"]["text"] == f"<!subteam^{GROUP}> Breaking story"
    assert validate_blocks(message["blocks"]) == []
    assert "subteam" not in str(render_slack(hostile, RenderStyle()).to_payload()).replace(
        "&lt;!subteam^SEVIL&gt;", ""
    )


def test_the_console_digest() -> None:
    digest = build_digest(DeliveryMode.DAILY, DAY, "UTC", [story(1, 93.0, 5, breaking=True)])
    text = render_console_digest(digest, RenderStyle())
    assert text.splitlines() == [
        "Daily digest · Wed 14 Jan 2026",
        "",
        "1. Story 1",
        "   Breaking · Outlet1 News · 5 outlets · Quality 93",
        "   https://outlet1.example/s1",
    ]


# --- any stories, any text: every digest fits and stays inert --------------------------------

_DIGEST_LINK = re.compile(r"\d+\. \*\*\[(?P<title>(?:[^\[\]\\]|\\.)*)\]\(https?://[^\s()<>]+\)\*\*")
_DIGEST_PLAIN = re.compile(r"\d+\. \*\*(?P<title>(?:[^*\\]|\\.)*)\*\*")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(articles, min_size=1, max_size=12), styles, st.booleans())
def test_any_digest_fits_discord_and_slack_and_stays_inert(
    headlines: list[Article], style: RenderStyle, breaking: bool
) -> None:
    stories = [
        DigestStory(n, a, StoryFacts(a.quality, n % 7 + 1), breaking and n % 2 == 0)
        for n, a in enumerate(headlines)
    ]
    digest = build_digest(DeliveryMode.HOURLY, DAY, "Europe/Berlin", stories)
    payload = render_discord_digest(digest, style, ROLE if digest.has_breaking else None)
    [embed] = payload["embeds"]
    assert 1 <= utf16_len(embed["description"]) <= DESCRIPTION_LIMIT
    assert embed_text_length(embed) <= EMBED_TOTAL_LIMIT
    for entry in embed["description"].split("\n\n"):
        head, _, meta = entry.partition("\n")
        if re.fullmatch(r"\+\d+ more", head):
            continue
        match = _DIGEST_LINK.fullmatch(head) or _DIGEST_PLAIN.fullmatch(head)
        assert match is not None, head
        assert not unescaped_discord_specials(match["title"]) and meta
        assert not unescaped_discord_specials(meta)
    assert "@everyone" not in json.dumps(payload).lower().replace("@\\u200beveryone", "")
    if digest.has_breaking:
        assert payload["allowed_mentions"] == {"parse": [], "roles": [ROLE]}
    message = render_slack_digest(digest, style, GROUP if digest.has_breaking else None)
    assert validate_blocks(list(message.blocks)) == []
    header, *rest = message.blocks
    assert header["type"] == "header" and utf16_len(header["text"]["text"]) <= 150
    for block in rest:
        texts = [block["text"]["text"]] if block["type"] == "section" else [
            e["text"] for e in block["elements"]
        ]
        for text in texts:
            check_mrkdwn(text.replace(f"<!subteam^{GROUP}>", ""))
    check_console(render_console_digest(digest, style))
