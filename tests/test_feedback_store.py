"""Learning from reactions, stored: votes counted once per person, taken back, hashed; the
tuner's rule applied to them; and what was learned kept across a restart. SQLite under
tmp_path, a fake clock moved by hand."""

from __future__ import annotations

from pathlib import Path

from bot.articles import Article
from bot.config import FeedbackConfig
from bot.feedback_store import FeedbackStore, Status, voter_hash
from bot.learning import LearnMode
from bot.state import State
from bot.store import FileOutcome, FileStamp
from bot.tuning import Action, Notice, Reaction, ReactionOutcome, Tuner, learned_for_routing
from tests.conftest import FakeClock
from tests.test_discord_platform import make_article

CHANNEL = "1210000000000001001"


async def posted(state: State, clock: FakeClock, slug: str, topics: tuple[str, ...]) -> str:
    """An article recorded, routed to the channel and marked sent; returns its message id."""
    from bot.routing import Routing

    article = make_article(f"Story {slug}", slug, topics=topics, quality=60)
    subs = await state.subscriptions("discord", CHANNEL)
    await state.record_files(
        [_outcome(article, slug)], route=lambda a: Routing(tuple(subs), False)
    )
    [row] = [r for r in await state.outbox.rows_for("discord", CHANNEL)
             if r.article_key == article.key]
    message_id = f"m-{slug}"
    await state.outbox.mark_sending(row.id)
    await state.outbox.mark_sent(row.id, message_id)
    return message_id


def _outcome(article: Article, slug: str) -> FileOutcome[Article]:
    return FileOutcome(f"{slug}.md", FileStamp(1, 1), article, None)


async def open_all(path: Path, clock: FakeClock, announced: list[Notice]) -> tuple[State, Tuner]:
    state = await State.open(path, clock)

    async def announce(notice: Notice) -> str:
        announced.append(notice)
        return f"notice-{len(announced)}"

    tuner = Tuner(
        FeedbackStore(state.database), state, FeedbackConfig(enabled=True), clock,
        global_floor=40.0, announcers={"discord": announce},
    )
    return state, tuner


def react(message: str, user: str, emoji: str = "👎", added: bool = True) -> Reaction:
    return Reaction("discord", CHANNEL, message, user, emoji, added)


async def test_votes_count_people_once_learn_in_auto_and_survive_a_restart(
    tmp_path: Path, clock: FakeClock
) -> None:
    from bot.subscriptions import Subscription

    announced: list[Notice] = []
    state, tuner = await open_all(tmp_path / "state.db", clock, announced)
    try:
        sub, _ = await state.add_subscription(Subscription(0, "discord", CHANNEL))
        await tuner.store.set_learn_mode(sub.id, LearnMode.AUTO)
        messages = [await posted(state, clock, f"pa{i}", ("Power Apps",)) for i in range(3)]

        assert await tuner.on_reaction(react("123", "u1")) is ReactionOutcome.NOT_OURS
        assert await tuner.on_reaction(react(messages[0], "u1", "🎉")) is (
            ReactionOutcome.NOT_A_SIGN
        )
        assert await tuner.on_reaction(
            Reaction("discord", CHANNEL, messages[0], "bot", "👎", True, by_us=True)
        ) is ReactionOutcome.OURSELVES
        assert await tuner.on_reaction(react(messages[0], "u1")) is ReactionOutcome.COUNTED
        assert await tuner.on_reaction(react(messages[0], "u1")) is ReactionOutcome.REPEAT
        # A skin tone is the same sign; taken back, it is uncounted.
        assert await tuner.on_reaction(react(messages[0], "u2", "👎🏽")) is (
            ReactionOutcome.COUNTED
        )
        assert await tuner.on_reaction(react(messages[0], "u2", "👎🏽", added=False)) is (
            ReactionOutcome.UNCOUNTED
        )
        story_votes = await tuner.store.vote_counts("discord", CHANNEL)
        assert sorted(story_votes.values()) == [(0, 1)]
        for message in messages:
            clock.advance(60)
            for user in ("u1", "u2"):
                await tuner.on_reaction(react(message, user))
        [row] = await tuner.store.adjustments("discord", CHANNEL, (Status.APPLIED,))
        assert (row.subject, row.shift, row.tally.people) == ("Power Apps", 20.0, 2)
        # u1 and u2 on the first post, then u1 on the second: net -3 from 2 people.
        assert row.tally.down == 3
        [notice] = announced
        assert "Power Apps" in notice.text and "rises by 20 (to 60)" in notice.text
        assert [b.action for b in notice.buttons] == [Action.UNDO]
        assert row.notice_ref == "notice-1"  # the announcement, with its undo button
        # Further votes of the same people on the same posts are repeats or spent: no more.
        assert len(await tuner.store.adjustments("discord", CHANNEL)) == 1
        # Only hashes are stored, never the ids.
        raw = [
            (r["voter"],) for r in await state.database.fetchall("SELECT voter FROM feedback_votes")
        ]
        salt = await tuner.store.salt()
        assert {v for (v,) in raw} == {voter_hash(salt, "discord", u) for u in ("u1", "u2")}
        assert not any("u1" in v or "u2" in v for (v,) in raw)
    finally:
        await state.aclose()

    # A restart keeps what was learned (and the salt: the same people stay the same).
    state, tuner = await open_all(tmp_path / "state.db", clock, announced)
    try:
        assert await tuner.store.salt() == salt
        learned = await learned_for_routing(tuner.store, await state.subscriptions(), True)
        [in_force] = learned[sub.id].adjustments
        assert in_force.shift == 20.0 and in_force.subject == "Power Apps"
        assert await learned_for_routing(tuner.store, await state.subscriptions(), False) == {}
        await tuner.store.set_learn_mode(sub.id, LearnMode.OFF)
        assert await learned_for_routing(tuner.store, await state.subscriptions(), True) == {}
        done, text = await tuner.act(Action.UNDO, "discord", CHANNEL, None, "cli:me")
        assert [r.status for r in done] == [Status.UNDONE] and text.startswith("Undone")
        again, text = await tuner.act(Action.UNDO, "discord", CHANNEL, None, "cli:me")
        assert again == [] and "No learned adjustment is in force" in text
    finally:
        await state.aclose()


async def test_suggest_mode_suggests_once_a_week_and_applies_on_request(
    tmp_path: Path, clock: FakeClock
) -> None:
    from bot.subscriptions import Subscription

    announced: list[Notice] = []
    state, tuner = await open_all(tmp_path / "state.db", clock, announced)
    try:
        await state.add_subscription(Subscription(0, "discord", CHANNEL))  # learn: default
        pa = [await posted(state, clock, f"pa{i}", ("Power Apps",)) for i in range(2)]
        rb = [await posted(state, clock, f"rb{i}", ("Robotics",)) for i in range(2)]
        for message in pa:
            clock.advance(1)
            for user in ("u1", "u2"):
                await tuner.on_reaction(react(message, user))
        [suggested] = await tuner.store.adjustments("discord", CHANNEL, (Status.SUGGESTED,))
        assert await tuner.store.adjustments("discord", CHANNEL, (Status.APPLIED,)) == []
        [notice] = announced
        assert [b.action for b in notice.buttons] == [Action.APPLY, Action.DISMISS]
        # A second suggestion within the week waits (not said), then is said by the check.
        for message in rb:
            clock.advance(1)
            for user in ("u1", "u2"):
                await tuner.on_reaction(react(message, user, "👍"))
        assert len(await tuner.store.adjustments("discord", CHANNEL, (Status.SUGGESTED,))) == 2
        assert len(announced) == 1
        assert await tuner.due_suggestions() == 0
        clock.advance(7 * 86400)
        assert await tuner.due_suggestions() == 1
        assert "Robotics" in announced[-1].text
        done, _ = await tuner.act(Action.APPLY, "discord", CHANNEL, suggested.id, "u9")
        assert [(r.id, r.status, r.decided_by) for r in done] == [
            (suggested.id, Status.APPLIED, "u9")
        ]
        done, _ = await tuner.act(Action.DISMISS, "discord", CHANNEL, None, "u9")
        assert [r.subject for r in done] == ["Robotics"]
    finally:
        await state.aclose()
