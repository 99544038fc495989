"""An article as a Slack Block Kit message (blocks + fallback text), within Slack's limits.

Article text is untrusted: `&`, `<` and `>` are escaped (which defuses `<!channel>`, `<@U…>` and
`<url|label>` injection) and the mrkdwn formatting characters are fenced with zero-width spaces,
so a title shows exactly as written and cannot bold, strike, quote or code-format anything.

A breaking story (or a digest listing one) of a subscription with a `mention` pings that user
group: `<!subteam^ID>` in our own words, in the text and the first block. Article text, escaped,
can form no mention of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.articles import Article
from bot.digest import Digest, DigestStory
from bot.render.common import (
    ZWSP,
    RelatedLink,
    as_utc,
    clean_text,
    coverage_label,
    display_title,
    first_image_url,
    fit_related_lines,
    fit_text,
    format_quality,
    format_time,
    more_label,
    outlet_name,
    outlets_label,
    quality_label,
    related_label,
    safe_link_url,
    select_related,
    topics_label,
    trim_text,
    utf16_len,
)
from bot.render.style import RenderStyle

# Slack's limits.
BLOCKS_LIMIT = 50
SECTION_TEXT_LIMIT = 3000
CONTEXT_ELEMENTS_LIMIT = 10
ALT_TEXT_LIMIT = 2000
IMAGE_URL_LIMIT = 3000
HEADER_LIMIT = 150

# Our own budgets, well inside the limits (real titles run to 160 characters, excerpts to 350).
TITLE_BUDGET = 400
EXCERPT_BUDGET = 700
# The context line: outlet 200 + date token about 80 + quality 20 + topics 400 < 3000.
OUTLET_BUDGET = 200
TOPICS_BUDGET = 400
# A link target longer than this is shown unlinked, so a section always stays within 3000.
LINK_TARGET_LIMIT = 2000
FALLBACK_BUDGET = 400
COMPACT_TITLE_BUDGET = 200
COMPACT_EXCERPT_BUDGET = 200
RELATED_HEADING = "*Also covered by*"

DIGEST_TITLE_BUDGET = 400
DIGEST_OUTLET_BUDGET = 60
BREAKING_WORDS = "Breaking story"
DIGEST_BREAKING_WORDS = "Breaking news in this digest"

_SUBTEAM_ID = re.compile(r"S[A-Z0-9]{2,20}")  # a user group id; config and chat check the same
_FORMATTING = re.compile(r"[*_~`]")
_MASS_MENTION = re.compile(r"@(?=channel|here|everyone)", re.IGNORECASE)


def escape_entities(text: str) -> str:
    """`&`, `<` and `>` as Slack's text rules require: literal text, never a link, mention or
    `<!channel>`. Enough for our own words; article text needs `escape_mrkdwn`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_mrkdwn(text: str) -> str:
    """Article text made inert in Slack mrkdwn (and in the fallback `text`)."""
    text = escape_entities(text)
    # A zero-width space on each side: the character shows, but is never at a word boundary,
    # which is where Slack's `*bold*`, `_italic_`, `~strike~` and `code` start and end.
    text = _FORMATTING.sub(lambda m: f"{ZWSP}{m.group()}{ZWSP}", text)
    # `@channel` as plain text notifies only with link_names, which we never set: belt and braces.
    text = _MASS_MENTION.sub("@" + ZWSP, text)
    # Slack reads a leading "&gt;" as a block quote.
    return ZWSP + text if text.startswith("&gt;") else text


def link_target(url: str) -> str:
    """A `safe_link_url` result for `<url|label>`: `|`, `<`, `>` are already percent-encoded;
    `&` is written `&amp;` as in all Slack text (Slack decodes it back)."""
    return url.replace("&", "&amp;")


def _link(url: str | None, label: str) -> str:
    target = link_target(url) if url else ""
    return f"<{target}|{label}>" if target and len(target) <= LINK_TARGET_LIMIT else label


def date_token(moment: datetime) -> str:
    """Slack's date formatting: each reader sees the time in their own time zone; the fallback
    after `|` is shown by clients that cannot format it."""
    epoch = int(as_utc(moment).timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{format_time(moment)}>"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # the fallback for notifications and screen readers: plain words, escaped
    blocks: tuple[dict[str, Any], ...]
    unfurl_links: bool
    unfurl_media: bool

    def to_payload(self) -> dict[str, Any]:
        """Keyword arguments for `chat.postMessage` (the adapter adds `channel`)."""
        return {
            "text": self.text,
            "blocks": list(self.blocks),
            "unfurl_links": self.unfurl_links,
            "unfurl_media": self.unfurl_media,
        }


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": _mrkdwn(text)}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def _image(url: str, alt_text: str) -> dict[str, Any]:
    # alt_text is plain text (never parsed), so it is cleaned and trimmed but not escaped.
    alt = trim_text(clean_text(alt_text), ALT_TEXT_LIMIT, measure=utf16_len) or "image"
    return {"type": "image", "image_url": url, "alt_text": alt}


def _article_image(article: Article, style: RenderStyle) -> dict[str, Any] | None:
    found = first_image_url(article.images) if style.show_images else None
    if found is None or len(found[0]) > IMAGE_URL_LIMIT:
        return None
    url, info = found
    return _image(url, info.title or display_title(article))


def _title_text(article: Article, budget: int) -> str:
    title = fit_text(display_title(article), budget, escape_mrkdwn)
    return f"*{_link(safe_link_url(article.web_url), title)}*"


def _meta_parts(article: Article, style: RenderStyle) -> list[str]:
    """The context line: outlet · time · quality · topics (escaped mrkdwn pieces)."""
    parts = [fit_text(outlet_name(article), OUTLET_BUDGET, escape_mrkdwn)]
    if article.published_at is not None:
        parts.append(date_token(article.published_at))
    quality = quality_label(article)
    if style.show_quality and quality:
        parts.append(quality)
    topics = topics_label(article) if style.show_topics else ""
    if topics:
        parts.append(fit_text(topics, TOPICS_BUDGET, escape_mrkdwn))
    return [p for p in parts if p]


def _context(article: Article, style: RenderStyle, extra: str = "") -> dict[str, Any] | None:
    elements: list[dict[str, Any]] = []
    logo = first_image_url(article.provider.images) if style.show_images else None
    if logo is not None and len(logo[0]) <= IMAGE_URL_LIMIT:
        elements.append(_image(logo[0], outlet_name(article) or "logo"))
    meta = " · ".join([*_meta_parts(article, style), *([extra] if extra else [])])
    if meta:
        elements.append(_mrkdwn(meta))
    return {"type": "context", "elements": elements[:CONTEXT_ELEMENTS_LIMIT]} if elements else None


def _related_line(link: RelatedLink, headline_limit: int) -> str:
    return f"• {_link(link.url, escape_mrkdwn(related_label(link, headline_limit)))}"


def _related_section(article: Article, style: RenderStyle) -> dict[str, Any] | None:
    heading = RELATED_HEADING + "\n"
    lines = fit_related_lines(
        select_related(article, style.max_related),
        _related_line,
        more_label,
        SECTION_TEXT_LIMIT - utf16_len(heading),
    )
    return _section(heading + "\n".join(lines)) if lines else None


def mention_tag(mention: str | None) -> str:
    """`<!subteam^ID>`, which pings the user group, or "" (no mention, or not a group id)."""
    if mention is None or _SUBTEAM_ID.fullmatch(mention) is None:
        return ""
    return f"<!subteam^{mention}>"


def _with_mention(
    text: str, blocks: list[dict[str, Any]], mention: str | None, words: str, at: int = 0
) -> tuple[str, list[dict[str, Any]]]:
    """The ping leads the text (notifications) and shows as a section at block `at`."""
    tag = mention_tag(mention)
    if not tag:
        return text, blocks
    return f"{tag} {text}", [*blocks[:at], _section(f"{tag} {words}"), *blocks[at:]]


def _fallback_text(article: Article) -> str:
    title = fit_text(display_title(article), FALLBACK_BUDGET, escape_mrkdwn)
    outlet = fit_text(outlet_name(article), 100, escape_mrkdwn)
    return f"{title} — {outlet}" if outlet else title


def render_slack(
    article: Article, style: RenderStyle, mention: str | None = None
) -> SlackMessage:
    """The Block Kit message for `article`: linked title, context line, excerpt with the image
    beside it, then the other outlets that covered the story; led by a ping of the user group
    `mention` (a breaking story)."""
    image = _article_image(article, style)
    excerpt = fit_text(clean_text(article.excerpt), EXCERPT_BUDGET, escape_mrkdwn)
    # With no excerpt the image sits beside the title instead (a section needs some text).
    blocks: list[dict[str, Any] | None] = [
        _section(_title_text(article, TITLE_BUDGET), None if excerpt else image),
        _context(article, style),
        _section(excerpt, image) if excerpt else None,
        _related_section(article, style),
    ]
    text, listed = _with_mention(
        _fallback_text(article), [b for b in blocks if b is not None], mention, BREAKING_WORDS
    )
    return SlackMessage(
        text=text,
        blocks=tuple(listed)[:BLOCKS_LIMIT],
        # One switch for both: our card already shows the story, a preview would repeat it.
        unfurl_links=style.unfurl_links,
        unfurl_media=style.unfurl_links,
    )


def _digest_section(rank: int, story: DigestStory, style: RenderStyle) -> dict[str, Any]:
    """`1. *<url|Title>*` then `Outlet · 5 outlets · Quality 93`."""
    headline = story.headline
    title = fit_text(display_title(headline), DIGEST_TITLE_BUDGET, escape_mrkdwn) or "Article"
    parts = ["Breaking"] if story.breaking else []
    parts.append(fit_text(outlet_name(headline), DIGEST_OUTLET_BUDGET, escape_mrkdwn))
    parts.append(outlets_label(story.facts.outlets))
    if style.show_quality and story.facts.quality is not None:
        parts.append(f"Quality {format_quality(story.facts.quality)}")
    line = " · ".join(p for p in parts if p)
    return _section(f"{rank}. *{_link(safe_link_url(headline.web_url), title)}*\n{line}")


def render_slack_digest(
    digest: Digest, style: RenderStyle, mention: str | None = None
) -> SlackMessage:
    """A digest: a header, then a section per story (linked title, outlet, how many outlets,
    quality) and "+K more"; at most 10 stories, so far inside the 50 blocks. `mention` pings
    a user group (the digest lists a breaking story)."""
    total = len(digest.stories) + digest.more
    header = trim_text(digest.title, HEADER_LIMIT, measure=utf16_len) or "Digest"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}}
    ]
    blocks += [_digest_section(n, story, style) for n, story in enumerate(digest.stories, 1)]
    if digest.more:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"+{digest.more} more")]})
    noun = "story" if total == 1 else "stories"
    text, listed = _with_mention(
        f"{escape_entities(digest.title)}: {total} {noun} since the last digest",
        blocks, mention, DIGEST_BREAKING_WORDS, at=1,  # under the header
    )
    return SlackMessage(
        text=text,
        blocks=tuple(listed)[:BLOCKS_LIMIT],
        unfurl_links=False,  # a list of links would unfurl into a wall of previews
        unfurl_media=False,
    )


def render_slack_compact(article: Article, style: RenderStyle) -> tuple[dict[str, Any], ...]:
    """Two blocks (title with a short excerpt and thumbnail, then one context line) for lists
    such as `/news` replies: ten articles stay well under the 50-block limit."""
    text = _title_text(article, COMPACT_TITLE_BUDGET)
    excerpt = fit_text(clean_text(article.excerpt), COMPACT_EXCERPT_BUDGET, escape_mrkdwn)
    if excerpt:
        text += "\n" + excerpt
    extra = coverage_label(article, style.max_related)
    blocks = [_section(text, _article_image(article, style)), _context(article, style, extra)]
    return tuple(b for b in blocks if b is not None)
