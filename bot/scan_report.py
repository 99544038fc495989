"""`newsbot scan`: parse a whole store without touching any state, and say what is in it."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from bot.articles import parse_article_outline
from bot.carriers import Carriers, Take
from bot.printable import printable
from bot.scan_cache import CachedDigest, DigestCache
from bot.store import (
    SETTLE_S,
    FileStamp,
    ParseResult,
    Unsettled,
    diff,
    list_store,
    parse_files,
    read_file,
)

# Quality bands for the distribution; real scores run from 0 to about 170.
_BANDS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100), (100, 150), (150, None))


class Digest(NamedTuple):
    """What the report needs of one file: small, so it crosses process boundaries cheaply."""

    path: str
    key: str | None
    topics: tuple[str, ...]
    quality: float | None
    error: str | None
    unsettled: bool


def digest(result: ParseResult) -> Digest:
    if isinstance(result, Unsettled):
        return Digest(result.path, None, (), None, None, True)
    article = result.article
    if article is None:
        return Digest(result.path, None, (), None, result.error or "unreadable", False)
    return Digest(result.path, article.key, article.topics, article.quality, None, False)


@dataclass(slots=True)
class StoreReport:
    root: str
    # Every article file looked at (by name: suffix, not hidden), each counted once as an
    # article, a bad file or one still being written.
    files: int = 0
    articles: int = 0  # article files that parsed; topics and quality count these
    stories: int = 0  # distinct stories among them (several files can carry one URL)
    duplicates: int = 0  # articles whose story an earlier file already carried
    unscored: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    quality: Counter[str] = field(default_factory=Counter)
    bad: list[tuple[str, str]] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    root_exists: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "files": self.files,
            "articles": self.articles,
            "stories": self.stories,
            "duplicates": self.duplicates,
            "unscored": self.unscored,
            "topics": dict(self.topics.most_common()),
            "quality": {band: self.quality.get(band, 0) for band in _band_names()},
            "bad": [{"path": p, "reason": r} for p, r in self.bad],
            "unsettled": self.unsettled,
        }


def _band_name(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi - 1}" if hi else f"{lo}+"


def _band_names() -> list[str]:
    return ["unscored"] + [_band_name(lo, hi) for lo, hi in _BANDS]


def quality_band(quality: float | None) -> str:
    if quality is None:
        return "unscored"
    lo, hi = next(band for band in _BANDS if band[1] is None or quality < band[1])
    return _band_name(lo, hi)


# A report takes each file as it is now: a file that fails to parse is bad *now*, even if it was
# written a moment ago (the reason says so). Only the bot waits for files to settle, because it
# must never post a half-written one.
_AS_IT_IS = math.inf
# A file that changed while it was read is read again this many times before it is reported
# as still being written.
_REREADS = 2


def scan_store(
    root: Path,
    max_bytes: int,
    parallel_threshold: int,
    now_s: float,
    cache: DigestCache | None = None,
) -> StoreReport:
    """Parse every file of the store (or, with a `cache`, every file that changed since the
    last scan) and report on them."""
    listing = list_store(root)
    report = StoreReport(
        root=str(root),
        files=len(listing.files) + len(listing.refused),
        root_exists=listing.root_exists,
    )
    report.bad.extend((p, refused.error or "refused") for p, refused in listing.refused.items())
    topic_names: dict[str, str] = {}
    carriers = Carriers()  # the bot's own rule: the first file to bring a URL carries it
    changing: list[str] = []

    remembered = cache.load() if cache is not None else {}
    known: list[tuple[str, FileStamp, CachedDigest]] = []

    def take(item: Digest) -> None:
        if item.unsettled:
            changing.append(item.path)
            return
        stamp = listing.files.get(item.path)
        if stamp is not None:
            known.append((item.path, stamp, (item.key, item.topics, item.quality, item.error)))
        if item.error is not None and stamp is not None:
            age_s = now_s - stamp.mtime_ns / 1e9
            if age_s < SETTLE_S:
                item = item._replace(
                    error=f"{item.error} (changed {max(age_s, 0.0):.1f} s ago: if it is still "
                    "being written, scan again in a moment)"
                )
        _count(report, item, carriers, topic_names)

    # What changed since the last look: the same rule `run` applies to its database index.
    to_parse = diff({rel: stamp for rel, (stamp, _) in remembered.items()}, listing.files).changed
    parsing = set(to_parse)
    for rel in sorted(listing.files):
        if rel not in parsing:
            take(Digest(rel, *remembered[rel][1], unsettled=False))
    batches = parse_files(
        root,
        to_parse,
        max_bytes,
        _AS_IT_IS,
        parallel_threshold,
        transform=digest,
        parse=parse_article_outline,
    )
    for batch in batches:
        for item in batch:
            take(item)
    for _ in range(_REREADS):
        retry, changing = changing, []
        for rel in retry:
            take(digest(read_file(root, rel, max_bytes, _AS_IT_IS, parse_article_outline)))
    gone = [rel for rel in changing if not os.path.lexists(os.path.join(root, rel))]
    report.files -= len(gone)  # deleted while the scan ran: no longer part of the store
    report.unsettled = sorted(set(changing) - set(gone))
    report.bad.sort()
    unchanged = not to_parse and len(known) == len(remembered)
    if cache is not None and report.root_exists and not unchanged:
        cache.replace_all(known)
    return report


def _count(
    report: StoreReport, item: Digest, carriers: Carriers, topic_names: dict[str, str]
) -> None:
    if item.key is None:
        report.bad.append((item.path, item.error or "unreadable"))
        return
    report.articles += 1
    if carriers.take(item.key, item.path) is Take.DUPLICATE:
        report.duplicates += 1
    else:
        report.stories += 1
    report.unscored += item.quality is None
    report.quality[quality_band(item.quality)] += 1
    for topic in item.topics:
        # Count "ai" and "AI" together, under the first spelling met.
        name = topic_names.setdefault(topic.casefold(), topic)
        report.topics[name] += 1


def format_report(report: StoreReport) -> str:
    """The report for a terminal: names and reasons (which quote file contents) escaped."""
    root = printable(report.root)
    if not report.root_exists:
        return f"{root}: no such folder (check store.path or the PATH argument)\n"
    lines = [
        f"{root}: {report.files} article files: {report.articles} articles"
        + (
            f" ({report.stories} distinct stories; {report.duplicates} "
            + ("file repeats" if report.duplicates == 1 else "files repeat")
            + " a story)"
            if report.duplicates
            else ""
        )
        + f", {len(report.bad)} bad"
        + (f", {len(report.unsettled)} still being written" if report.unsettled else ""),
        "",
        "topics:",
    ]
    lines += [f"  {count:6}  {printable(topic)}" for topic, count in report.topics.most_common()]
    lines += ["", "quality:"]
    lines += [f"  {report.quality.get(band, 0):6}  {band}" for band in _band_names()]
    if report.unscored:
        lines += [
            "",
            f"{report.unscored} articles have no quality score; subscriptions receive them only "
            "with include_unscored = true",
        ]
    if report.bad:
        lines += ["", "bad files:"]
        lines += [f"  {printable(path)}: {printable(reason)}" for path, reason in report.bad]
    if report.unsettled:
        lines += ["", "still being written (look again in a moment):"]
        lines += [f"  {printable(path)}" for path in report.unsettled]
    return "\n".join(lines) + "\n"
