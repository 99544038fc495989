"""bot/replay.py: the signatures seen within the replay window, on times given by hand."""

from __future__ import annotations

from bot.replay import RecentSignatures

T = 1_800_000_000.0


def test_a_signature_is_new_once_then_a_repeat_while_it_could_be_accepted() -> None:
    recent = RecentSignatures(window_s=300)
    assert recent.remember("v0=a", signed_at=T, now=T) == "new"
    assert recent.remember("v0=a", signed_at=T, now=T + 1) == "repeat"
    assert recent.remember("v0=a", signed_at=T, now=T + 300) == "repeat"
    assert recent.remember("v0=b", signed_at=T, now=T + 300) == "new"


def test_entries_are_forgotten_once_their_request_would_be_stale_anyway() -> None:
    recent = RecentSignatures(window_s=300)
    for n in range(50):
        recent.remember(f"v0={n}", signed_at=T + n, now=T + n)
    assert len(recent) == 50
    recent.remember("v0=late", signed_at=T + 325, now=T + 325)  # T+0..T+24 are stale by now
    assert len(recent) == 26
    # A timestamp from the future stays as long as it could be accepted.
    assert recent.remember("v0=ahead", signed_at=T + 600, now=T + 330) == "new"
    assert recent.remember("v0=ahead", signed_at=T + 600, now=T + 899) == "repeat"
    recent.remember("v0=later", signed_at=T + 1000, now=T + 1000)
    assert len(recent) == 1


def test_the_memory_is_capped_and_refuses_rather_than_forget_a_live_entry() -> None:
    recent = RecentSignatures(window_s=300, max_entries=3)
    for n in range(3):
        assert recent.remember(f"v0={n}", signed_at=T, now=T) == "new"
    assert recent.remember("v0=3", signed_at=T + 1, now=T + 1) == "full"
    assert len(recent) == 3
    assert recent.remember("v0=0", signed_at=T, now=T + 2) == "repeat"  # still remembered
    assert recent.remember("v0=3", signed_at=T + 301, now=T + 301) == "new"  # room again
