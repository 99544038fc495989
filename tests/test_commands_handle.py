"""`Commands.handle(caller, request)`: the one entry chat, the CLI and the panel come in by.
Chat requests act on the caller's channel; operator requests only for an operator, each
setting held to the one rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.commands import (
    OPERATORS_ONLY,
    AddSubscription,
    Caller,
    ChangeReply,
    Commands,
    EditSubscription,
    ListSubscriptions,
    PauseChannel,
    RemoveSubscription,
    ResumeChannel,
    Subscribe,
    operator,
)
from bot.config import SubscriptionSpec
from bot.routing import RoutingDefaults
from bot.state import State
from bot.subscriptions import Subscription, SubscriptionSource
from tests.conftest import FakeClock

CHAT = Caller("slack", "C1", "U1", can_manage=True)
OPERATOR = operator("tester", SubscriptionSource.PANEL)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[State, Commands]]:
    clock = FakeClock()
    state = await State.open(tmp_path / "state.db", clock)
    commands = Commands(state, RoutingDefaults(min_quality=40.0), clock,
                        origin=lambda sub: "newsbot.toml:7")
    try:
        yield state, commands
    finally:
        await state.aclose()


async def test_a_chat_caller_cannot_make_operator_requests(
    setup: tuple[State, Commands],
) -> None:
    state, commands = setup
    spec = SubscriptionSpec(platform="slack", channel="C2", topics=("AI",))
    for request in (AddSubscription(spec), RemoveSubscription(1), PauseChannel("slack", "C1")):
        reply = await commands.handle(CHAT, request)
        assert reply == ChangeReply(ok=False, text=OPERATORS_ONLY)
    assert await state.subscriptions() == []


async def test_chat_requests_act_on_the_callers_channel(setup: tuple[State, Commands]) -> None:
    state, commands = setup
    assert (await commands.handle(CHAT, Subscribe("AI", 60.0))).ok
    [sub] = await state.subscriptions()
    assert (sub.platform, sub.channel, sub.source) == ("slack", "C1", SubscriptionSource.CHAT)
    mine = await commands.handle(Caller("slack", "C2", "U2", False), ListSubscriptions())
    assert mine.subscriptions == ()
    everything = await commands.handle(OPERATOR, ListSubscriptions())
    assert everything.subscriptions == (sub,)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"min_quality": float("nan")}, "minimum quality"),
        ({"backfill": 5000}, "backfill"),
        ({"timezone": "Mars/Base"}, "time zone"),
        ({"quiet_hours": "22:00-22:00"}, "Quiet hours"),
        ({"mention": "not-a-group"}, "mention"),
        ({"platform": "irc"}, "platform"),
        ({"channel": " "}, "channel"),
        ({"topics": ("x" * 101,)}, "topic"),
    ],
)
async def test_every_setting_is_held_to_the_one_rule(
    setup: tuple[State, Commands], change: dict[str, object], words: str
) -> None:
    state, commands = setup
    spec = replace(SubscriptionSpec(platform="slack", channel="C1"), **change)  # type: ignore[arg-type]
    reply = await commands.handle(OPERATOR, AddSubscription(spec))
    assert not reply.ok and words in reply.text
    assert await state.subscriptions() == []


async def test_add_edit_pause_resume_remove(setup: tuple[State, Commands]) -> None:
    state, commands = setup
    spec = SubscriptionSpec(platform="slack", channel="C1", topics=("AI",), quiet_hours="7:00-9:00")
    added = await commands.handle(OPERATOR, AddSubscription(spec))
    assert added.ok and added.created and added.subscription is not None
    sub = added.subscription
    assert sub.source is SubscriptionSource.PANEL and str(sub.quiet_hours) == "07:00-09:00"

    same_topics = await commands.handle(
        OPERATOR, EditSubscription(sub.id, replace(spec, min_quality=70.0))
    )
    assert same_topics.ok and same_topics.subscription is not None
    assert same_topics.subscription.id == sub.id and same_topics.subscription.min_quality == 70

    new_topics = await commands.handle(
        OPERATOR, EditSubscription(sub.id, replace(spec, topics=("Robots",)))
    )
    assert new_topics.ok and new_topics.subscription is not None
    [now] = await state.subscriptions()
    assert now.topics == ("Robots",) and now.id == new_topics.subscription.id

    moved = await commands.handle(
        OPERATOR, EditSubscription(now.id, replace(spec, channel="C2"))
    )
    assert not moved.ok and "keeps the subscription's platform and channel" in moved.text

    paused = await commands.handle(OPERATOR, PauseChannel("slack", "C1"))
    assert paused.ok
    [parked] = await state.subscriptions()
    assert parked.parked_reason == "paused by tester"
    # A subscription added to a paused channel waits with it.
    other = await commands.handle(OPERATOR, AddSubscription(replace(spec, topics=("AI",))))
    assert other.subscription is not None and other.subscription.is_parked
    assert not (await commands.handle(OPERATOR, PauseChannel("slack", "C1"))).ok
    resumed = await commands.handle(OPERATOR, ResumeChannel("slack", "C1"))
    assert resumed.ok and resumed.changed == 2
    assert not any(s.is_parked for s in await state.subscriptions())
    assert not (await commands.handle(OPERATOR, ResumeChannel("slack", "C1"))).ok

    removed = await commands.handle(OPERATOR, RemoveSubscription(now.id))
    assert removed.ok
    assert not (await commands.handle(OPERATOR, RemoveSubscription(now.id))).ok


async def test_the_config_files_subscriptions_are_refused_with_where_they_are(
    setup: tuple[State, Commands],
) -> None:
    state, commands = setup
    stored, _ = await state.add_subscription(
        Subscription(id=0, platform="slack", channel="C1", topics=("AI",),
                     source=SubscriptionSource.CONFIG)
    )
    spec = SubscriptionSpec(platform="slack", channel="C1", topics=("AI",), min_quality=90.0)
    for request in (
        RemoveSubscription(stored.id), EditSubscription(stored.id, spec), AddSubscription(spec)
    ):
        reply = await commands.handle(OPERATOR, request)
        assert not reply.ok and "newsbot.toml:7" in reply.text and reply.refused == (stored,)
    assert await state.subscriptions() == [stored]
