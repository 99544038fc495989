"""The terminal as a platform: the embedded default, and the quickest way to see the bot work."""

from __future__ import annotations

import hashlib
from typing import TextIO

from bot.articles import Article
from bot.digest import Digest
from bot.platforms.base import SentRef
from bot.printable import printable
from bot.render import RenderStyle, render_console
from bot.render.console import render_console_digest

_RULE = "─" * 72


class ConsoleNotifier:
    def __init__(self, stream: TextIO, style: RenderStyle) -> None:
        self._stream = stream
        self._style = style
        self._count = 0

    @property
    def platform(self) -> str:
        return "console"

    async def start(self) -> None:
        return None

    async def send(
        self, delivery_key: str, channel: str, article: Article, mention: str | None = None
    ) -> SentRef:
        # The terminal has no one to ping (the config refuses a mention for it).
        text = render_console(article, self._style)  # article text is cleaned by the renderer
        return self._print(channel, text)

    async def send_digest(
        self, delivery_key: str, channel: str, digest: Digest, mention: str | None = None
    ) -> SentRef:
        return self._print(channel, render_console_digest(digest, self._style))

    def _print(self, channel: str, text: str) -> SentRef:
        self._count += 1
        self._stream.write(f"{_RULE}\n[{printable(channel)}]\n{text}\n")
        self._stream.flush()
        return SentRef(message_id=f"console-{self._count}")

    def fingerprint(self, channel: str, article: Article) -> str:
        return hashlib.sha256(render_console(article, self._style).encode()).hexdigest()

    async def edit(
        self, channel: str, message_id: str, article: Article, mention: str | None = None
    ) -> SentRef:
        # A terminal cannot change what it printed: the update is printed, marked as one.
        self._stream.write(
            f"{_RULE}\n[{channel}] (updated {message_id})\n"
            f"{render_console(article, self._style)}\n"
        )
        self._stream.flush()
        return SentRef(message_id=message_id)

    async def reply(
        self, delivery_key: str, channel: str, parent: SentRef, article: Article
    ) -> SentRef:
        self._count += 1
        self._stream.write(
            f"{_RULE}\n[{channel}] (more on {parent.message_id})\n"
            f"{render_console(article, self._style)}\n"
        )
        self._stream.flush()
        return SentRef(message_id=f"console-{self._count}", thread_ref=parent.message_id)

    async def retract(self, channel: str, message_id: str) -> SentRef:
        self._stream.write(
            f"{_RULE}\n[{channel}] ({message_id} withdrawn: its story is in an earlier post)\n"
        )
        self._stream.flush()
        return SentRef(message_id=message_id)

    async def find_sent(self, delivery_key: str, channel: str) -> SentRef | None:
        # The terminal keeps no history to look in: an interrupted print is printed again.
        return None

    async def aclose(self) -> None:
        return None
