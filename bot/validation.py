"""The one rule for the numbers a user gives, however they give them (the config file, the
command line, chat, any later interface): finite, and within ranges that mean something. Each
check returns the value or raises `InvalidValue`, whose `expected` each interface puts in its
own words with its own name for the value."""

from __future__ import annotations

import math

# Article scores reach about 170; a floor above this would only ever hide everything.
MAX_QUALITY = 1000.0
MAX_BACKFILL = 1000
MAX_AGE_DAYS = 36500.0  # a hundred years
MAX_NEWS_COUNT = 10

QUALITY_RANGE = f"a number from 0 to {MAX_QUALITY:g} (article scores reach about 170)"


class InvalidValue(ValueError):
    """`expected`: what is allowed, e.g. "a whole number from 0 to 1000"."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def finite(value: float, expected: str) -> float:
    """Every number newsbot accepts is finite (TOML and `float()` both read `nan` and `inf`)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValue(expected)
    return float(value)


def quality_floor(value: float) -> float:
    floor = finite(value, QUALITY_RANGE)
    if not 0 <= floor <= MAX_QUALITY:
        raise InvalidValue(QUALITY_RANGE)
    return floor


def _whole(value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidValue(f"a whole number from {low} to {high}")
    return value


def backfill(value: int) -> int:
    return _whole(value, 0, MAX_BACKFILL)


def news_count(value: int) -> int:
    return _whole(value, 1, MAX_NEWS_COUNT)


def max_age_days(value: float) -> float:
    expected = f"a number of days above 0, at most {MAX_AGE_DAYS:g}"
    days = finite(value, expected)
    if not 0 < days <= MAX_AGE_DAYS:
        raise InvalidValue(expected)
    return days


MAX_HEADLINE_MARGIN = MAX_QUALITY
HEADLINE_MARGIN_RANGE = f"a number of quality points from 0 to {MAX_HEADLINE_MARGIN:g}"


def headline_margin(value: float) -> float:
    margin = finite(value, HEADLINE_MARGIN_RANGE)
    if not 0 <= margin <= MAX_HEADLINE_MARGIN:
        raise InvalidValue(HEADLINE_MARGIN_RANGE)
    return margin


LATE_COVERAGE_CHOICES = ("edit", "thread", "off")


def late_coverage(value: str) -> str:
    if value not in LATE_COVERAGE_CHOICES:
        raise InvalidValue("one of " + ", ".join(f'"{c}"' for c in LATE_COVERAGE_CHOICES))
    return value
