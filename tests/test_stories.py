"""bot/stories.py: which articles are one story (pure rules), on built articles and on the
real corpus."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from bot.articles import Article, parse_article
from bot.stories import (
    TITLE_WINDOW_S,
    Known,
    Newcomer,
    candidate_words,
    compose,
    group,
    story_urls,
    title_words,
    titles_match,
)
from tests.builders import store_file_text


def article(
    url: str,
    title: str,
    published: str = "2026-11-01T10:00:00Z",
    related: tuple[str, ...] = (),
    quality: float | None = 80,
) -> Article:
    text = store_file_text(url, title, quality=quality, published=published)
    if related:
        # Right after the opening `---`: the same story from other outlets.
        items = "".join(f"  - title: Other\n    webUrl: {r}\n" for r in related)
        opening, rest = text.split("\n", 1)
        text = f"{opening}\nrelated:\n{items}{rest}"
    return parse_article(text.encode(), "story.md")


def words(title: str) -> tuple[str, ...]:
    return title_words(title)


# --- the title measure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Artificial intelligence tracks down leukemia",
         "Artificial Intelligence That Tracks Down Leukemia Discovered"),
        ("Facebook says group used AI-generated faces to push pro-Trump messages",
         "Facebook says group used AI-generated faces to push pro-Trump, anti-China messages"),
        ("Google Cloud Team Releases AutoML Natural Language",
         "Google Cloud team releases AutoML Natural Language!"),
    ],
)
def test_near_identical_titles_match(a: str, b: str) -> None:
    assert titles_match(words(a), words(b))
    assert titles_match(words(b), words(a))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # One press-release template, two companies: two stories.
        ("ElectrifAi Achieves AWS Machine Learning Competency Status in Applied AI",
         "XAPP AI Achieves AWS Machine Learning Competency Status in Applied AI"),
        # A short headline inside a longer, different one.
        ("OpenAI launches GPT-5",
         "OpenAI launches GPT-5 rival from a lab in Paris with backing from investors"),
        ("AI in health care", "AI in health insurance"),
        ("Artificial intelligence tracks down leukemia",
         "Artificial intelligence tracks down acute myeloid leukaemia"),
    ],
)
def test_different_titles_do_not(a: str, b: str) -> None:
    assert not titles_match(words(a), words(b))


def test_words_ignore_case_punctuation_width_and_function_words() -> None:
    full_width_ai = "\uff21\uff29"
    assert set(words(f"The {full_width_ai} Boom: What's Next?")) == {"ai", "boom", "s", "next"}
    assert words("") == ()


def test_a_match_always_shares_a_candidate_word() -> None:
    """Prefix filtering must never lose a match: every matching pair of titles shares a word
    among both their candidate words."""
    vocabulary = [f"w{n}" for n in range(14)]
    rng = random.Random(7)
    titles = [" ".join(rng.sample(vocabulary, rng.randint(3, 9))) for _ in range(400)]
    sets = [words(t) for t in titles]
    for a, b in itertools.combinations(sets, 2):
        if titles_match(a, b):
            assert set(candidate_words(a)) & set(candidate_words(b)), (a, b)


# --- grouping --------------------------------------------------------------------------------


def test_related_links_join_in_either_direction_and_in_any_order() -> None:
    a = article("https://one.example/a", "A first telling", related=("https://two.example/b",))
    b = article("https://two.example/b", "Quite another headline")
    c = article("https://three.example/c", "Yet another", related=("https://one.example/a",))
    for order in itertools.permutations([a, b, c]):
        grouping = group([Newcomer.of(x, 0.0) for x in order], [], {})
        assert len(set(grouping.new_group.values())) == 1


def test_titles_join_within_48_hours_only() -> None:
    first = article("https://one.example/x", "Robots learn to fold laundry at home",
                    published="2026-11-01T10:00:00Z")
    close = article("https://two.example/y", "Robots learn to fold laundry at home",
                    published="2026-11-03T09:00:00Z")
    far = article("https://three.example/z", "Robots learn to fold laundry at home",
                  published="2026-11-05T08:00:00Z")
    grouping = group([Newcomer.of(a, 0.0) for a in (first, close, far)], [], {})
    groups = grouping.new_group
    assert groups[first.key] == groups[close.key]
    # Far is within 48 hours of close only: close links the three (stories are connected groups).
    assert groups[far.key] == groups[close.key]
    lone = group([Newcomer.of(a, 0.0) for a in (first, far)], [], {}).new_group
    assert lone[first.key] != lone[far.key]
    assert TITLE_WINDOW_S == 48 * 3600


def test_a_newcomer_joins_a_known_story_by_url_or_title() -> None:
    known = Known("https://one.example/a", 7, 1_000_000.0, words("NVIDIA unveils Blackwell chips"))
    by_title = article("https://two.example/b", "Nvidia unveils Blackwell chips")
    by_title = Newcomer(by_title.key, 1_000_000.0 + 3600, by_title and words(by_title.title),
                        story_urls(by_title))
    by_url = Newcomer.of(
        article("https://three.example/c", "A story", related=("https://one.example/a",)), 0.0
    )
    grouping = group([by_title, by_url], [known], {"https://one.example/a": 7})
    assert grouping.story_of == {by_title.key: 7, by_url.key: 7}
    assert grouping.new_group == {}


def test_an_article_linking_two_stories_merges_them_into_the_older() -> None:
    bridge = Newcomer.of(
        article("https://x.example/bridge", "Bridge",
                related=("https://one.example/a", "https://two.example/b")),
        0.0,
    )
    grouping = group(
        [bridge], [], {"https://one.example/a": 3, "https://two.example/b": 9}
    )
    assert grouping.merged == {9: 3}
    assert grouping.story_of == {bridge.key: 3}


def brute_force(
    newcomers: list[Newcomer], known: list[Known], url_stories: dict[str, int]
) -> tuple[set[frozenset[object]], dict[int, int]]:
    """What `group` must find, by comparing every pair: the groups (newcomer keys with the
    known stories they join) and the merges."""
    parent: dict[object, object] = {}

    def find(node: object) -> object:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    def union(a: object, b: object) -> None:
        parent[find(a)] = find(b)

    for n in newcomers:
        find(n.key)
        for url in n.urls:
            if url in url_stories:
                union(n.key, ("story", url_stories[url]))
    for a, b in itertools.combinations(newcomers, 2):
        if a.urls & b.urls:
            union(a.key, b.key)
    titled = [(n.key, n.published_s, n.words, n.key) for n in newcomers]
    titled += [(k.key, k.published_s, k.words, ("story", k.story_id)) for k in known]
    for n in newcomers:
        for key, published_s, title, node in titled:
            near = abs(published_s - n.published_s) <= TITLE_WINDOW_S
            if key != n.key and near and titles_match(n.words, title):
                union(n.key, node)
    groups: dict[object, set[object]] = {}
    for node in list(parent):
        groups.setdefault(find(node), set()).add(node)
    merged = {}
    for members in groups.values():
        stories = sorted(int(m[1]) for m in members if isinstance(m, tuple))  # type: ignore[index]
        merged.update({absorbed: stories[0] for absorbed in stories[1:]})
    return {frozenset(g) for g in groups.values() if any(isinstance(m, str) for m in g)}, merged


def partition_of(grouping: object, newcomers: list[Newcomer]) -> set[frozenset[object]]:
    groups: dict[object, set[object]] = {}
    for key, number in grouping.new_group.items():  # type: ignore[attr-defined]
        groups.setdefault(("new", number), set()).add(key)
    for key, story_id in grouping.story_of.items():  # type: ignore[attr-defined]
        groups.setdefault(("story", story_id), {("story", story_id)}).add(key)
    for absorbed, survivor in grouping.merged.items():  # type: ignore[attr-defined]
        groups.setdefault(("story", survivor), {("story", survivor)}).add(("story", absorbed))
    assert sum(len([m for m in g if isinstance(m, str)]) for g in groups.values()) == len(
        newcomers
    )
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("seed", range(12))
def test_grouping_finds_exactly_what_comparing_every_pair_finds(seed: int) -> None:
    """Prefix filtering and the time index only skip pairs that cannot match: on dense random
    titles (few words, much overlap) the groups are those of comparing every pair."""
    rng = random.Random(seed)
    vocabulary = [f"w{n}" for n in range(60)]
    bases = [rng.sample(vocabulary, rng.randint(2, 20)) for _ in range(25)]
    day = 86400.0

    def title() -> tuple[str, ...]:
        # A base title with up to two words dropped and up to two added: near-identical
        # titles of every length, and many that just miss.
        base = list(rng.choice(bases))
        for _ in range(rng.randint(0, 2)):
            base.remove(rng.choice(base))
        return words(" ".join(base + rng.sample(vocabulary, rng.randint(0, 2))))

    def urls(i: int) -> frozenset[str]:
        # Every seventh links to a related URL, some of which known stories claim.
        related = {f"https://r.example/{rng.randint(0, 30)}"} if i % 7 == 0 else set()
        return frozenset({f"https://n.example/{i}", *related})

    newcomers = [
        Newcomer(f"https://n.example/{i}", rng.uniform(0, 6 * day), title(), urls(i))
        for i in range(160)
    ]
    known = [
        Known(f"https://k.example/{i}", rng.randint(1, 25), rng.uniform(0, 6 * day), title())
        for i in range(70)
    ]
    url_stories = {f"https://r.example/{i}": rng.randint(1, 25) for i in range(0, 30, 3)}
    expected_groups, expected_merged = brute_force(newcomers, known, url_stories)
    grouping = group(newcomers, known, url_stories)
    assert grouping.merged == expected_merged
    # The known stories that nothing joined are not part of either answer.
    found = {g for g in partition_of(grouping, newcomers) if any(isinstance(m, str) for m in g)}
    assert found == expected_groups
    assert len(expected_groups) < len(newcomers)  # titles did join: the test tests something


def test_compose_adds_the_other_outlets_once() -> None:
    headline = article("https://one.example/a", "Headline", related=("https://two.example/b",))
    same_as_related = article("https://two.example/b", "Told by two")
    other = article("https://three.example/c", "Told by three")
    view = compose(headline, [same_as_related, other])
    assert [r.web_url for r in view.related] == [
        "https://two.example/b", "https://three.example/c"
    ]
    assert view.title == headline.title and view.key == headline.key
    assert compose(headline, []) is headline


def test_the_real_corpus_groups_its_retellings(corpus_articles: list[Article]) -> None:
    newcomers = [Newcomer.of(a, 0.0) for a in corpus_articles]
    shuffled = list(newcomers)
    random.Random(3).shuffle(shuffled)
    first = group(newcomers, [], {})
    second = group(shuffled, [], {})

    def partition(grouping: object) -> set[frozenset[str]]:
        groups: dict[int, set[str]] = {}
        for key, number in grouping.new_group.items():  # type: ignore[attr-defined]
            groups.setdefault(number, set()).add(key)
        return {frozenset(g) for g in groups.values()}

    assert partition(first) == partition(second)  # whatever the order
    titles = {a.key: a.title for a in corpus_articles}
    together = [sorted(titles[k] for k in g) for g in partition(first) if len(g) > 1]
    assert any("leukemia" in " ".join(t).casefold() for t in together)
    # The template press releases stay apart.
    assert not any(
        sum("Competency" in t for t in group_titles) > 1 for group_titles in together
    )


@pytest.fixture
def corpus_articles(corpus_dir: Path) -> list[Article]:
    found = []
    for path in sorted(corpus_dir.iterdir()):
        try:
            found.append(parse_article(path.read_bytes(), path.name))
        except Exception:
            continue
    return found
