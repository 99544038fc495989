"""The article: domain objects and the parser from a store file's bytes to a validated `Article`.

The store format is YAML front matter between `---` lines (see docs/article-format.md). PyYAML's
C safe loader is the parser of record; everything it hands back is validated here, because YAML
turns unquoted dates into datetimes and `yes` into booleans, and files come from anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import yaml

from bot.urls import domain_of, is_http_url, normalize_url

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader with its tag resolution unchanged but cheaper to call: the same
    implicit resolvers in the same order, looked up once per first character instead of being
    concatenated per scalar, and no path-resolver bookkeeping (the safe loader has none).
    Every scalar of every file goes through `resolve`, so this is on the hot path."""

    _by_first_char: ClassVar[dict[str, tuple[tuple[str, re.Pattern[str]], ...]]] = {
        first: tuple(resolvers) + tuple(_SafeLoader.yaml_implicit_resolvers.get(None, []))
        for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
        if first is not None
    }
    _wildcards = tuple(_SafeLoader.yaml_implicit_resolvers.get(None, []))

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in self._by_first_char.get(value[:1], self._wildcards):
                    if regexp.match(value):
                        return str(tag)
            return str(self.DEFAULT_SCALAR_TAG)
        if kind is yaml.SequenceNode:
            return str(self.DEFAULT_SEQUENCE_TAG)
        return str(self.DEFAULT_MAPPING_TAG)

DEFAULT_MAX_FILE_BYTES = 1024 * 1024
# Real article files never use YAML anchors; a handful is tolerated, more is an alias bomb.
MAX_ALIASES = 16
# A cheap test for a possible anchor (`&name` after a space, `[`, `{`, `,` or `:`), so that the
# exact but slower token scan runs only on the rare file that may hold one.
_MAYBE_ANCHOR = re.compile(r"(?:^|[\s\[{,:])&\S")
_CLOSING_LINE = re.compile(r"(?:---|\.\.\.)[ \t]*\r?")


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    width: int | None = None
    height: int | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    domain: str
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class RelatedCoverage:
    """The same story from another outlet."""

    title: str
    web_url: str
    excerpt: str = ""
    amp_web_url: str | None = None
    cdn_amp_web_url: str | None = None
    published_at: datetime | None = None
    provider: Provider | None = None
    quality: float | None = None
    type: str | None = None
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class Article:
    key: str  # the normalized canonical URL: the story's identity
    title: str
    web_url: str
    excerpt: str = ""
    published_at: datetime | None = None
    original_url: str | None = None
    amp_web_url: str | None = None
    cdn_amp_web_url: str | None = None
    type: str | None = None
    category: str | None = None
    quality: float | None = None  # None: unscored (about half of real articles)
    heat: int | None = None
    published: bool | None = None
    provider: Provider = field(default_factory=lambda: Provider(name="", domain=""))
    topics: tuple[str, ...] = ()
    images: tuple[Image, ...] = ()
    related: tuple[RelatedCoverage, ...] = ()

    @property
    def is_scored(self) -> bool:
        return self.quality is not None


class ArticleError(Exception):
    """A store file that cannot become an article; `reason` says what is wrong and what to do."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class _Invalid(Exception):
    """Raised inside validation; turned into an `ArticleError` carrying the path."""


# --- reading the front matter -------------------------------------------------------------


def _front_matter(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    first_end = text.find("\n")
    first_line = text if first_end < 0 else text[:first_end]
    if first_line.rstrip() != "---":
        raise _Invalid(
            "no front matter: the file must start with a line '---', then the YAML fields, "
            "then a closing '---' line"
        )
    body_start = first_end + 1
    end = _closing_line(text, body_start) if first_end >= 0 else -1
    if end < 0:
        raise _Invalid(
            "the front matter is not closed: add a line '---' after the last field "
            "(a file still being written looks like this too)"
        )
    return text[body_start:end]


def _closing_line(text: str, start: int) -> int:
    """Where the first line from `start` on that is `---` or `...` (trailing blanks allowed)
    begins, or -1. `text[start - 1]` is the newline that ends the opening line. Candidates are
    found with str.find: a regex tried at every line start costs more than the rest of the
    split on a typical file."""
    pos = start - 1
    while True:
        hits = [h for h in (text.find("\n---", pos), text.find("\n...", pos)) if h >= 0]
        if not hits:
            return -1
        line_start = min(hits) + 1
        line_end = text.find("\n", line_start)
        if _CLOSING_LINE.fullmatch(text, line_start, line_end if line_end >= 0 else len(text)):
            return line_start
        pos = line_start


def _count_aliases(block: str) -> int:
    tokens = yaml.scan(block, Loader=_Loader)
    return sum(1 for token in tokens if isinstance(token, yaml.AliasToken))


_STR, _SEQ, _MAP, _MERGE = (
    f"tag:yaml.org,2002:{name}" for name in ("str", "seq", "map", "merge")
)


def _build(loader: Any, node: yaml.Node) -> Any:
    """What `loader.construct_object(node, deep=True)` gives, built directly for the plain
    shapes (strings, lists, mappings without merge keys) that make up almost all of a file;
    every other node (numbers, dates, booleans, nulls, merges, tags) goes to PyYAML's own
    constructor. Only for documents without aliases, where no node is shared."""
    kind = type(node)
    if kind is yaml.ScalarNode:
        if node.tag == _STR:
            return node.value
    elif kind is yaml.SequenceNode:
        if node.tag == _SEQ:
            return [_build(loader, item) for item in node.value]
    elif kind is yaml.MappingNode and node.tag == _MAP:
        built: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                return loader.construct_object(node, deep=True)
            key = _build(loader, key_node)
            if not isinstance(key, Hashable):
                return loader.construct_object(node, deep=True)  # PyYAML names the error
            built[key] = _build(loader, value_node)
        return built
    return loader.construct_object(node, deep=True)


def _construct(block: str, unbuilt: frozenset[str], shared_nodes: bool) -> Any:
    """PyYAML's construction of `block`, except that the top-level fields named in `unbuilt`
    are checked for shape but not built (a list there stays empty). `shared_nodes`: the block
    may use aliases; then PyYAML builds everything itself (sharing nodes as it does)."""
    loader = _Loader(block)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if shared_nodes:
            if not unbuilt or not isinstance(node, yaml.MappingNode):
                return loader.construct_document(node)

            def build(part: yaml.Node) -> Any:
                return loader.construct_object(part, deep=True)

        else:

            def build(part: yaml.Node) -> Any:
                return _build(loader, part)

        if not unbuilt or not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
            return build(node)
        loader.flatten_mapping(node)  # `<<` merge keys, as the constructor would
        fields: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = build(key_node)
            if not isinstance(key, Hashable):
                raise _Invalid("the front matter has a key that is a list or a mapping")
            if key in unbuilt and isinstance(value_node, yaml.SequenceNode):
                fields[key] = []
            else:
                fields[key] = build(value_node)
        return fields
    finally:
        loader.dispose()


def _load_yaml(block: str, unbuilt: frozenset[str] = frozenset()) -> Any:
    try:
        # `&` is rare enough that its absence (a C-speed test) skips even the regex. The token
        # scan is inside the `try`: it meets a syntax error before the loader would.
        shared_nodes = "&" in block and "*" in block  # aliases are possible
        if shared_nodes and _MAYBE_ANCHOR.search(block) and _count_aliases(block) > MAX_ALIASES:
            raise _Invalid(
                f"the front matter uses more than {MAX_ALIASES} YAML aliases (an 'alias bomb'); "
                "write the values out instead of using '&anchor' / '*alias'"
            )
        return _construct(block, unbuilt, shared_nodes)  # a safe loader (C or Python)
    except yaml.constructor.ConstructorError as exc:
        problem = exc.problem or "unsupported value"
        raise _Invalid(
            f"unsupported YAML tag ({problem.strip()}): article files may hold only plain "
            "strings, numbers, dates, lists and mappings"
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise _Invalid(
            f"{_syntax_error(exc, block)}; quote values that contain ': ' or start with a "
            "special character"
        ) from None
    except yaml.reader.ReaderError as exc:
        line = block.count("\n", 0, max(exc.position, 0)) + 2
        raise _Invalid(
            f"a control character (#x{exc.character:04x}) at line {line}: YAML does not allow "
            "it; remove it from the file"
            if isinstance(exc.character, int)
            else f"YAML error at line {line}: {exc.reason}"
        ) from None
    except yaml.YAMLError as exc:
        raise _Invalid(f"YAML error: {exc}") from None


def _file_position(mark: yaml.Mark) -> str:
    # Marks count from 0 within the front matter; an editor counts from 1 within the file,
    # whose line 1 is the opening `---`.
    return f"line {mark.line + 2}, column {mark.column + 1}"


def _syntax_error(exc: yaml.MarkedYAMLError, block: str) -> str:
    """Where the mistake is, as an editor shows it. PyYAML notices an unclosed quote or
    bracket only where the front matter ends; then the place it was opened is the one to fix."""
    problem = (exc.problem or "invalid YAML").strip()
    mark, start = exc.problem_mark, exc.context_mark
    what = (exc.context or "").removeprefix("while scanning ").removeprefix("while parsing ")
    if mark is None:
        return f"YAML syntax error: {problem}"
    if start is None or not what or (start.line, start.column) == (mark.line, mark.column):
        return f"YAML syntax error at {_file_position(mark)}: {problem}"
    if mark.index >= len(block.rstrip()):
        return (
            f"YAML syntax error at {_file_position(start)}: {what} that is never closed "
            f"({problem} at the end of the front matter)"
        )
    return (
        f"YAML syntax error at {_file_position(mark)}: {problem} (in {what} that starts at "
        f"{_file_position(start)})"
    )


# --- field validation ---------------------------------------------------------------------


def _type_name(value: object) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "a mapping",
        type(None): "empty",
        datetime: "a date-time",
        date: "a date",
    }.get(type(value), type(value).__name__)


def _optional_str(data: Mapping[str, Any], key: str, where: str = "") -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    # YAML reads an unquoted 12 or 2021-05-18 as a number or date; the text was meant.
    if isinstance(value, int | float | date) and not isinstance(value, bool):
        return str(value)
    raise _Invalid(f"`{where}{key}` must be a string, not {_type_name(value)}")


def _url(data: Mapping[str, Any], key: str, where: str = "") -> str | None:
    value = _optional_str(data, key, where)
    if value is None or not value.strip():
        return None
    if not is_http_url(value):
        raise _Invalid(f"`{where}{key}` must be an http(s) URL, got {value[:80]!r}")
    return value.strip()


def _lenient_url(data: Mapping[str, Any], key: str) -> str | None:
    # Secondary links (AMP, CDN) are a convenience: a bad one is dropped, not an error.
    value = data.get(key)
    return value.strip() if isinstance(value, str) and is_http_url(value) else None


def _quality(data: Mapping[str, Any], key: str, where: str = "") -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(
            f"`{where}{key}` must be a number of 0 or more (or absent for an unscored "
            f"article), not {_type_name(value)}"
        )
    if not math.isfinite(value):
        raise _Invalid(f"`{where}{key}` must be a finite number of 0 or more, got {value}")
    if value < 0:
        raise _Invalid(f"`{where}{key}` must be 0 or more, got {value}")
    return float(value)


def _datetime(data: Mapping[str, Any], key: str, where: str = "") -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Invalid(
                f"`{where}{key}` must be an ISO 8601 date-time such as 2021-05-18T19:56:00Z, "
                f"got {value[:40]!r}"
            ) from None
    else:
        raise _Invalid(f"`{where}{key}` must be a date-time, not {_type_name(value)}")
    # Naive times in the store are UTC (the files write `Z`; YAML drops it on some paths).
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _images(value: object) -> tuple[Image, ...]:
    # Images are decoration: malformed entries are skipped rather than failing the article.
    if not isinstance(value, list):
        return ()
    images = []
    for item in value:
        if isinstance(item, Mapping):
            url = item.get("url")
            # A prefix test, not a full URL parse: images are many and only ever linked.
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                title = item.get("title")
                images.append(
                    Image(
                        url=url.strip(),
                        width=_int_or_none(item.get("width")),
                        height=_int_or_none(item.get("height")),
                        title=title if isinstance(title, str) else None,
                    )
                )
    return tuple(images)


def _provider(value: object, fallback_url: str, where: str = "") -> Provider:
    if value is None:
        domain = domain_of(fallback_url)
        return Provider(name=domain, domain=domain)
    if not isinstance(value, Mapping):
        raise _Invalid(f"`{where}provider` must be a mapping with name and domain")
    domain = _optional_str(value, "domain", f"{where}provider.") or domain_of(fallback_url)
    name = (_optional_str(value, "name", f"{where}provider.") or "").strip() or domain
    return Provider(name=name, domain=domain.strip(), images=_images(value.get("images")))


def _topics(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("topics")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _Invalid(
            "`topics` must be a list of strings, for example:\n  topics:\n    - AI\n"
            "    - Machine Learning"
        )
    seen: dict[str, str] = {}
    for topic in value:
        cleaned = " ".join(topic.split())
        if cleaned and cleaned.casefold() not in seen:
            seen[cleaned.casefold()] = cleaned
    return tuple(seen.values())


def _related_item(item: object) -> RelatedCoverage | None:
    # One broken related item must not cost the reader the story; it is dropped.
    if not isinstance(item, Mapping):
        return None
    try:
        web_url = _url(item, "webUrl") or _lenient_url(item, "ampWebUrl")
        if web_url is None:
            return None
        title = _optional_str(item, "title") or ""
        return RelatedCoverage(
            title=" ".join(title.split()),
            web_url=web_url,
            excerpt=_optional_str(item, "excerpt") or "",
            amp_web_url=_lenient_url(item, "ampWebUrl"),
            cdn_amp_web_url=_lenient_url(item, "cdnAmpWebUrl"),
            published_at=_datetime(item, "publishedDateTime"),
            provider=_provider(item.get("provider"), web_url),
            quality=_quality(item, "quality"),
            type=_optional_str(item, "type"),
            images=_images(item.get("images")),
        )
    except _Invalid:
        return None


def article_from_mapping(data: object) -> Article:
    """Validate loaded front matter; raises `_Invalid` with a reason a person can act on."""
    if not isinstance(data, Mapping):
        raise _Invalid(
            f"the front matter must be a mapping of fields (title: ..., webUrl: ...), "
            f"not {_type_name(data)}"
        )
    raw_title = data.get("title")
    if raw_title is None:
        raise _Invalid("no `title`: every article needs a title")
    if not isinstance(raw_title, str):
        raise _Invalid(f"`title` must be a string, not {_type_name(raw_title)}; quote it")
    title = " ".join(raw_title.split())
    if not title:
        raise _Invalid("`title` is empty: every article needs a title")
    web_url = _url(data, "webUrl")
    original_url = _url(data, "originalUrl")
    canonical = web_url or original_url
    if canonical is None:
        raise _Invalid("no `webUrl` (or `originalUrl`): every article needs the link to its page")
    related = data.get("related")
    if related is not None and not isinstance(related, list):
        raise _Invalid("`related` must be a list of articles")
    excerpt = _optional_str(data, "excerpt") or ""
    published = data.get("published")
    return Article(
        key=normalize_url(canonical),
        title=title,
        web_url=canonical,
        excerpt=excerpt.strip(),
        published_at=_datetime(data, "publishedDateTime"),
        original_url=original_url,
        amp_web_url=_lenient_url(data, "ampWebUrl"),
        cdn_amp_web_url=_lenient_url(data, "cdnAmpWebUrl"),
        type=_optional_str(data, "type"),
        category=_optional_str(data, "category"),
        quality=_quality(data, "quality"),
        heat=_int_or_none(data.get("heat")),
        published=published if isinstance(published, bool) else None,
        provider=_provider(data.get("provider"), canonical),
        topics=_topics(data),
        images=_images(data.get("images")),
        related=tuple(r for r in map(_related_item, related or ()) if r is not None),
    )


def parse_article(data: bytes, path: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Article:
    """Bytes of a store file in, a validated `Article` out, or an `ArticleError` naming `path`."""
    return _parse(data, path, max_bytes, frozenset())


# The lists an outline leaves unbuilt: on many real files, most of the front matter.
_OUTLINE_UNBUILT = frozenset({"related", "images"})


def parse_article_outline(
    data: bytes, path: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Article:
    """`parse_article` for counting what a store holds (`newsbot scan`): the same checks and
    errors, but `related` and `images` are checked for syntax and shape only and left empty,
    which saves about a twentieth of the parse. Never show or store an outline."""
    return _parse(data, path, max_bytes, _OUTLINE_UNBUILT)


def _parse(data: bytes, path: str, max_bytes: int, unbuilt: frozenset[str]) -> Article:
    if len(data) > max_bytes:
        raise ArticleError(
            path,
            f"the file is {len(data):,} bytes, over the {max_bytes:,}-byte limit "
            "(store.max_file_bytes); article files are a few kilobytes",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ArticleError(
            path,
            f"not valid UTF-8 (line {line}, byte {exc.start}): save the file with UTF-8 encoding",
        ) from None
    try:
        return article_from_mapping(_load_yaml(_front_matter(text), unbuilt))
    except _Invalid as exc:
        raise ArticleError(path, str(exc)) from None


# --- serialization for the state database ---------------------------------------------------


def _image_dict(image: Image) -> dict[str, Any]:
    return {"url": image.url, "width": image.width, "height": image.height, "title": image.title}


def _provider_dict(provider: Provider) -> dict[str, Any]:
    return {
        "name": provider.name,
        "domain": provider.domain,
        "images": [_image_dict(i) for i in provider.images],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def article_to_dict(article: Article) -> dict[str, Any]:
    """A JSON-ready dict; `article_from_dict` inverts it exactly."""
    return {
        "key": article.key,
        "title": article.title,
        "web_url": article.web_url,
        "excerpt": article.excerpt,
        "published_at": _iso(article.published_at),
        "original_url": article.original_url,
        "amp_web_url": article.amp_web_url,
        "cdn_amp_web_url": article.cdn_amp_web_url,
        "type": article.type,
        "category": article.category,
        "quality": article.quality,
        "heat": article.heat,
        "published": article.published,
        "provider": _provider_dict(article.provider),
        "topics": list(article.topics),
        "images": [_image_dict(i) for i in article.images],
        "related": [
            {
                "title": r.title,
                "web_url": r.web_url,
                "excerpt": r.excerpt,
                "amp_web_url": r.amp_web_url,
                "cdn_amp_web_url": r.cdn_amp_web_url,
                "published_at": _iso(r.published_at),
                "provider": _provider_dict(r.provider) if r.provider else None,
                "quality": r.quality,
                "type": r.type,
                "images": [_image_dict(i) for i in r.images],
            }
            for r in article.related
        ],
    }


def _image_from(d: Mapping[str, Any]) -> Image:
    return Image(url=d["url"], width=d.get("width"), height=d.get("height"), title=d.get("title"))


def _provider_from(d: Mapping[str, Any]) -> Provider:
    return Provider(
        name=d["name"], domain=d["domain"], images=tuple(_image_from(i) for i in d["images"])
    )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def article_from_dict(d: Mapping[str, Any]) -> Article:
    related: Sequence[Mapping[str, Any]] = d["related"]
    return Article(
        key=d["key"],
        title=d["title"],
        web_url=d["web_url"],
        excerpt=d["excerpt"],
        published_at=_dt(d["published_at"]),
        original_url=d["original_url"],
        amp_web_url=d["amp_web_url"],
        cdn_amp_web_url=d["cdn_amp_web_url"],
        type=d["type"],
        category=d["category"],
        quality=d["quality"],
        heat=d["heat"],
        published=d["published"],
        provider=_provider_from(d["provider"]),
        topics=tuple(d["topics"]),
        images=tuple(_image_from(i) for i in d["images"]),
        related=tuple(
            RelatedCoverage(
                title=r["title"],
                web_url=r["web_url"],
                excerpt=r["excerpt"],
                amp_web_url=r["amp_web_url"],
                cdn_amp_web_url=r["cdn_amp_web_url"],
                published_at=_dt(r["published_at"]),
                provider=_provider_from(r["provider"]) if r["provider"] else None,
                quality=r["quality"],
                type=r["type"],
                images=tuple(_image_from(i) for i in r["images"]),
            )
            for r in related
        ),
    )
