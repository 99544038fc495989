"""Which worker serves which channel: rendezvous hashing, pure.

Each (platform, channel) goes to the live worker with the highest hash of (worker, channel).
Every worker computes the same answer from the same list of live workers, without talking to
the others; when a worker joins or leaves, only the channels it wins or held move (about 1/N
of them), so per-channel pacing is disturbed as little as possible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _score(worker: str, platform: str, channel: str) -> int:
    digest = hashlib.blake2b(f"{worker}\0{platform}\0{channel}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def owner(platform: str, channel: str, workers: Sequence[str]) -> str | None:
    """The worker that serves this channel among `workers` (None when there is none)."""
    if not workers:
        return None
    return max(workers, key=lambda w: (_score(w, platform, channel), w))
