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
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    if not a or not b:
        return False
    shared = len(set(a).intersection(b))
    if shared < MIN_SHARED_WORDS:
        return False
    if shared < MIN_OVERLAP * min(len(a), len(b)):
        return False
    return shared >= MIN_JACCARD * (len(a) + len(b) - shared)


def candidate_words(words: Sequence[str]) -> tuple[str, ...]:
    """The words of a title that any title matching it must share at least one of (prefix
    filtering for a Jaccard threshold: two sets with J >= t share a word among the first
    |A| - ceil(t*|A|) + 1 of each, in one global order). Indexing only these keeps the
    comparisons few without missing a match."""
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
        parent = self.parent.setdefault(node, node)
        if parent != node:
            parent = self.parent[node] = self.find(parent)
        return parent

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


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
    pool: list[tuple[str, float, tuple[str, ...], object]] = [
        (k.key, k.published_s, k.words, story_node(k.story_id)) for k in known
    ] + [(n.key, n.published_s, n.words, n.key) for n in newcomers]
    index: dict[str, list[int]] = {}
    for position, (_, _, words, _) in enumerate(pool):
        for word in candidate_words(words):
            index.setdefault(word, []).append(position)
    for item in newcomers:
        checked: set[int] = set()
        for word in candidate_words(item.words):
            for position in index.get(word, ()):
                if position in checked:
                    continue
                checked.add(position)
                key, published_s, words, node = pool[position]
                if key == item.key or abs(published_s - item.published_s) > TITLE_WINDOW_S:
                    continue
                if titles_match(item.words, words):
                    links.union(item.key, node)
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
