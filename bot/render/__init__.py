"""Rendering: pure functions from an `Article` to a Discord payload, a Slack message or terminal
text, every platform limit respected and all article text escaped."""

from bot.render.common import (
    RelatedLink,
    RelatedSelection,
    format_quality,
    select_related,
    topic_colour,
    trim_text,
)
from bot.render.console import render_console
from bot.render.discord import embed_text_length, render_discord, render_discord_compact
from bot.render.preview import PLATFORMS, render_preview
from bot.render.slack import SlackMessage, render_slack, render_slack_compact
from bot.render.style import RenderStyle

__all__ = [
    "PLATFORMS",
    "RelatedLink",
    "RelatedSelection",
    "RenderStyle",
    "SlackMessage",
    "embed_text_length",
    "format_quality",
    "render_console",
    "render_discord",
    "render_discord_compact",
    "render_preview",
    "render_slack",
    "render_slack_compact",
    "select_related",
    "topic_colour",
    "trim_text",
]
