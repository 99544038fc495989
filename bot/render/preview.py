"""What a message would look like, exactly as it would be sent: for `newsbot preview` and tests."""

from __future__ import annotations

from bot.articles import Article
from bot.printable import json_text
from bot.render.console import render_console
from bot.render.discord import render_discord
from bot.render.slack import render_slack
from bot.render.style import RenderStyle

PLATFORMS = ("console", "discord", "slack")


def render_preview(article: Article, platform: str, style: RenderStyle) -> str:
    """The Discord or Slack JSON payload (indented, non-ASCII kept readable; no trailing
    newline), or the console text. Raises ValueError for any other platform."""
    name = platform.strip().lower()
    if name == "console":
        return render_console(article, style)
    if name == "discord":
        payload = render_discord(article, style)
    elif name == "slack":
        payload = render_slack(article, style).to_payload()
    else:
        raise ValueError(f"unknown platform {platform!r}: choose one of {', '.join(PLATFORMS)}")
    return json_text(payload, indent=2)
