"""Articles for tests: an in-memory builder, the text of a store file, and the seed article."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.articles import Article, Provider, parse_article
from bot.urls import normalize_url

SEED_FILE = Path(__file__).resolve().parent / "data" / "articles" / "seed-amazon-moratorium.md"


def make_article(**overrides: Any) -> Article:
    """A minimal valid Article; any field can be overridden."""
    fields: dict[str, Any] = {
        "key": normalize_url("https://news.example.com/story"),
        "title": "A story",
        "web_url": "https://news.example.com/story",
        "provider": Provider(name="Example News", domain="example.com"),
    }
    fields.update(overrides)
    return Article(**fields)


def store_file_text(
    url: str,
    title: str,
    quality: float | None = 80,
    topics: Sequence[str] = ("AI",),
    published: str = "2026-11-01T10:00:00Z",
    body: str = "",
) -> str:
    """The text of a store file in the real format (front matter, optional body)."""
    lines = ["---", f'title: "{title}"', f"webUrl: {url}", f"publishedDateTime: {published}"]
    if quality is not None:
        lines.append(f"quality: {quality}")
    lines += ["provider:", "  name: Example News", "  domain: example.com", "topics:"]
    lines += [f"  - {t}" for t in topics]
    lines += ["---", ""]
    if body:
        lines += [body, ""]
    return "\n".join(lines)


def seed_article() -> Article:
    return parse_article(SEED_FILE.read_bytes(), str(SEED_FILE))
