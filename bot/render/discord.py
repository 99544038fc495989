"""An article as a Discord Create Message payload (one embed), within every Discord limit.

Article text is untrusted. Markdown-rendering fields (title, description, field values) are
escaped so nothing the file says can format text, form a link or show a mention; the plain-text
fields (author name, footer) only get `@everyone`/`@here` broken. `allowed_mentions` with an
empty `parse` is the second lock: even a mention that slipped through would not ping.

A breaking story (or a digest listing one) of a subscription with a `mention` pings that role
and nothing else: the message `content` is only our words and `<@&ROLE>`, and
`allowed_mentions` names exactly that role (`parse` stays empty), so no article text can ping.
"""

from __future__ import annotations

import re
from typing import Any

from bot.articles import Article
from bot.digest import Digest, DigestStory
from bot.render.common import (
    ZWSP,
    RelatedLink,
    clean_text,
    coverage_label,
    display_title,
    first_image_url,
    fit_lines,
    fit_related_lines,
    fit_text,
    format_quality,
    iso_time,
    more_label,
    outlet_name,
    outlets_label,
    quality_label,
    related_label,
    safe_link_url,
    select_related,
    topic_colour,
    topics_label,
    utf16_len,
)
from bot.render.style import RenderStyle

# Discord's limits (characters; we count UTF-16 units, which is never fewer).
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
EMBED_TOTAL_LIMIT = 6000
COMPACT_TOTAL_LIMIT = EMBED_TOTAL_LIMIT // 10  # up to 10 compact embeds share one message

# Our own, tighter budgets. Real excerpts run to about 350 characters; real titles to 160.
# Full embed: 256 + 700 + 1024 + 15 + 300 + 256 = 2551, far below the 6000 total.
EXCERPT_BUDGET = 700
FOOTER_BUDGET = 300
RELATED_FIELD_NAME = "Also covered by"
# Compact embed: 150 + 260 + 64 + 100 = 574, below the 600 share of a 10-embed message.
COMPACT_TITLE_BUDGET = 150
COMPACT_DESCRIPTION_BUDGET = 260
COMPACT_AUTHOR_BUDGET = 64
COMPACT_FOOTER_BUDGET = 100
THUMBNAIL_BELOW_WIDTH = 400  # smaller images look better as a thumbnail than stretched

# Markdown characters that are syntax anywhere in a line. `<` starts mentions (`<@1>`, `<@&1>`,
# `<#1>`), timestamps (`<t:1>`) and custom emoji; `[`, `]`, `(`, `)` form masked links.
_INLINE = re.compile(r"([\\*_~`|<>\[\]()])")
# Syntax only at the start of a line: headings `#`, subtext `-#`, lists `-`/`+` and `1.`.
# (Digits cannot be backslash-escaped in Discord, so a list number has its dot escaped.)
_LINE_START_MARK = re.compile(r"^(\s*)([#\-+])", re.MULTILINE)
_LINE_START_NUMBER = re.compile(r"^(\s*\d+)\.", re.MULTILINE)
# `scheme://` would let a bare URL auto-link; an escaped colon keeps it plain text.
_SCHEME = re.compile(r"(?<=[A-Za-z0-9])://")
_MASS_MENTION = re.compile(r"@(?=everyone|here)", re.IGNORECASE)
_ROLE_ID = re.compile(r"\d{1,20}")  # a snowflake; config and chat check the same
BREAKING_WORDS = "Breaking story"
DIGEST_BREAKING_WORDS = "Breaking news in this digest"
DIGEST_TITLE_BUDGET = 200  # a story's title in a digest (real titles run to 160)
DIGEST_OUTLET_BUDGET = 60


def break_mentions(text: str) -> str:
    """`@everyone`/`@here` with a zero-width space after the `@`: shown the same, never a ping."""
    return _MASS_MENTION.sub("@" + ZWSP, text)


def escape_markdown(text: str) -> str:
    """Article text made inert in Discord markdown: it shows as written, and cannot format,
    link, mention, spoil or quote."""
    text = _INLINE.sub(r"\\\1", text)
    text = _LINE_START_MARK.sub(r"\1\\\2", text)
    text = _LINE_START_NUMBER.sub(r"\1\\.", text)
    return break_mentions(_SCHEME.sub(r"\\://", text))


def _plain(text: str) -> str:
    # Author names and footers are not markdown in Discord: a backslash would show as-is.
    return break_mentions(text)


def mention_fields(mention: str | None, words: str) -> dict[str, Any]:
    """`content` that pings exactly the role `mention` (with our `words`), and the
    `allowed_mentions` that let it and nothing else ping; without one, nothing pings."""
    if mention is None or _ROLE_ID.fullmatch(mention) is None:
        return {"allowed_mentions": {"parse": []}}
    return {
        "content": f"<@&{mention}> {words}",
        "allowed_mentions": {"parse": [], "roles": [mention]},
    }


def _related_line(link: RelatedLink, headline_limit: int) -> str:
    return f"• [{escape_markdown(related_label(link, headline_limit))}]({link.url})"


def _related_field(article: Article, style: RenderStyle) -> dict[str, Any] | None:
    selection = select_related(article, style.max_related)
    lines = fit_related_lines(
        selection,
        _related_line,
        more_label,  # our own words: "+7" is not list syntax, so nothing to escape
        FIELD_VALUE_LIMIT,
    )
    if not lines:
        return None
    return {"name": RELATED_FIELD_NAME, "value": "\n".join(lines), "inline": False}


def _footer_text(article: Article, style: RenderStyle) -> str:
    parts: list[str] = []
    quality = quality_label(article)
    if style.show_quality and quality:
        parts.append(quality)
    topics = topics_label(article) if style.show_topics else ""
    if topics:
        parts.append(topics)
    return " · ".join(parts)


def _author(article: Article, style: RenderStyle, budget: int) -> dict[str, Any] | None:
    name = fit_text(outlet_name(article), budget, _plain)
    if not name:
        return None
    author: dict[str, Any] = {"name": name}
    logo = first_image_url(article.provider.images) if style.show_images else None
    if logo is not None:
        author["icon_url"] = logo[0]
    return author


def _base_embed(article: Article, title_budget: int) -> dict[str, Any]:
    embed: dict[str, Any] = {
        "title": fit_text(display_title(article), title_budget, escape_markdown) or "Article"
    }
    url = safe_link_url(article.web_url)
    if url is not None:
        embed["url"] = url
    return embed


def _finish(embed: dict[str, Any], article: Article) -> dict[str, Any]:
    if article.published_at is not None:
        embed["timestamp"] = iso_time(article.published_at)
    embed["color"] = topic_colour(article)
    return embed


def render_discord(
    article: Article, style: RenderStyle, mention: str | None = None
) -> dict[str, Any]:
    """The Create Message JSON for `article`: one embed; no pings but `mention`, a role id (a
    breaking story). The adapter adds the nonce."""
    embed = _base_embed(article, TITLE_LIMIT)
    description = fit_text(clean_text(article.excerpt), EXCERPT_BUDGET, escape_markdown)
    if description:
        embed["description"] = description
    author = _author(article, style, AUTHOR_LIMIT)
    if author is not None:
        embed["author"] = author
    image = first_image_url(article.images) if style.show_images else None
    if image is not None:
        url, info = image
        small = info.width is not None and info.width < THUMBNAIL_BELOW_WIDTH
        embed["thumbnail" if small else "image"] = {"url": url}
    field = _related_field(article, style)
    if field is not None:
        embed["fields"] = [field]
    footer = fit_text(_footer_text(article, style), FOOTER_BUDGET, _plain)
    if footer:
        embed["footer"] = {"text": footer}
    return {"embeds": [_finish(embed, article)], **mention_fields(mention, BREAKING_WORDS)}


def _digest_line(rank: int, story: DigestStory, style: RenderStyle) -> str:
    """`1. **[Title](url)**` then `Outlet · 5 outlets · Quality 93`."""
    headline = story.headline
    title = fit_text(display_title(headline), DIGEST_TITLE_BUDGET, escape_markdown) or "Article"
    url = safe_link_url(headline.web_url)
    parts = ["Breaking"] if story.breaking else []
    parts.append(fit_text(outlet_name(headline), DIGEST_OUTLET_BUDGET, escape_markdown))
    parts.append(outlets_label(story.facts.outlets))
    if style.show_quality and story.facts.quality is not None:
        parts.append(f"Quality {format_quality(story.facts.quality)}")
    link = f"**[{title}]({url})**" if url else f"**{title}**"
    return f"{rank}. {link}\n" + " · ".join(p for p in parts if p)


def render_discord_digest(
    digest: Digest, style: RenderStyle, mention: str | None = None
) -> dict[str, Any]:
    """A digest as one embed: its title, then a numbered line per story (linked title, outlet,
    how many outlets, quality), within the description's 4096; `mention` pings a role (the
    digest lists a breaking story)."""
    lines = [
        _digest_line(rank, story, style) for rank, story in enumerate(digest.stories, start=1)
    ]
    kept = fit_lines(lines, lambda n: f"+{n} more", DESCRIPTION_LIMIT, digest.more,
                     separator="\n\n")
    total = len(digest.stories) + digest.more
    embed: dict[str, Any] = {
        "title": fit_text(digest.title, TITLE_LIMIT, escape_markdown) or "Digest",
        "description": "\n\n".join(kept) or "No stories.",
        "footer": {"text": f"{total} {'story' if total == 1 else 'stories'} since the last "
                   "digest, ranked by quality and outlets"},
    }
    if digest.stories:
        embed["color"] = topic_colour(digest.stories[0].headline)
    return {"embeds": [embed], **mention_fields(mention, DIGEST_BREAKING_WORDS)}


def render_discord_compact(article: Article, style: RenderStyle) -> dict[str, Any]:
    """One small embed (under 600 characters of text) for lists such as `/news` replies."""
    embed = _base_embed(article, COMPACT_TITLE_BUDGET)
    description = fit_text(clean_text(article.excerpt), COMPACT_DESCRIPTION_BUDGET, escape_markdown)
    if description:
        embed["description"] = description
    author = _author(article, style, COMPACT_AUTHOR_BUDGET)
    if author is not None:
        author.pop("icon_url", None)  # ten logos in one reply are noise
        embed["author"] = author
    image = first_image_url(article.images) if style.show_images else None
    if image is not None:
        embed["thumbnail"] = {"url": image[0]}
    parts = [_footer_text(article, style), coverage_label(article, style.max_related)]
    footer = fit_text(" · ".join(p for p in parts if p), COMPACT_FOOTER_BUDGET, _plain)
    if footer:
        embed["footer"] = {"text": footer}
    return _finish(embed, article)


def embed_text_length(embed: dict[str, Any]) -> int:
    """The characters Discord counts towards the 6000 total (UTF-16 units, to be safe)."""
    texts: list[str] = [embed.get("title", ""), embed.get("description", "")]
    texts += [f["name"] + f["value"] for f in embed.get("fields", [])]
    texts.append(embed.get("footer", {}).get("text", ""))
    texts.append(embed.get("author", {}).get("name", ""))
    return sum(utf16_len(t) for t in texts)
