"""The rule of learning from reactions, as pure functions of (votes, now, settings): no clock,
no database, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.learning import (
    DAY_S,
    Adjustment,
    Kind,
    Learned,
    LearnMode,
    LearnRule,
    Standing,
    Subject,
    Tally,
    Vote,
    channel_mode,
    decide,
    learned_floor,
)
from bot.routing import RoutingDefaults, Verdict, judge
from bot.subscriptions import Subscription
from tests.test_discord_platform import make_article

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC).timestamp()
RULE = LearnRule()


def vote(story: int, sign: int, voter: str, *, topics: tuple[str, ...] = ("Power Apps",),
         provider: str = "Example News", days_ago: float = 1.0) -> Vote:
    return Vote(story, topics, provider, sign, voter, NOW - days_ago * DAY_S)


def downs(stories: range, voters: str = "ab", **kwargs: object) -> list[Vote]:
    return [vote(s, -1, v, **kwargs) for s in stories for v in voters]  # type: ignore[arg-type]


def test_three_net_thumbs_down_from_two_people_raise_the_topic_floor_by_20() -> None:
    votes = [*downs(range(1, 4))]  # 6 thumbs-down, 2 people
    [change] = decide(votes, {}, RULE, NOW)
    assert change.kind is Kind.TOPIC and change.subject == "Power Apps"
    assert change.shift == 20.0 and not change.exclude
    assert (change.tally.down, change.tally.up, change.tally.people) == (6, 0, 2)
    assert change.tally.since == NOW - DAY_S


def test_one_person_alone_changes_nothing_however_often() -> None:
    assert decide(downs(range(1, 10), voters="a"), {}, RULE, NOW) == []


def test_the_net_counts_up_against_down() -> None:
    votes = [*downs(range(1, 3)), vote(3, 1, "c")]  # 4 down, 1 up: net -3
    assert [c.shift for c in decide(votes, {}, RULE, NOW)] == [20.0]
    votes.append(vote(4, 1, "d"))  # net -2
    assert decide(votes, {}, RULE, NOW) == []


def test_three_net_thumbs_up_lower_the_floor_by_10() -> None:
    votes = [vote(s, 1, v) for s in (1, 2) for v in "ab"]
    [change] = decide(votes, {}, RULE, NOW)
    assert change.shift == -10.0 and change.tally.up == 4


def test_never_beyond_40_from_the_configured_floor() -> None:
    subject = Subject.of(Kind.TOPIC, "Power Apps")
    votes = downs(range(1, 4))
    assert [c.shift for c in decide(votes, {subject: Standing(shift=30.0)}, RULE, NOW)] == [10.0]
    assert decide(votes, {subject: Standing(shift=40.0)}, RULE, NOW) == []
    ups = [vote(s, 1, v) for s in (1, 2) for v in "ab"]
    assert [c.shift for c in decide(ups, {subject: Standing(shift=-35.0)}, RULE, NOW)] == [-5.0]
    assert decide(ups, {subject: Standing(shift=-40.0)}, RULE, NOW) == []
    # And the floor it gives never below 0.
    assert learned_floor(20.0, -40.0) == 0.0


def test_only_the_window_counts() -> None:
    old = downs(range(1, 4), days_ago=31)
    assert decide(old, {}, RULE, NOW) == []
    assert decide(old, {}, LearnRule(window_days=40), NOW) != []


def test_votes_are_spent_once_and_a_waiting_suggestion_holds_the_next() -> None:
    subject = Subject.of(Kind.TOPIC, "Power Apps")
    votes = downs(range(1, 4), days_ago=2)
    spent = {subject: Standing(counted_from=NOW - DAY_S)}
    assert decide(votes, spent, RULE, NOW) == []  # all cast before the last adjustment
    fresh = [*votes, *downs(range(4, 6), days_ago=0.5)]
    assert [c.tally.down for c in decide(fresh, spent, RULE, NOW)] == [4]
    assert decide(fresh, {subject: Standing(pending=True)}, RULE, NOW) == []


def test_an_outlet_rejected_across_topics_is_excluded() -> None:
    votes = [
        *downs(range(1, 2), topics=("Robotics",), provider="Tabloid"),
        *downs(range(2, 3), topics=("Space",), provider="Tabloid"),
        *downs(range(3, 4), topics=("Health",), provider="Tabloid"),
    ]
    [change] = decide(votes, {}, RULE, NOW)
    assert change.kind is Kind.PROVIDER and change.subject == "Tabloid" and change.exclude


def test_what_a_topic_explains_is_not_blamed_on_the_outlet_or_a_broader_topic() -> None:
    votes = downs(range(1, 4), topics=("AI", "Power Apps"))
    # AI is on more of the channel's posts: Power Apps is what the channel rejects.
    [change] = decide(votes, {}, RULE, NOW, {"ai": 20, "power apps": 3})
    assert change.subject == "Power Apps"
    # Without knowing which is broader, both topics are told; the outlet is not.
    assert {c.subject for c in decide(votes, {}, RULE, NOW)} == {"AI", "Power Apps"}


def test_votes_a_topic_spent_or_is_capped_by_are_never_blamed_on_the_outlet() -> None:
    """After Power Apps was raised (even if undone since), or once it is at its limit, the
    same outlet's other topics are not shut out by those votes."""
    subject = Subject.of(Kind.TOPIC, "Power Apps")
    votes = downs(range(1, 4), days_ago=2)
    assert decide(votes, {subject: Standing(counted_from=NOW - DAY_S)}, RULE, NOW) == []
    more = [*votes, *downs(range(4, 7), days_ago=0.5)]
    capped = {subject: Standing(shift=40.0, counted_from=NOW - DAY_S)}
    assert decide(more, capped, RULE, NOW) == []


def adjustment(kind: Kind, subject: str, shift: float, exclude: bool = False) -> Adjustment:
    return Adjustment(1, kind, subject, shift, exclude, Tally(0, 6, 2, NOW, NOW), NOW)


def test_routing_applies_the_largest_shift_and_exclusions() -> None:
    defaults = RoutingDefaults(min_quality=40)
    sub = Subscription(id=1, platform="discord", channel="1")
    now = datetime.fromtimestamp(NOW, UTC)
    rejected = make_article("Power Apps news", "pa", quality=55, topics=("Power Apps", "AI"))
    other = make_article("Robotics news", "rb", quality=55, topics=("Robotics",))
    learned = Learned((
        adjustment(Kind.TOPIC, "power apps", 20.0), adjustment(Kind.TOPIC, "AI", -10.0),
    ))
    assert learned.shift_for(rejected).shift == 20.0
    assert judge(rejected, sub, defaults, now, learned) is Verdict.LEARNED_FLOOR
    assert judge(rejected, sub, defaults, now) is Verdict.DELIVER
    assert judge(other, sub, defaults, now, learned) is Verdict.DELIVER
    low = make_article("Weak", "weak", quality=35, topics=("AI",))
    assert judge(low, sub, defaults, now, learned) is Verdict.DELIVER  # welcomed: 40 - 10
    excluded = Learned((adjustment(Kind.PROVIDER, "example.com", 0.0, exclude=True),))
    assert judge(other, sub, defaults, now, excluded) is Verdict.LEARNED_EXCLUDED


def test_the_most_cautious_mode_decides_for_a_channel() -> None:
    assert channel_mode([LearnMode.AUTO, LearnMode.SUGGEST]) is LearnMode.SUGGEST
    assert channel_mode([LearnMode.AUTO, LearnMode.OFF]) is LearnMode.OFF
    assert channel_mode([LearnMode.AUTO]) is LearnMode.AUTO
    assert channel_mode([]) is LearnMode.OFF


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 8), st.sampled_from([1, -1]), st.sampled_from("abcd"),
                  st.floats(0, 40)),
        max_size=60,
    )
)
def test_applied_again_and_again_the_shift_stays_within_40(
    raw: list[tuple[int, int, str, float]],
) -> None:
    """Whatever the votes, evaluating after each one and applying every change keeps each
    subject's shift within ±40 and spends each vote once."""
    votes: list[Vote] = []
    standings: dict[Subject, Standing] = {}
    for offset, (story, sign, voter, days_ago) in enumerate(raw):
        votes.append(vote(story, sign, voter, days_ago=days_ago - offset * 1e-3))
        now = NOW + offset
        for change in decide(votes, standings, RULE, now):
            before = standings.get(change.key, Standing())
            assert change.tally.people >= RULE.min_people
            standings[change.key] = Standing(
                shift=before.shift + change.shift,
                excluded=before.excluded or change.exclude,
                counted_from=now,
            )
    assert all(-40.0 <= s.shift <= 40.0 for s in standings.values())
