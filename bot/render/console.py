"""An article as readable terminal text.

Article text passes through `clean_text`, which removes escape sequences and control characters:
a hostile file must not be able to move the cursor, recolour or retitle the reader's terminal.
"""

from __future__ import annotations

import textwrap

from bot.articles import Article
from bot.digest import Digest
from bot.render.common import (
    RelatedLink,
    clean_text,
    display_title,
    fit_related_lines,
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
)
from bot.render.style import RenderStyle

WIDTH = 88  # excerpt wrap width: comfortable in an 80-100 column terminal
TITLE_BUDGET = 300
EXCERPT_BUDGET = 1000
META_PART_BUDGET = 200
RELATED_BUDGET = 20_000  # no platform limit here; the budget only bounds absurd input
RELATED_HEADING = "Also covered by:"


def _meta_line(article: Article, style: RenderStyle) -> str:
    parts = [trim_text(outlet_name(article), META_PART_BUDGET)]
    if article.published_at is not None:
        parts.append(format_time(article.published_at))
    quality = quality_label(article)
    if style.show_quality and quality:
        parts.append(quality)
    if style.show_topics:
        parts.append(trim_text(topics_label(article), META_PART_BUDGET))
    return " · ".join(p for p in parts if p)


def _related_line(link: RelatedLink, headline_limit: int) -> str:
    return f"  • {related_label(link, headline_limit)}  <{link.url}>"


def render_console(article: Article, style: RenderStyle) -> str:
    """Title, one line of context, the wrapped excerpt, the link, then the other outlets."""
    lines = [trim_text(display_title(article), TITLE_BUDGET)]
    meta = _meta_line(article, style)
    if meta:
        lines.append(meta)
    excerpt = trim_text(clean_text(article.excerpt), EXCERPT_BUDGET)
    url = safe_link_url(article.web_url)
    if excerpt or url:
        lines.append("")
    if excerpt:
        lines.extend(textwrap.wrap(excerpt, WIDTH))
    if url:
        lines.append(url)
    related = fit_related_lines(
        select_related(article, style.max_related),
        _related_line,
        lambda count: f"  {more_label(count)}",
        RELATED_BUDGET,
    )
    if related:
        lines += ["", RELATED_HEADING, *related]
    return "\n".join(lines) + "\n"


def render_console_digest(digest: Digest, style: RenderStyle) -> str:
    """The digest's title, then a numbered entry per story: title, its outlet and how many
    outlets told it, and its link."""
    lines = [digest.title, ""]
    for rank, story in enumerate(digest.stories, start=1):
        headline = story.headline
        parts = ["Breaking"] if story.breaking else []
        parts += [trim_text(outlet_name(headline), META_PART_BUDGET),
                  outlets_label(story.facts.outlets)]
        if style.show_quality and story.facts.quality is not None:
            parts.append(f"Quality {format_quality(story.facts.quality)}")
        lines.append(f"{rank}. {trim_text(display_title(headline), TITLE_BUDGET)}")
        lines.append("   " + " · ".join(p for p in parts if p))
        url = safe_link_url(headline.web_url)
        if url:
            lines.append(f"   {url}")
    if digest.more:
        lines.append(more_label(digest.more))
    return "\n".join(lines) + "\n"
