"""Every filter of a subscription is shown, with where it came from and why it is paused, by one
`describe()` that `subscriptions list`, Discord's `/subscriptions` and Slack's `/news list`
all use."""

from __future__ import annotations

import re
from pathlib import Path

from bot.commands import Caller, Commands
from bot.routing import RoutingDefaults
from bot.state import State
from bot.subscriptions import Subscription, SubscriptionSource
from tests.conftest import FakeClock
from tests.test_credentials import newsbot
from tests.test_process import write_config

FILTERED = Subscription(
    id=0,
    platform="slack",
    channel="C1",
    topics=("AI",),
    min_quality=60.0,
    include_unscored=True,
    providers_include=("example.com",),
    providers_exclude=("Spam Daily",),
    keywords=("model",),
    max_age_days=7.0,
    source=SubscriptionSource.CHAT,
)
SHOWN = [
    "AI", "quality ≥ 60", "unscored articles too", "only from example.com",
    "not from Spam Daily", "keywords: model", "published within 7 days",
]


def test_describe_shows_every_filter_the_source_and_why_it_is_paused() -> None:
    text = FILTERED.describe(global_floor=40)
    assert text.startswith("slack:C1 — ")
    for part in [*SHOWN, "made in chat"]:
        assert part in text, (part, text)
    plain = Subscription(0, "console", "x", source=SubscriptionSource.CONFIG, parked_reason="gone")
    assert plain.describe(global_floor=40) == (
        "console:x — all topics; quality ≥ 40 (the global floor); from the config file; "
        "paused: gone"
    )


def test_subscriptions_list_shows_every_filter(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    added = newsbot(
        ["subscriptions", "add", "--platform", "console", "--channel", "x", "--topic", "AI",
         "--min-quality", "60", "--include-unscored", "--provider", "example.com",
         "--exclude-provider", "Spam Daily", "--keyword", "model", "--max-age-days", "7",
         "--config", config],
        tmp_path,
    )
    assert added.returncode == 0, added.stderr
    listed = newsbot(["subscriptions", "list", "--config", config], tmp_path)
    [line] = [line for line in listed.stdout.splitlines() if "console:x" in line]
    assert re.match(r"^\s*\d+\s+console:x — ", line)
    for part in [*SHOWN, "made with the CLI"]:
        assert part in line, (part, line)


async def test_chat_lists_show_the_same_description(tmp_path: Path, clock: FakeClock) -> None:
    state = await State.open(tmp_path / "bot.db", clock)
    try:
        stored, _ = await state.add_subscription(FILTERED)
        commands = Commands(state, RoutingDefaults(min_quality=40.0), clock)
        reply = await commands.subscriptions(Caller("slack", "C1", "U1", can_manage=False))
    finally:
        await state.aclose()
    assert f"- {stored.describe_filters(global_floor=40.0)}" in reply.text
    for part in SHOWN:
        assert part in reply.text
