"""`newsbot scan`: parse a whole store without touching any state, and say what is in it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.store import FileOutcome, Unsettled, list_store, parse_files

# Quality bands for the distribution; real scores run from 0 to about 170.
_BANDS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100), (100, 150), (150, None))


@dataclass(slots=True)
class StoreReport:
    root: str
    files: int = 0
    articles: int = 0  # distinct stories (several files can carry one)
    duplicates: int = 0
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


def scan_store(root: Path, max_bytes: int, parallel_threshold: int, now_s: float) -> StoreReport:
    listing = list_store(root)
    report = StoreReport(root=str(root), files=len(listing.files), root_exists=listing.root_exists)
    report.bad.extend(listing.refused.items())
    topic_names: dict[str, str] = {}
    seen: set[str] = set()
    for batch in parse_files(root, sorted(listing.files), max_bytes, now_s, parallel_threshold):
        for result in batch:
            if isinstance(result, Unsettled):
                report.unsettled.append(result.path)
                continue
            _count(report, result, seen, topic_names)
    report.bad.sort()
    return report


def _count(
    report: StoreReport, outcome: FileOutcome, seen: set[str], topic_names: dict[str, str]
) -> None:
    article = outcome.article
    if article is None:
        report.bad.append((outcome.path, outcome.error or "unreadable"))
        return
    if article.key in seen:
        report.duplicates += 1
        return
    seen.add(article.key)
    report.articles += 1
    report.unscored += article.quality is None
    report.quality[quality_band(article.quality)] += 1
    for topic in article.topics:
        # Count "ai" and "AI" together, under the first spelling met.
        name = topic_names.setdefault(topic.casefold(), topic)
        report.topics[name] += 1


def format_report(report: StoreReport) -> str:
    if not report.root_exists:
        return f"{report.root}: no such folder (check store.path or the PATH argument)\n"
    lines = [
        f"{report.root}: {report.files} files, {report.articles} articles"
        + (f" ({report.duplicates} duplicate files)" if report.duplicates else "")
        + f", {len(report.bad)} bad",
        "",
        "topics:",
    ]
    lines += [f"  {count:6}  {topic}" for topic, count in report.topics.most_common()]
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
        lines += [f"  {path}: {reason}" for path, reason in report.bad]
    if report.unsettled:
        lines += ["", "still being written (look again in a moment):"]
        lines += [f"  {path}" for path in report.unsettled]
    return "\n".join(lines) + "\n"
