"""Which file carries each article: deduplication, one rule for `run` and `scan`.

An article's identity is its canonical URL, not its file: the same article can be rewritten,
renamed or appear twice. The first file to bring a URL carries the article; another file with
the same URL is a duplicate and adds nothing; the carrier changing is an update.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum


class Take(StrEnum):
    NEW = "new"  # an article not seen before
    UPDATE = "update"  # an article known already, from the file that carries it
    DUPLICATE = "duplicate"  # another file already carries this article


class Carriers:
    """Decides, file by file, what each one brings. `known`: the articles known before (by
    key), each with the files that carry it now (none left: the next file to bring it does)."""

    def __init__(self, known: Mapping[str, Collection[str]] | None = None) -> None:
        self._known = known or {}
        self._taken: set[str] = set()

    def take(self, key: str, path: str) -> Take:
        if key in self._taken:
            return Take.DUPLICATE
        carriers = self._known.get(key)
        if carriers and path not in carriers:
            return Take.DUPLICATE
        self._taken.add(key)
        return Take.UPDATE if key in self._known else Take.NEW
