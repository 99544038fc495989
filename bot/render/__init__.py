"""Rendering: pure functions from an `Article` to a Discord payload, a Slack message or terminal
text, every platform limit respected and all article text escaped.

The names below load their module on first use (PEP 562): the command line imports
`RenderStyle` for its config on every start, and a `newsbot scan` renders nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.render.common import RelatedLink as RelatedLink
    from bot.render.common import RelatedSelection as RelatedSelection
    from bot.render.common import format_quality as format_quality
    from bot.render.common import select_related as select_related
    from bot.render.common import topic_colour as topic_colour
    from bot.render.common import trim_text as trim_text
    from bot.render.console import render_console as render_console
    from bot.render.discord import embed_text_length as embed_text_length
    from bot.render.discord import render_discord as render_discord
    from bot.render.discord import render_discord_compact as render_discord_compact
    from bot.render.slack import SlackMessage as SlackMessage
    from bot.render.slack import render_slack as render_slack
    from bot.render.slack import render_slack_compact as render_slack_compact
    from bot.render.style import RenderStyle as RenderStyle

_WHERE = {
    "RelatedLink": "common",
    "RelatedSelection": "common",
    "format_quality": "common",
    "select_related": "common",
    "topic_colour": "common",
    "trim_text": "common",
    "render_console": "console",
    "embed_text_length": "discord",
    "render_discord": "discord",
    "render_discord_compact": "discord",
    "SlackMessage": "slack",
    "render_slack": "slack",
    "render_slack_compact": "slack",
    "RenderStyle": "style",
}



def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'bot.render' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bot.render.{_WHERE[name]}"), name)
