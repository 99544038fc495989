"""bot/pacing.py: pure pacing on a passed clock; no sleeping, no I/O."""

from __future__ import annotations

import itertools

import pytest

from bot.pacing import (
    DISCORD_GLOBAL_HEADROOM,
    DISCORD_RESET_MARGIN_S,
    SLACK_CHANNEL_INTERVAL_S,
    DiscordPacing,
    SlackPacing,
    TokenBucket,
    Unpaced,
)
from bot.platforms.base import RateLimit, RateScope


def headers(remaining: int, reset_after_s: float, limit: int = 5, bucket: str = "b1") -> RateLimit:
    return RateLimit(bucket=bucket, limit=limit, remaining=remaining, reset_after_s=reset_after_s)


# --- the token bucket ----------------------------------------------------------------------


def test_a_token_bucket_spends_its_burst_then_paces_at_its_rate() -> None:
    bucket = TokenBucket(rate_per_s=2.0, capacity=3.0, now=0.0)
    for _ in range(3):
        assert bucket.ready_at(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.ready_at(0.0) == pytest.approx(0.5)
    assert bucket.ready_at(0.25) == pytest.approx(0.5)
    bucket.take(0.5)
    assert bucket.ready_at(0.5) == pytest.approx(1.0)
    # Saved up no more than its capacity, however long it rests.
    assert bucket.ready_at(100.0) == 100.0
    for _ in range(3):
        bucket.take(100.0)
    assert bucket.ready_at(100.0) > 100.0


def test_a_blocked_bucket_waits_then_lets_one_go_without_a_burst() -> None:
    bucket = TokenBucket(rate_per_s=1.0, capacity=5.0, now=0.0)
    bucket.block_until(10.0, now=0.0)
    assert bucket.ready_at(0.0) == 10.0
    assert bucket.ready_at(9.99) == 10.0
    assert bucket.ready_at(10.0) == 10.0
    bucket.take(10.0)
    assert bucket.ready_at(10.0) == pytest.approx(11.0)  # no burst saved up during the wait
    assert not bucket.is_idle(10.0)
    assert bucket.is_idle(20.0)
    # A shorter block never shortens a longer one.
    bucket.block_until(30.0, now=20.0)
    bucket.block_until(25.0, now=20.0)
    assert bucket.ready_at(26.0) == 30.0


def test_a_token_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=0.0)
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=1.0, capacity=0.5)


def test_the_terminal_is_never_paced() -> None:
    pacer = Unpaced()
    for _ in range(1000):
        pacer.dispatched("terminal", 0.0)
    assert pacer.platform_ready_at(0.0) == 0.0
    assert pacer.channel_ready_at("terminal", 0.0) == 0.0


# --- Discord -------------------------------------------------------------------------------


def test_discord_sends_until_the_headers_say_the_bucket_is_spent() -> None:
    pacer = DiscordPacing(global_rate_per_s=1000.0)
    now = 0.0
    # Before Discord has said anything: one at a time.
    assert pacer.channel_ready_at("1", now) == now
    pacer.dispatched("1", now)
    assert pacer.channel_ready_at("1", now) == float("inf")
    pacer.answered("1", headers(remaining=4, reset_after_s=5.0), now)
    for remaining in (3, 2, 1, 0):
        assert pacer.channel_ready_at("1", now) == now
        pacer.dispatched("1", now)
        pacer.answered("1", headers(remaining=remaining, reset_after_s=5.0), now)
    # Spent: the channel waits for the reset Discord named; another channel does not.
    assert pacer.channel_ready_at("1", now) == pytest.approx(5.0 + DISCORD_RESET_MARGIN_S)
    assert pacer.channel_ready_at("2", now) == now
    later = 5.0 + DISCORD_RESET_MARGIN_S
    assert pacer.channel_ready_at("1", later) == later


@pytest.mark.parametrize("limit", [50.0, 10.0, 120.0])
def test_discord_global_rate_is_a_token_bucket_under_the_configured_ceiling(
    limit: float,
) -> None:
    pacer = DiscordPacing(global_rate_per_s=limit)
    now = 0.0
    times: list[float] = []
    while now < 10.0:
        ready = pacer.platform_ready_at(now)
        if ready > now:
            now = ready + 0.0007  # our timers fire a little late
            continue
        pacer.take_platform(now)
        times.append(now)
        now += 0.0001  # each send takes a moment
    # Never more than the ceiling in any rolling second, and close to it despite late timers.
    busiest = max(
        sum(1 for t in times if start <= t < start + 1.0) for start in times
    )
    assert busiest <= limit
    assert len(times) >= limit * 10 * DISCORD_GLOBAL_HEADROOM - 2


def test_a_429_blocks_its_bucket_until_the_wait_and_a_global_one_blocks_everything() -> None:
    pacer = DiscordPacing(global_rate_per_s=1000.0)
    pacer.dispatched("1", 0.0)
    refusal = RateLimit(bucket="b1", limit=5, remaining=0, reset_after_s=2.0, retry_after_s=2.0)
    pacer.answered("1", refusal, 0.0)
    assert pacer.channel_ready_at("1", 1.0) >= 2.0
    assert pacer.channel_ready_at("2", 1.0) == 1.0
    assert pacer.platform_ready_at(1.0) == 1.0

    pacer.dispatched("2", 1.0)
    pacer.answered("2", RateLimit(retry_after_s=3.0, scope=RateScope.PLATFORM), 1.0)
    assert pacer.platform_ready_at(1.5) >= 4.0
    assert pacer.channel_ready_at("2", 1.5) == 1.5  # its own bucket is not what refused


def test_routes_that_report_the_same_bucket_share_its_limit_per_channel() -> None:
    pacer = DiscordPacing(global_rate_per_s=1000.0)
    pacer.dispatched("webhook:news", 0.0)
    pacer.answered("webhook:news", headers(remaining=0, reset_after_s=2.0, bucket="shared"), 0.0)
    pacer.dispatched("1", 0.0)
    pacer.answered("1", headers(remaining=3, reset_after_s=2.0, bucket="shared"), 0.0)
    # Same bucket name, different major parameter (webhook name vs channel id): separate.
    assert pacer.channel_ready_at("webhook:news", 0.5) > 0.5
    assert pacer.channel_ready_at("1", 0.5) == 0.5


def test_discord_forgets_buckets_that_hold_nothing_back() -> None:
    pacer = DiscordPacing(global_rate_per_s=1000.0)
    for n in range(1000):
        pacer.dispatched(str(n), 0.0)
        pacer.answered(str(n), headers(remaining=0, reset_after_s=1.0), 0.0)
    pacer.prune(0.5)
    assert pacer.channel_ready_at("7", 0.5) > 0.5  # still spent: kept
    pacer.prune(2.0)
    assert len(pacer._buckets) == 0
    assert pacer.channel_ready_at("7", 2.0) == 2.0


# --- Slack ---------------------------------------------------------------------------------


def test_slack_paces_a_channel_at_a_little_under_one_per_second() -> None:
    pacer = SlackPacing(workspace_rate_per_s=1000.0)
    now = 0.0
    times = []
    while len(times) < 10:
        ready = max(pacer.platform_ready_at(now), pacer.channel_ready_at("C1", now))
        now = max(now, ready)
        pacer.dispatched("C1", now)
        pacer.answered("C1", None, now)
        times.append(now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap == pytest.approx(SLACK_CHANNEL_INTERVAL_S) for gap in gaps)
    assert all(gap >= 1.0 for gap in gaps)
    # Other channels are not held by it.
    assert pacer.channel_ready_at("C2", now) == now


def test_slack_workspace_rate_caps_the_whole_workspace() -> None:
    pacer = SlackPacing(workspace_rate_per_s=10.0)
    now, sent = 0.0, 0
    while now < 5.0:
        ready = pacer.platform_ready_at(now)
        if ready > now:
            now = ready
            continue
        pacer.take_platform(now)
        sent += 1
    assert 50 <= sent <= 52  # 10/s for 5 s, plus the small burst it starts with


def test_one_429_slows_its_channel_only() -> None:
    pacer = SlackPacing(workspace_rate_per_s=100.0)
    pacer.dispatched("C1", 0.0)
    pacer.answered("C1", RateLimit(retry_after_s=3.0), 0.0)
    assert pacer.learned_workspace_rate == 100.0  # one refusal says nothing of the workspace
    assert pacer.platform_ready_at(1.0) == 1.0
    resume = pacer.channel_ready_at("C1", 1.0)
    assert resume >= 3.0  # the channel waits as told
    # Then it goes slower than before.
    pacer.dispatched("C1", resume)
    pacer.answered("C1", None, resume)
    assert pacer.channel_ready_at("C1", resume) - resume > SLACK_CHANNEL_INTERVAL_S


def test_429s_on_two_channels_are_the_workspace_everyone_waits_and_slows_down() -> None:
    pacer = SlackPacing(workspace_rate_per_s=100.0)
    pacer.dispatched("C1", 0.0)
    pacer.answered("C1", RateLimit(retry_after_s=1.0), 0.0)
    pacer.dispatched("C2", 0.5)
    pacer.answered("C2", RateLimit(retry_after_s=3.0), 0.5)
    assert pacer.learned_workspace_rate == pytest.approx(50.0)
    assert pacer.platform_ready_at(1.0) >= 3.5  # everyone waits as told
    assert pacer.channel_ready_at("C3", 1.0) == 1.0  # (its own bucket is free; the workspace
    #                                                    is what holds it back)


def test_429s_far_apart_are_each_their_channels_own() -> None:
    pacer = SlackPacing(workspace_rate_per_s=100.0)
    pacer.answered("C1", RateLimit(retry_after_s=1.0), 0.0)
    pacer.answered("C2", RateLimit(retry_after_s=1.0), 60.0)
    assert pacer.learned_workspace_rate == 100.0


def test_the_learned_workspace_rate_climbs_back_after_a_quiet_minute() -> None:
    pacer = SlackPacing(workspace_rate_per_s=100.0)
    pacer.answered("C1", RateLimit(retry_after_s=1.0), 0.0)
    pacer.answered("C3", RateLimit(retry_after_s=1.0), 0.0)
    assert pacer.learned_workspace_rate == pytest.approx(50.0)
    pacer.answered("C2", None, 30.0)
    assert pacer.learned_workspace_rate == pytest.approx(50.0)  # not yet
    now = 61.0
    for _ in range(200):
        pacer.answered("C2", None, now)
        now += 0.1
    assert pacer.learned_workspace_rate == pytest.approx(100.0)
