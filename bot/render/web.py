"""A message as the web panel shows it: the exact Discord and Slack payloads that would be sent
for an article (bot/render/discord.py, bot/render/slack.py), drawn as HTML look-alikes of the
cards their clients show. Pure, like every renderer; every piece of text is HTML-escaped here,
and only http(s) links that `safe_link_url` accepts become links (opened without a referrer)."""

from __future__ import annotations

import html
import re
from typing import Any

from bot.articles import Article
from bot.render.common import safe_link_url
from bot.render.discord import render_discord
from bot.render.slack import render_slack
from bot.render.style import RenderStyle

# Discord markdown escapes as our renderer writes them; shown as the client shows them.
_DISCORD_ESCAPE = re.compile(r"\\([\\*_~`|<>\[\]#()\-.:!/])")
# Slack's `<url|label>` links and `<!date^…|fallback>` tokens.
_SLACK_TOKEN = re.compile(r"<([^<>|]*)\|([^<>]*)>|<([^<>|]*)>")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _link(url: object, label_html: str) -> str:
    safe = safe_link_url(url) if isinstance(url, str) else None
    if safe is None:
        return label_html
    return f'<a href="{_e(safe)}" rel="noopener noreferrer" target="_blank">{label_html}</a>'


def _discord_text(text: object) -> str:
    return _e(_DISCORD_ESCAPE.sub(r"\1", str(text or "")))


def discord_preview(article: Article, style: RenderStyle) -> str:
    """The Discord embed: author, title (linked), description, fields, image, footer."""
    payload = render_discord(article, style)
    cards = []
    for embed in payload.get("embeds", []):
        parts = []
        author = embed.get("author") or {}
        if author.get("name"):
            parts.append(f'<div class="d-author">{_discord_text(author["name"])}</div>')
        if embed.get("title"):
            title = _link(embed.get("url"), _discord_text(embed["title"]))
            parts.append(f'<div class="d-title">{title}</div>')
        if embed.get("description"):
            parts.append(f'<div class="d-description">{_discord_text(embed["description"])}</div>')
        for field in embed.get("fields", []):
            parts.append(
                f'<div class="d-field"><div class="d-field-name">{_discord_text(field["name"])}'
                f'</div><div class="d-field-value">{_discord_markdown(field["value"])}</div></div>'
            )
        for kind in ("image", "thumbnail"):
            if kind in embed:
                url = _e(embed[kind].get("url", ""))
                parts.append(f'<div class="d-image">[{kind}: {url}]</div>')
        footer = embed.get("footer") or {}
        if footer.get("text"):
            parts.append(f'<div class="d-footer">{_discord_text(footer["text"])}</div>')
        cards.append('<div class="d-embed">' + "".join(parts) + "</div>")
    return '<div class="preview discord">' + "".join(cards) + "</div>"


_MD_LINK = re.compile(r"\[((?:\\.|[^\]\\])*)\]\(((?:\\.|[^)\\])*)\)")


def _discord_markdown(text: object) -> str:
    """Field values hold `[label](url)` links; the rest is shown as text."""
    out, at = [], 0
    source = str(text or "")
    for match in _MD_LINK.finditer(source):
        out.append(_discord_text(source[at : match.start()]))
        url = _DISCORD_ESCAPE.sub(r"\1", match.group(2))
        out.append(_link(url, _discord_text(match.group(1))))
        at = match.end()
    out.append(_discord_text(source[at:]))
    return "".join(out)


def _slack_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_SLACK_BOLD_LINE = re.compile(r"^\*(<[^<>]+>)\*$")


def _slack_text(text: object) -> str:
    """mrkdwn as text, with its links as links, date tokens as their fallback, and a line that
    is one bold link (the headline, as newsbot writes it) in bold."""
    lines = str(text or "").split("\n")
    return "\n".join(
        f"<strong>{_slack_inline(bold.group(1))}</strong>"
        if (bold := _SLACK_BOLD_LINE.match(line))
        else _slack_inline(line)
        for line in lines
    )


def _slack_inline(text: str) -> str:
    out, at = [], 0
    source = text
    for match in _SLACK_TOKEN.finditer(source):
        out.append(_e(_slack_unescape(source[at : match.start()])))
        target, label, bare = match.group(1), match.group(2), match.group(3)
        if target is not None and target.startswith("!"):
            out.append(_e(_slack_unescape(label)))
        elif target is not None:
            out.append(_link(_slack_unescape(target), _e(_slack_unescape(label))))
        else:
            out.append(_e(_slack_unescape(bare or "")))
        at = match.end()
    out.append(_e(_slack_unescape(source[at:])))
    return "".join(out)


def _slack_block(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "section":
        text = _slack_text((block.get("text") or {}).get("text", ""))
        accessory = block.get("accessory") or {}
        image = f'<div class="s-image">[image: {_e(accessory.get("alt_text", ""))}]</div>' if (
            accessory.get("type") == "image"
        ) else ""
        return f'<div class="s-section">{text}{image}</div>'
    if kind == "context":
        items = [
            _slack_text(e.get("text", "")) if e.get("type") == "mrkdwn"
            else f'[{_e(e.get("alt_text", "image"))}]'
            for e in block.get("elements", [])
        ]
        return f'<div class="s-context">{" ".join(items)}</div>'
    if kind == "divider":
        return "<hr>"
    return f'<div class="s-other">[{_e(kind)} block]</div>'


def slack_preview(article: Article, style: RenderStyle) -> str:
    """The Slack message's blocks, each as the client lays it out."""
    message = render_slack(article, style)
    return '<div class="preview slack">' + "".join(map(_slack_block, message.blocks)) + "</div>"
