"""Which articles are one story: pure rules, no I/O.

Two articles are the same story when
- they share a normalized canonical URL (they are the same article: `Article.key`), or
- one lists the other in its `related` coverage (either direction; related URLs normalized the
  same way), or
- their titles are near-identical and they were published within 48 hours of each other.

**Near-identical titles.** A title becomes its set of words: Unicode-normalized (NFKC),
case-folded, split on anything that is not a letter or a digit, with a short list of English
function words dropped. Two word sets match when they have at least 3 words in common, the
smaller set is at least 90 % inside the larger (the overlap coefficient), and the two share at
least 60 % of all their words (the Jaccard index). Overlap alone would join a short headline to
a long different one that contains it; Jaccard alone would join press releases built on one
template ("ElectrifAi achieves AWS Machine Learning Competency..." and "XAPP AI achieves AWS
Machine Learning Competency...", which share 8 of 10 words but only 8 of 9 of the smaller).

Stories are the connected groups of that relation, so the grouping does not depend on the
order in which files arrive (`group` is a union-find over every link). A story keeps the id it
was first given; when an article links two stories, the older id stays.

Comparing titles pair by pair would be quadratic (a first scan places a whole store at once), so
`group` compares only pairs that prefix filtering allows: ordered rarest word first, two
matching titles always share a word among the first few of the smaller one's and the first
~40 % of the larger one's; those words are indexed, by time, so only the 48 hours around each
title are visited. The result is exactly that of comparing every pair (tests hold them equal).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import math
import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.articles import Article, RelatedCoverage
from bot.urls import normalize_url

TITLE_WINDOW_S = 48 * 3600.0
MIN_SHARED_WORDS = 3
MIN_OVERLAP = 0.9
MIN_JACCARD = 0.6

_WORD = re.compile(r"[^\W_]+")
_FUNCTION_WORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "how",
        "in", "into", "is", "it", "its", "of", "on", "or", "that", "the", "their", "this", "to",
        "was", "were", "what", "when", "where", "which", "who", "why", "will", "with",
    }
)


def title_words(title: str) -> tuple[str, ...]:
    """A title's words as the similarity measure sees them, in a fixed global order (by
    hash) so that prefix filtering (`candidate_words`) works on any two titles."""
    text = unicodedata.normalize("NFKC", title).casefold()
    words = {w for w in _WORD.findall(text) if w not in _FUNCTION_WORDS}
    return tuple(sorted(words, key=_order))


def _order(word: str) -> tuple[int, str]:
    return zlib.crc32(word.encode("utf-8")), word


def titles_match(a: Sequence[str], b: Sequence[str]) -> bool:
    """Near-identical by the documented measure (see the module's docstring)."""
    return _sets_match(frozenset(a), frozenset(b))


def _sets_match(a: frozenset[str], b: frozenset[str]) -> bool:
    shared = len(a & b)
    if shared < MIN_SHARED_WORDS:
        return False
    if shared < MIN_OVERLAP * min(len(a), len(b)):
        return False
    return shared >= MIN_JACCARD * (len(a) + len(b) - shared)


def _smaller_prefix(size: int) -> int:
    """How many of its words (rarest first) a title must share one of with any title it
    matches that is at least as long: all but the shared words a match needs, plus one."""
    return size - max(MIN_SHARED_WORDS, math.ceil(MIN_OVERLAP * size)) + 1


def _larger_prefix(size: int) -> int:
    """The same, for a title matched with one at most as long: a match then shares at least
    MIN_JACCARD of this title's words (its union with the other is no smaller)."""
    return size - max(MIN_SHARED_WORDS, math.ceil(MIN_JACCARD * size)) + 1


def candidate_words(words: Sequence[str]) -> tuple[str, ...]:
    """The words of a title that any title matching it must share at least one of (prefix
    filtering for a Jaccard threshold: two sets with J >= t share a word among the first
    |A| - ceil(t*|A|) + 1 of each, in one global order). The database indexes these, in the
    fixed order of `title_words`, to find the stories a newcomer may join."""
    if not words:
        return ()
    keep = len(words) - _ceil(MIN_JACCARD * len(words)) + 1
    return tuple(words[: max(1, keep)])


def _ceil(value: float) -> int:
    whole = int(value)
    return whole if whole == value else whole + 1


def story_urls(article: Article) -> frozenset[str]:
    """The canonical URLs that name this article's story: its own, and its related coverage's
    (a related URL that cannot be normalized is left out)."""
    urls = {article.key}
    for related in article.related:
        for url in (related.web_url, related.amp_web_url, related.cdn_amp_web_url):
            if not url:
                continue
            try:
                urls.add(normalize_url(url))
            except ValueError:
                continue
    return frozenset(urls)


@dataclass(frozen=True, slots=True)
class Known:
    """An article already in a story, as grouping needs it."""

    key: str
    story_id: int
    published_s: float
    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Newcomer:
    """An article to place in a story."""

    key: str
    published_s: float
    words: tuple[str, ...]
    urls: frozenset[str]

    @classmethod
    def of(cls, article: Article, seen_s: float) -> Newcomer:
        published = article.published_at.timestamp() if article.published_at else seen_s
        return cls(article.key, published, title_words(article.title), story_urls(article))


@dataclass(slots=True)
class Grouping:
    """Where each newcomer goes: an existing story (`story_of`), or a new story shared with the
    newcomers of the same `new_group`; and which existing stories join another (`merged`:
    absorbed id -> surviving id)."""

    story_of: dict[str, int] = field(default_factory=dict)
    new_group: dict[str, int] = field(default_factory=dict)
    merged: dict[int, int] = field(default_factory=dict)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, node: object) -> object:
        parent = self.parent
        root = parent.setdefault(node, node)
        while parent[root] != root:
            root = parent[root]
        while node != root:  # path compression, without recursion (chains can be long)
            parent[node], node = root, parent[node]
        return root

    def union(self, a: object, b: object) -> object:
        """Join the groups of `a` and `b`; returns the root of the joined group (`a`'s)."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
        return ra


def group(
    newcomers: Sequence[Newcomer],
    known: Iterable[Known],
    url_stories: Mapping[str, int],
) -> Grouping:
    """Place `newcomers` among the stories. `known`: articles already placed that a newcomer
    might match by title (those published within the window of some newcomer); `url_stories`:
    for every URL a newcomer names (its own and its related ones), the story that already
    claims it."""
    links = _UnionFind()
    story = ("story",)  # tags keep story ids and article keys apart in one union-find

    def story_node(story_id: int) -> tuple[str, int]:
        return (story[0], story_id)

    # Same URL, or a related link, with what is already known.
    for item in newcomers:
        links.find(item.key)
        for url in item.urls:
            claimed = url_stories.get(url)
            if claimed is not None:
                links.union(item.key, story_node(claimed))
    # Related links among the newcomers themselves (either direction).
    by_url: dict[str, str] = {}
    for item in newcomers:
        for url in item.urls:
            other = by_url.setdefault(url, item.key)
            if other != item.key:
                links.union(item.key, other)
    # Near-identical titles within the window: among newcomers, and with known articles.
    _link_titles(
        links,
        [
            _Titled(k.published_s, k.key, frozenset(k.words), story_node(k.story_id), False)
            for k in known
        ]
        + [_Titled(n.published_s, n.key, frozenset(n.words), n.key, True) for n in newcomers],
    )
    # Each group: the oldest story in it survives; a group with none is a new story.
    members: dict[object, list[object]] = {}
    for node in list(links.parent):
        members.setdefault(links.find(node), []).append(node)
    result = Grouping()
    new_groups = 0
    for nodes in members.values():
        stories = sorted(int(n[1]) for n in nodes if isinstance(n, tuple))
        keys = [n for n in nodes if isinstance(n, str)]
        if stories:
            survivor = stories[0]
            for absorbed in stories[1:]:
                result.merged[absorbed] = survivor
            for key in keys:
                result.story_of[key] = survivor
        elif keys:
            for key in keys:
                result.new_group[key] = new_groups
            new_groups += 1
    return result


@dataclass(frozen=True, slots=True)
class _Titled:
    published_s: float
    key: str
    words: frozenset[str]
    node: object  # the union-find node: the key of a newcomer, the story of a known article
    is_new: bool


class _Postings:
    """The titles indexed under one word, in time order."""

    __slots__ = ("times", "titles")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.titles: list[tuple[int, _Titled]] = []

    def around(self, time_s: float) -> list[tuple[int, _Titled]]:
        # One second wider than the window: the exact test is made on each pair.
        lo = bisect.bisect_left(self.times, time_s - TITLE_WINDOW_S - 1.0)
        hi = bisect.bisect_right(self.times, time_s + TITLE_WINDOW_S + 1.0)
        return self.titles[lo:hi]


def _link_titles(links: _UnionFind, pool: list[_Titled]) -> None:
    """Join each newcomer of `pool` with every title of it that matches within the window
    (prefix filtering, see the module's docstring)."""
    pool.sort(key=lambda t: (t.published_s, t.key))
    counts: dict[str, int] = {}
    for titled in pool:
        for word in titled.words:
            counts[word] = counts.get(word, 0) + 1
    # Rarest first, ties by the word itself: one order for every title.
    rank = {w: r for r, w in enumerate(sorted(counts, key=lambda w: (counts[w], w)))}
    prefixes = {n: (_smaller_prefix(n), _larger_prefix(n)) for n in {len(t.words) for t in pool}}
    # `as_smaller[w]`: titles with w among their first _smaller_prefix words; `as_larger[w]`:
    # among their first _larger_prefix words. A word of one title only finds nothing: left out.
    as_smaller: dict[str, _Postings] = {}
    as_larger: dict[str, _Postings] = {}
    ordered: list[list[str]] = []
    for position, titled in enumerate(pool):
        words = sorted(titled.words, key=rank.__getitem__)
        ordered.append(words)
        smaller, larger = prefixes[len(words)]
        for index, keep in ((as_smaller, smaller), (as_larger, larger)):
            for word in words[: max(0, keep)]:
                if counts[word] == 1:
                    continue
                postings = index.get(word)
                if postings is None:
                    postings = index[word] = _Postings()
                postings.times.append(titled.published_s)
                postings.titles.append((position, titled))
    for position, titled in enumerate(pool):
        if not titled.is_new:
            continue
        words = ordered[position]
        smaller, larger = prefixes[len(words)]
        root = links.find(titled.node)
        seen: set[int] = set()
        # A longer partner has the shared word among its first _larger_prefix, this title
        # among its first _smaller_prefix; a shorter partner the other way round.
        for index, keep in ((as_larger, smaller), (as_smaller, larger)):
            for word in words[: max(0, keep)]:
                postings = index.get(word)
                if postings is None:
                    continue
                for other_position, other in postings.around(titled.published_s):
                    # Two newcomers are compared once, by the later of them.
                    if other_position in seen or (other.is_new and other_position >= position):
                        continue
                    if other.key == titled.key:
                        continue  # the article itself, as it was known before this change
                    seen.add(other_position)
                    if abs(other.published_s - titled.published_s) > TITLE_WINDOW_S:
                        continue
                    if links.find(other.node) == root:
                        continue  # already one story: no need to compare
                    if _sets_match(titled.words, other.words):
                        root = links.union(root, other.node)


def compose(headline: Article, others: Sequence[Article]) -> Article:
    """The story as one message shows it: the headline article, with the story's other
    articles added to its related coverage (each as its outlet's link). The renderers pick,
    order and trim the coverage as they do for any article."""
    listed = {headline.key}
    for related in headline.related:
        with contextlib.suppress(ValueError):
            listed.add(normalize_url(related.web_url))
    extra = [
        RelatedCoverage(
            title=other.title,
            web_url=other.web_url,
            excerpt=other.excerpt,
            published_at=other.published_at,
            provider=other.provider,
            quality=other.quality,
        )
        for other in others
        if other.key not in listed
    ]
    if not extra:
        return headline
    return dataclasses.replace(headline, related=(*headline.related, *extra))
