"""The request signatures accepted within the replay window, so that a captured request sent
again while its timestamp is still acceptable is refused.

Bounded: an entry is forgotten once its timestamp is out of the window (the age check refuses
that request anyway), and at most `max_entries` are kept. When that many are all still live,
a new signature is refused rather than an old one forgotten: only correctly signed requests
are remembered, so filling it takes the sender's own secret.
"""

from __future__ import annotations

import heapq
from typing import Literal

DEFAULT_WINDOW_S = 300.0  # Slack's: a timestamp more than 5 minutes from now is refused
# About 33 commands a second for 5 minutes: far beyond any workspace, about 1 MB of memory.
DEFAULT_MAX_ENTRIES = 10_000

Seen = Literal["new", "repeat", "full"]


class RecentSignatures:
    def __init__(
        self, window_s: float = DEFAULT_WINDOW_S, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self._window_s = window_s
        self._max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._by_expiry: list[tuple[float, str]] = []  # a heap: the soonest to expire first

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, signature: str, signed_at: float, now: float) -> Seen:
        """Whether `signature` (of a request signed at `signed_at`) is new, and remember it."""
        self._forget_expired(now)
        if signature in self._expiry:
            return "repeat"
        if len(self._expiry) >= self._max_entries:
            return "full"
        # A request is accepted while |now - signed_at| <= window: remember it that long.
        expiry = signed_at + self._window_s
        self._expiry[signature] = expiry
        heapq.heappush(self._by_expiry, (expiry, signature))
        return "new"

    def _forget_expired(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now:
            _, signature = heapq.heappop(self._by_expiry)
            del self._expiry[signature]
