"""How a rendered article looks: the few switches a channel can choose."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RenderStyle:
    max_related: int = 5  # related outlets listed before "+K more"
    show_images: bool = True
    show_quality: bool = True
    show_topics: bool = True
    unfurl_links: bool = False  # Slack only: our own card already shows the story
