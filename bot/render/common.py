"""Pure helpers shared by the Discord, Slack and console renderers.

Everything here works on cleaned, *unescaped* text; each renderer escapes for its own platform
last, and measures after escaping (escaping only ever makes text longer).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from bot.articles import Article, Image
from bot.urls import domain_of, is_http_url, normalize_url

ELLIPSIS = "…"
ZWSP = "\u200b"  # zero-width space: splits a token (`@everyone`, `*bold*`) without showing
MAX_URL_LENGTH = 2048  # Discord refuses longer embed URLs; no real article link comes close

# Quality bands (scores run from about 4 to 170, not bounded by 100).
TOP_QUALITY = 100.0
HIGH_QUALITY = 50.0
MID_QUALITY = 20.0

# The colour of a message is its quality band, so a busy channel can be skimmed by colour. Topics
# would be a poor key: nearly every article carries "AI", so they would all look alike.
COLOUR_TOP = 0xF1C40F  # gold: 100 and over
COLOUR_HIGH = 0x2ECC71  # green: 50 to 99
COLOUR_MID = 0x3498DB  # blue: 20 to 49
COLOUR_LOW = 0x95A5A6  # grey: under 20
COLOUR_UNSCORED = 0x5865F2  # neutral blurple: no score yet (about half of real articles)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Terminal escape sequences: CSI, OSC (ended by BEL or ST), DCS/SOS/PM/APC strings, two-byte
# escapes, and the 8-bit CSI. Removed whole, so their parameters do not leak into the text.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_SURROGATES = re.compile(r"[\ud800-\udfff]")
# C0/C1 controls become spaces (then collapse); bidi embeddings, overrides and isolates are
# dropped because they can reorder what a reader sees (LRM/RLM marks are harmless and kept).
_CONTROL_TABLE: dict[int, str | None] = {
    **{code: " " for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))},
    **{code: None for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}
_INVISIBLE_TAIL = " \u200b\u200d"
_DANGLING = frozenset(",;:-\u2013\u2014")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters kept as they are in a link; everything else (spaces, `(`, `)`, `|`, `<`, `>`, quotes,
# backslashes, non-ASCII) is percent-encoded so that no platform's link syntax can be broken.
_URL_SAFE = "/!$&'*+,;=:@%~-._?"
_AMP_CACHE_SUFFIX = ".cdn.ampproject.org"
HEADLINE_LIMITS = (90, 60, 36, 0)  # tried in turn when related links must shrink to fit
OUTLET_LIMIT = 40


# --- measuring and trimming -------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: never less than the code-point count, so a limit checked
    this way holds however a platform counts (JavaScript clients count UTF-16)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def clean_text(text: str) -> str:
    """Untrusted text made safe to show anywhere: terminal escapes, control characters,
    bidi overrides and lone surrogates removed; whitespace collapsed to single spaces."""
    text = _ANSI.sub("", text)
    text = _SURROGATES.sub("", text.translate(_CONTROL_TABLE))
    return " ".join(text.split())


def trim_text(text: str, limit: int, *, measure: Callable[[str], int] = len) -> str:
    """`text` with whitespace collapsed, cut at a word boundary with "…" when longer than
    `limit` (as counted by `measure`); the result never exceeds `limit`."""
    text = " ".join(text.split())
    if measure(text) <= limit:
        return text
    budget = limit - measure(ELLIPSIS)
    if budget < 0:
        return ""
    low, high = 0, len(text)  # the longest prefix within budget (measure grows with length)
    while low < high:
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    if low < len(text) and text[low] != " ":
        space = cut.rfind(" ")
        # Back up to the last whole word, unless that would throw away most of the text.
        if space > low // 2:
            cut = cut[:space]
    # No space, zero-width joiner or dangling comma/dash right before the ellipsis.
    tidy = cut.rstrip(_INVISIBLE_TAIL)
    if tidy and tidy[-1] in _DANGLING:
        tidy = tidy[:-1].rstrip(_INVISIBLE_TAIL)
    return (tidy or cut) + ELLIPSIS


def fit_text(
    text: str,
    limit: int,
    escape: Callable[[str], str],
    *,
    measure: Callable[[str], int] = utf16_len,
) -> str:
    """`escape(trimmed text)` no longer than `limit`: trims the raw text (so an escape is never
    cut in half), then, if escaping pushed it over, searches for the longest raw budget whose
    escaped form fits. "" when nothing fits."""
    rendered = escape(trim_text(text, limit, measure=measure))
    if measure(rendered) <= limit:
        return rendered
    best, low, high = "", 0, limit - 1
    while low <= high:
        mid = (low + high) // 2
        candidate = escape(trim_text(text, mid, measure=measure))
        if measure(candidate) <= limit:
            best, low = candidate, mid + 1
        else:
            high = mid - 1
    return best


# --- numbers, times and links ---------------------------------------------------------------


def format_quality(q: float) -> str:
    """A score as people write it: 43 for 43.0, 12.5 for 12.5."""
    if math.isnan(q):
        return "?"
    if math.isinf(q):
        return "∞" if q > 0 else "-∞"
    if abs(q) >= 1e9:  # no real score; keep an absurd one short
        return f"{q:.3g}"
    rounded = round(q, 1)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}"


def as_utc(moment: datetime) -> datetime:
    # The store's naive times are UTC (see bot.articles); aware ones are converted.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """ "18 May 2021 19:56 UTC" (built by hand: strftime is locale- and platform-dependent)."""
    t = as_utc(moment)
    return f"{t.day} {_MONTHS[t.month - 1]} {t.year} {t.hour:02d}:{t.minute:02d} UTC"


def iso_time(moment: datetime) -> str:
    return as_utc(moment).isoformat()


def safe_link_url(url: str | None) -> str | None:
    """`url` ready to put inside any platform's link syntax, or None when it must not be linked:
    only http(s) with a host; credentials dropped (they disguise the real host); host in IDNA;
    path, query and fragment percent-encoded so `(`, `)`, `|`, `<`, `>` and spaces cannot end
    or split a link."""
    if not url or not is_http_url(url):
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except (ValueError, UnicodeError):
        return None
    if not host or any(ch in host for ch in "/?#@ %<>|()\"'\\"):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    tail = parts.path or "/"
    if parts.query:
        tail += "?" + parts.query
    if parts.fragment:
        tail += "#" + parts.fragment
    tail = quote(_STRAY_PERCENT.sub("%25", tail), safe=_URL_SAFE + "#")
    safe = f"{parts.scheme.lower()}://{netloc}{tail}"
    return safe if len(safe) <= MAX_URL_LENGTH else None


def first_image_url(images: Sequence[Image]) -> tuple[str, Image] | None:
    """The first image whose URL can be linked, with the image (for its size and title)."""
    for image in images:
        url = safe_link_url(image.url)
        if url is not None:
            return url, image
    return None


def _normalized(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return normalize_url(url)
    except ValueError:
        return None


def _domain(url: str) -> str:
    try:
        return domain_of(url)
    except ValueError:
        return ""


# --- article facts shown by every renderer ------------------------------------------------------


def display_title(article: Article) -> str:
    return clean_text(article.title) or clean_text(article.provider.name) or "Untitled article"


def outlet_name(article: Article) -> str:
    name = clean_text(article.provider.name) or clean_text(article.provider.domain)
    return name or _domain(article.web_url)


def quality_label(article: Article) -> str | None:
    return None if article.quality is None else f"Quality {format_quality(article.quality)}"


def topics_label(article: Article) -> str:
    return ", ".join(t for t in (clean_text(topic) for topic in article.topics) if t)


def topic_colour(article: Article) -> int:
    """The message colour: the article's quality band (see the COLOUR_* constants)."""
    q = article.quality
    if q is None or math.isnan(q):
        return COLOUR_UNSCORED
    if q >= TOP_QUALITY:
        return COLOUR_TOP
    if q >= HIGH_QUALITY:
        return COLOUR_HIGH
    if q >= MID_QUALITY:
        return COLOUR_MID
    return COLOUR_LOW


# --- related coverage ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelatedLink:
    outlet: str  # the provider's name, else the link's domain; cleaned, not escaped
    headline: str  # cleaned; may be ""
    url: str  # already passed through `safe_link_url`
    quality: float | None
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class RelatedSelection:
    items: tuple[RelatedLink, ...]
    more: int  # how many further distinct items were left out


def _is_amp_cache(url: str) -> bool:
    return _domain(url).endswith(_AMP_CACHE_SUFFIX)


def _preferred_url(candidates: Sequence[str | None]) -> str | None:
    # The publisher's own page first (candidates come as web, AMP, AMP-cache), and never the
    # Google AMP cache when anything else works.
    safe = [s for s in (safe_link_url(u) for u in candidates) if s is not None]
    for url in safe:
        if not _is_amp_cache(url):
            return url
    return safe[0] if safe else None


def _strip_outlet_suffix(headline: str, outlet: str) -> str:
    # "Amazon to extend pause … | Charlotte Observer": the outlet is already named beside it.
    folded = headline.casefold()
    for separator in (" | ", " - ", " \u2013 ", " \u2014 "):
        suffix = (separator + outlet).casefold()
        if outlet and folded.endswith(suffix) and len(headline) > len(suffix):
            return headline[: len(headline) - len(suffix)].rstrip()
    return headline


def _identity_keys(urls: Sequence[str | None]) -> frozenset[str]:
    # Each URL normalized as written and as we would link it (IDNA host, percent-encoding), so
    # two spellings of one page always share a key.
    keys = {_normalized(u) for u in urls} | {_normalized(safe_link_url(u)) for u in urls}
    return frozenset(k for k in keys if k)


def _rank(link: RelatedLink) -> tuple[bool, float, bool, float]:
    # Quality descending (unscored last), then newer first; `sorted` keeps file order for ties.
    quality = link.quality if link.quality is not None and not math.isnan(link.quality) else 0.0
    when = as_utc(link.published_at).timestamp() if link.published_at else 0.0
    return (link.quality is None, -quality, link.published_at is None, -when)


def select_related(article: Article, max_related: int) -> RelatedSelection:
    """The related coverage worth listing, best first: links back to the article itself and
    repeats (same page by any of its URLs, or the same outlet with the same headline) dropped,
    at most `max_related` kept and the rest counted in `more`."""
    own = _identity_keys(
        (
            article.key,
            article.web_url,
            article.original_url,
            article.amp_web_url,
            article.cdn_amp_web_url,
        )
    )
    candidates: list[tuple[RelatedLink, frozenset[str]]] = []
    for item in article.related:
        urls = (item.web_url, item.amp_web_url, item.cdn_amp_web_url)
        keys = _identity_keys(urls)
        url = _preferred_url(urls)
        if url is None or keys & own:
            continue
        outlet = (clean_text(item.provider.name) if item.provider else "") or _domain(url)
        headline = _strip_outlet_suffix(clean_text(item.title), outlet)
        link = RelatedLink(outlet, headline, url, item.quality, item.published_at)
        candidates.append((link, keys))
    candidates.sort(key=lambda pair: _rank(pair[0]))

    seen_urls: set[str] = set()
    seen_headlines: set[tuple[str, str]] = set()
    kept: list[RelatedLink] = []
    for link, keys in candidates:
        headline_key = (link.outlet.casefold(), link.headline.casefold())
        if keys & seen_urls or (link.headline and headline_key in seen_headlines):
            continue
        seen_urls |= keys
        seen_headlines.add(headline_key)
        kept.append(link)
    limit = max(0, max_related)
    return RelatedSelection(items=tuple(kept[:limit]), more=max(0, len(kept) - limit))


def related_label(link: RelatedLink, headline_limit: int) -> str:
    """ "Outlet — headline", the headline trimmed to `headline_limit` (0: the outlet alone)."""
    outlet = trim_text(link.outlet, OUTLET_LIMIT) or "link"
    headline = trim_text(link.headline, headline_limit) if headline_limit > 0 else ""
    return f"{outlet} — {headline}" if headline and headline != ELLIPSIS else outlet


def more_label(count: int) -> str:
    return f"+{count} more"


def coverage_label(article: Article, max_related: int) -> str:
    """ "also covered by 12 outlets" for compact listings; "" when there is none to mention
    (or the channel asked for no related coverage: `max_related` 0)."""
    count = select_related(article, 0).more if max_related > 0 else 0
    if not count:
        return ""
    return f"also covered by {count} {'outlet' if count == 1 else 'outlets'}"


def outlets_label(count: int) -> str:
    """ "1 outlet", "5 outlets": how many outlets told a story (bot/breaking.py counts them)."""
    return f"{count} {'outlet' if count == 1 else 'outlets'}"


def fit_lines(
    lines: Sequence[str],
    more: Callable[[int], str],
    budget: int,
    left_out: int = 0,
    *,
    separator: str = "\n",
    measure: Callable[[str], int] = utf16_len,
) -> tuple[str, ...]:
    """As many of `lines` as fit within `budget` joined by `separator`, in order, followed by
    `more(k)` for the k left out (`left_out` of them already): a list cut short says so."""
    for keep in range(len(lines), -1, -1):
        cut = left_out + len(lines) - keep
        kept = [*lines[:keep], *([more(cut)] if cut else [])]
        if measure(separator.join(kept)) <= budget:
            return tuple(kept)
    return ()


def fit_related_lines(
    selection: RelatedSelection,
    line: Callable[[RelatedLink, int], str],
    more: Callable[[int], str],
    budget: int,
    *,
    measure: Callable[[str], int] = utf16_len,
) -> tuple[str, ...]:
    """One rendered line per related link plus a "+K more" line, joined by newlines within
    `budget`. Headlines shrink first (through HEADLINE_LIMITS); only then are the lowest-ranked
    links dropped into the "+K more" count. `line(link, headline_limit)` renders one link.
    Empty when not a single link fits (or none was selected)."""
    # A link whose shortest line takes over half the space (an absurd URL) is not worth it.
    items = [x for x in selection.items if measure(line(x, 0)) <= budget // 2]
    if not items:
        return ()
    left_out = selection.more + len(selection.items) - len(items)

    def attempt(count: int, headline_limit: int) -> tuple[str, ...] | None:
        lines = [line(x, headline_limit) for x in items[:count]]
        cut = left_out + len(items) - count
        if cut:
            lines.append(more(cut))
        return tuple(lines) if measure("\n".join(lines)) <= budget else None

    for limit in HEADLINE_LIMITS:
        if (lines := attempt(len(items), limit)) is not None:
            return lines
    low, high = 0, len(items) - 1  # all of them do not fit even as bare outlet names
    while low < high:
        mid = (low + high + 1) // 2
        if attempt(mid, 0) is not None:
            low = mid
        else:
            high = mid - 1
    if low == 0:
        return ()  # a bare "+K more" with nothing to click is not worth a section
    for limit in HEADLINE_LIMITS:
        if (lines := attempt(low, limit)) is not None:
            return lines
    return ()
