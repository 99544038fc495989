"""Routing: which subscriptions want an article. Pure functions of article, subscriptions, now."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.articles import Article, Provider
from bot.routing import Routing, RoutingDefaults, Verdict, judge, route
from bot.subscriptions import Subscription

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DEFAULTS = RoutingDefaults()  # floor 40, unscored held, no age limit


def article(
    *,
    title: str = "Amazon extends moratorium on police use of facial recognition",
    excerpt: str = "Amazon told Reuters on Tuesday it is extending its moratorium.",
    quality: float | None = 60.0,
    topics: tuple[str, ...] = ("AI", "Computer Vision"),
    provider: Provider | None = None,
    published_at: datetime | None = None,
) -> Article:
    return Article(
        key="https://www.usnews.com/news/a",
        title=title,
        web_url="https://www.usnews.com/news/a",
        excerpt=excerpt,
        quality=quality,
        topics=topics,
        provider=provider or Provider(name="U.S. News & World Report", domain="usnews.com"),
        published_at=published_at,
    )


def sub(sub_id: int = 1, **fields: object) -> Subscription:
    return Subscription(id=sub_id, platform="console", channel=f"c{sub_id}", **fields)  # type: ignore[arg-type]


def targets(a: Article, *subs: Subscription, defaults: RoutingDefaults = DEFAULTS) -> list[int]:
    return [s.id for s in route(a, subs, defaults, NOW).targets]


# --- topics -------------------------------------------------------------------------------------


def test_topic_match_is_case_insensitive() -> None:
    assert judge(article(), sub(topics=("computer vision",)), DEFAULTS, NOW) is Verdict.DELIVER
    assert judge(article(topics=("ai",)), sub(topics=("AI",)), DEFAULTS, NOW) is Verdict.DELIVER


def test_topic_match_ignores_runs_of_spaces() -> None:
    s = sub(topics=("Computer  Vision",))
    assert judge(article(), s, DEFAULTS, NOW) is Verdict.DELIVER


def test_one_shared_topic_is_enough() -> None:
    s = sub(topics=("Robotics", "Computer Vision"))
    assert judge(article(), s, DEFAULTS, NOW) is Verdict.DELIVER


def test_no_shared_topic_is_wrong_topic() -> None:
    s = sub(topics=("Robotics", "AWS AI"))
    assert judge(article(), s, DEFAULTS, NOW) is Verdict.WRONG_TOPIC


def test_subscription_without_topics_takes_every_topic() -> None:
    assert judge(article(topics=("Anything",)), sub(), DEFAULTS, NOW) is Verdict.DELIVER
    assert judge(article(topics=()), sub(), DEFAULTS, NOW) is Verdict.DELIVER


def test_article_without_topics_misses_topic_subscriptions() -> None:
    assert judge(article(topics=()), sub(topics=("AI",)), DEFAULTS, NOW) is Verdict.WRONG_TOPIC


# --- quality floor --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quality", "verdict"),
    [
        (39.0, Verdict.BELOW_FLOOR),
        (39.99, Verdict.BELOW_FLOOR),
        (40.0, Verdict.DELIVER),  # at the floor is enough
        (41.0, Verdict.DELIVER),
        (170.0, Verdict.DELIVER),  # scores are not bounded by 100
        (0.0, Verdict.BELOW_FLOOR),
    ],
)
def test_global_floor_applies_when_subscription_has_none(quality: float, verdict: Verdict) -> None:
    assert judge(article(quality=quality), sub(), DEFAULTS, NOW) is verdict


def test_subscription_floor_overrides_global_floor_both_ways() -> None:
    strict = sub(1, min_quality=90.0)
    lenient = sub(2, min_quality=10.0)
    zero = sub(3, min_quality=0.0)  # 0 is a floor, not "unset"
    assert targets(article(quality=60.0), strict, lenient, zero) == [2, 3]
    assert targets(article(quality=90.0), strict, lenient, zero) == [1, 2, 3]
    assert targets(article(quality=5.0), strict, lenient, zero) == [3]
    assert targets(
        article(quality=5.0), strict, lenient, zero, defaults=RoutingDefaults(min_quality=0.0)
    ) == [3]


def test_global_floor_changes_result_for_subscriptions_without_their_own() -> None:
    a = article(quality=50.0)
    assert targets(a, sub(), defaults=RoutingDefaults(min_quality=60.0)) == []
    assert targets(a, sub(), defaults=RoutingDefaults(min_quality=50.0)) == [1]


# --- unscored articles ----------------------------------------------------------------------------


def test_unscored_held_by_default_and_reported() -> None:
    result = route(article(quality=None), [sub()], DEFAULTS, NOW)
    assert result == Routing(targets=(), held_unscored=True)
    assert judge(article(quality=None), sub(), DEFAULTS, NOW) is Verdict.UNSCORED


def test_unscored_delivered_with_global_include_unscored() -> None:
    defaults = RoutingDefaults(include_unscored=True)
    result = route(article(quality=None), [sub()], defaults, NOW)
    assert [s.id for s in result.targets] == [1]
    assert not result.held_unscored


def test_subscription_include_unscored_overrides_global_both_ways() -> None:
    takes = sub(1, include_unscored=True)
    refuses = sub(2, include_unscored=False)
    inherits = sub(3)
    held = route(article(quality=None), [takes, refuses, inherits], DEFAULTS, NOW)
    assert [s.id for s in held.targets] == [1]
    assert held.held_unscored
    on = RoutingDefaults(include_unscored=True)
    wide = route(article(quality=None), [takes, refuses, inherits], on, NOW)
    assert [s.id for s in wide.targets] == [1, 3]
    assert wide.held_unscored  # subscription 2 still refuses it


def test_unscored_ignores_the_floor() -> None:
    s = sub(include_unscored=True, min_quality=150.0)
    assert judge(article(quality=None), s, DEFAULTS, NOW) is Verdict.DELIVER


def test_held_unscored_only_when_a_subscription_otherwise_wanted_it() -> None:
    a = article(quality=None, topics=("AI",))
    result = route(a, [sub(topics=("Robotics",))], DEFAULTS, NOW)
    assert result == Routing(targets=(), held_unscored=False)


def test_scored_article_below_floor_is_not_held_unscored() -> None:
    result = route(article(quality=10.0), [sub()], DEFAULTS, NOW)
    assert result == Routing(targets=(), held_unscored=False)


# --- providers ------------------------------------------------------------------------------------

FORBES = Provider(name="Forbes", domain="forbes.com")
FORBES_SUB = Provider(name="Forbes India", domain="www.forbesindia.forbes.com")
NOT_FORBES = Provider(name="Notforbes", domain="notforbes.com")


@pytest.mark.parametrize(
    ("wanted", "provider", "match"),
    [
        ("forbes.com", FORBES, True),
        ("Forbes", FORBES, True),  # by name, case-insensitive
        ("FORBES.COM", FORBES, True),
        ("forbes.com", FORBES_SUB, True),  # a subdomain
        ("forbes.com", NOT_FORBES, False),  # a suffix that is not a subdomain
        ("Forbes", NOT_FORBES, False),
        ("nytimes.com", FORBES, False),
        ("www.forbes.com", FORBES, True),  # the same outlet, spelled with www.
        ("forbes.com", Provider(name="Forbes", domain="www.forbes.com"), True),
        ("  forbes  ", FORBES, True),
    ],
)
def test_provider_include(wanted: str, provider: Provider, match: bool) -> None:
    verdict = judge(article(provider=provider), sub(providers_include=(wanted,)), DEFAULTS, NOW)
    assert verdict is (Verdict.DELIVER if match else Verdict.PROVIDER)


@pytest.mark.parametrize(
    ("unwanted", "provider", "excluded"),
    [
        ("forbes.com", FORBES, True),
        ("forbes", FORBES, True),
        ("forbes.com", FORBES_SUB, True),
        ("forbes.com", NOT_FORBES, False),
        ("nytimes.com", FORBES, False),
    ],
)
def test_provider_exclude(unwanted: str, provider: Provider, excluded: bool) -> None:
    verdict = judge(article(provider=provider), sub(providers_exclude=(unwanted,)), DEFAULTS, NOW)
    assert verdict is (Verdict.PROVIDER if excluded else Verdict.DELIVER)


def test_provider_include_any_of_several_and_exclude_wins() -> None:
    s = sub(providers_include=("nytimes.com", "forbes.com"), providers_exclude=("Forbes India",))
    assert judge(article(provider=FORBES), s, DEFAULTS, NOW) is Verdict.DELIVER
    assert judge(article(provider=FORBES_SUB), s, DEFAULTS, NOW) is Verdict.PROVIDER


def test_provider_name_in_another_script() -> None:
    p = Provider(name="Хабр", domain="habr.com")  # noqa: RUF001 - Cyrillic on purpose
    s = sub(providers_include=("хабр",))  # noqa: RUF001
    assert judge(article(provider=p), s, DEFAULTS, NOW) is Verdict.DELIVER


# --- keywords -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "title", "excerpt", "match"),
    [
        ("facial recognition", "Police use of Facial Recognition", "", True),
        ("MORATORIUM", "Amazon news", "extending its moratorium on police use", True),
        ("reuters", "", "Amazon told Reuters on Tuesday", True),
        ("ai", "AI's rise in the enterprise", "", True),
        ("ai", "Big AI-chip deal", "", True),
        ("ai", "OpenAI", "", False),  # inside a longer word
        ("ai", "Amazon said on Tuesday", "The email came again", False),
        ("machine learning", "Machine\n  learning at scale", "", True),
        ("c++", "Why C++ still matters", "", True),
        ("人工智能", "中国人工智能企业", "", True),  # no spaces between words in Chinese
        ("robotics", "Amazon extends moratorium", "nothing about it", False),
    ],
)
def test_keywords_in_title_or_excerpt(keyword: str, title: str, excerpt: str, match: bool) -> None:
    a = article(title=title or "Untitled", excerpt=excerpt)
    verdict = judge(a, sub(keywords=(keyword,)), DEFAULTS, NOW)
    assert verdict is (Verdict.DELIVER if match else Verdict.KEYWORD)


def test_any_keyword_is_enough() -> None:
    s = sub(keywords=("robotics", "moratorium"))
    assert judge(article(), s, DEFAULTS, NOW) is Verdict.DELIVER


# --- age ------------------------------------------------------------------------------------------


def test_no_age_limit_by_default() -> None:
    old = article(published_at=NOW - timedelta(days=3650))
    assert judge(old, sub(), DEFAULTS, NOW) is Verdict.DELIVER


def test_global_max_age_uses_the_given_now() -> None:
    defaults = RoutingDefaults(max_age_days=7)
    a = article(published_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    assert judge(a, sub(), defaults, NOW) is Verdict.TOO_OLD  # 9 days before NOW
    assert judge(a, sub(), defaults, NOW - timedelta(days=3)) is Verdict.DELIVER  # 6 days


def test_age_exactly_at_the_limit_is_kept() -> None:
    a = article(published_at=NOW - timedelta(days=7))
    assert judge(a, sub(max_age_days=7), DEFAULTS, NOW) is Verdict.DELIVER
    a = article(published_at=NOW - timedelta(days=7, seconds=1))
    assert judge(a, sub(max_age_days=7), DEFAULTS, NOW) is Verdict.TOO_OLD


def test_subscription_max_age_overrides_global() -> None:
    a = article(published_at=NOW - timedelta(days=10))
    assert judge(a, sub(max_age_days=30), RoutingDefaults(max_age_days=7), NOW) is Verdict.DELIVER
    assert judge(a, sub(max_age_days=2), DEFAULTS, NOW) is Verdict.TOO_OLD


def test_undated_article_is_never_too_old() -> None:
    assert judge(article(published_at=None), sub(max_age_days=1), DEFAULTS, NOW) is (
        Verdict.DELIVER
    )


def test_future_dated_article_is_not_too_old() -> None:
    a = article(published_at=NOW + timedelta(days=2))
    assert judge(a, sub(max_age_days=1), DEFAULTS, NOW) is Verdict.DELIVER


# --- parked ---------------------------------------------------------------------------------------


def test_parked_subscription_gets_nothing() -> None:
    parked = sub(1, parked_reason="discord: 403 Missing Access", include_unscored=True)
    live = sub(2)
    assert judge(article(), parked, DEFAULTS, NOW) is Verdict.PARKED
    assert targets(article(), parked, live) == [2]
    result = route(article(quality=None), [parked], DEFAULTS, NOW)
    assert result == Routing(targets=(), held_unscored=False)


def test_targets_keep_subscription_order_and_route_is_pure() -> None:
    subs = [sub(3), sub(1, topics=("AI",)), sub(2, min_quality=99.0), sub(4, keywords=("amazon",))]
    a = article()
    first = route(a, subs, DEFAULTS, NOW)
    assert [s.id for s in first.targets] == [3, 1, 4]
    assert route(a, subs, DEFAULTS, NOW) == first
    assert a == article()


# --- properties -----------------------------------------------------------------------------------

_topics = st.lists(
    st.sampled_from(["AI", "ai", "Robotics", "AWS AI", "Computer Vision"]), max_size=3
)
_subscriptions = st.builds(
    Subscription,
    id=st.integers(1, 1000),
    platform=st.just("console"),
    channel=st.just("c"),
    topics=_topics.map(tuple),
    min_quality=st.none() | st.floats(0, 200),
    include_unscored=st.none() | st.booleans(),
    providers_include=st.lists(
        st.sampled_from(["forbes.com", "Forbes", "usnews.com"]), max_size=2
    ).map(tuple),
    providers_exclude=st.lists(st.sampled_from(["forbes.com", "nytimes.com"]), max_size=1).map(
        tuple
    ),
    keywords=st.lists(st.sampled_from(["amazon", "robot", "police"]), max_size=2).map(tuple),
    max_age_days=st.none() | st.floats(0.5, 60),
    parked_reason=st.none() | st.just("gone"),
)
_articles = st.builds(
    article,
    quality=st.none() | st.floats(0, 200),
    topics=_topics.map(tuple),
    provider=st.sampled_from([FORBES, FORBES_SUB, NOT_FORBES, Provider("US News", "usnews.com")]),
    published_at=st.none()
    | st.datetimes(
        min_value=datetime(2026, 9, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
)
_defaults = st.builds(
    RoutingDefaults,
    min_quality=st.floats(0, 200),
    include_unscored=st.booleans(),
    max_age_days=st.none() | st.floats(0.5, 60),
)


@given(a=_articles, s=_subscriptions, defaults=_defaults, raise_by=st.floats(0.01, 100))
def test_raising_a_floor_never_adds_a_target(
    a: Article, s: Subscription, defaults: RoutingDefaults, raise_by: float
) -> None:
    before = judge(a, s, defaults, NOW) is Verdict.DELIVER
    floor = s.min_quality if s.min_quality is not None else defaults.min_quality
    stricter = dataclasses.replace(s, min_quality=floor + raise_by)
    after = judge(a, stricter, defaults, NOW) is Verdict.DELIVER
    assert after <= before
    stricter_global = dataclasses.replace(defaults, min_quality=defaults.min_quality + raise_by)
    assert (judge(a, s, stricter_global, NOW) is Verdict.DELIVER) <= before


@given(a=_articles, s=_subscriptions, defaults=_defaults, extra=_topics)
def test_narrowing_topics_never_adds_a_target(
    a: Article, s: Subscription, defaults: RoutingDefaults, extra: list[str]
) -> None:
    # Adding a topic to a non-empty list widens it; an empty list is already everything.
    wide = dataclasses.replace(s, topics=(*s.topics, *extra)) if s.topics else s
    assert (judge(a, s, defaults, NOW) is Verdict.DELIVER) <= (
        judge(a, wide, defaults, NOW) is Verdict.DELIVER
    )


@given(a=_articles, subs=st.lists(_subscriptions, max_size=6), defaults=_defaults)
def test_route_agrees_with_judge(
    a: Article, subs: list[Subscription], defaults: RoutingDefaults
) -> None:
    result = route(a, subs, defaults, NOW)
    verdicts = [judge(a, s, defaults, NOW) for s in subs]
    assert list(result.targets) == [
        s for s, v in zip(subs, verdicts, strict=True) if v is Verdict.DELIVER
    ]
    assert result.held_unscored == (Verdict.UNSCORED in verdicts)
    if a.quality is not None:
        assert not result.held_unscored
    assert all(not s.is_parked for s in result.targets)
