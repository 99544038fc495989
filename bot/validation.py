"""The one rule for the numbers a user gives, however they give them (the config file, the
command line, chat, any later interface): finite, and within ranges that mean something. Each
check returns the value or raises `InvalidValue`, whose `expected` each interface puts in its
own words with its own name for the value."""

from __future__ import annotations

import math
import re
from datetime import time as dt_time

from bot.schedule_time import (
    TIME_OF_DAY_FORMAT,
    QuietHours,
    format_time_of_day,
    parse_time_of_day,
    zone,
)

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


# --- digests, quiet hours and breaking stories --------------------------------------------

DELIVERY_MODE_CHOICES = ("instant", "hourly", "daily")
# A story is breaking at this quality or with this many outlets (bot/breaking.py). Real scores
# reach about 170; in the everyday-ai corpus 9 of its 95 scored articles reach 120 (the top
# band, 141 to 167, stands apart), and no related list names more than three other outlets.
DEFAULT_BREAKING_QUALITY = 120.0
DEFAULT_BREAKING_OUTLETS = 4
MAX_BREAKING_OUTLETS = 1000


def delivery_mode(value: str) -> str:
    if value not in DELIVERY_MODE_CHOICES:
        raise InvalidValue("one of " + ", ".join(f'"{c}"' for c in DELIVERY_MODE_CHOICES))
    return value


def time_of_day(value: str | dt_time) -> str:
    """ "08:00" (or "8:00", or a TOML time such as 08:00:00), returned as "08:00"."""
    if isinstance(value, dt_time) and value.second == 0 and value.microsecond == 0:
        return format_time_of_day(value)
    if not isinstance(value, str):
        raise InvalidValue(TIME_OF_DAY_FORMAT)
    try:
        return format_time_of_day(parse_time_of_day(value))
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None


def timezone(value: str) -> str:
    """An IANA zone name the time-zone database knows (daylight saving comes with it)."""
    try:
        zone(value)
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None
    return value


def quiet_hours(value: str) -> str:
    """ "22:00-07:00", returned as written in full ("7:00-9:00" -> "07:00-09:00")."""
    try:
        return str(QuietHours.parse(value))
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None


def breaking_quality(value: float) -> float:
    return quality_floor(value)


def breaking_outlets(value: int) -> int:
    return _whole(value, 1, MAX_BREAKING_OUTLETS)


def mention_id(value: str, pattern: str, expected: str) -> str:
    """An id in the platform's format (`pattern`, a regular expression it must match whole);
    `expected` says that format in words. Ids are never article text, but they go into
    message markup, so nothing else gets through."""
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise InvalidValue(expected)
    return value


# --- learning from reactions ----------------------------------------------------------------

LEARN_CHOICES = ("off", "suggest", "auto")
MAX_WINDOW_DAYS = 365.0
MAX_MIN_PEOPLE = 1000


def learn_mode(value: str) -> str:
    if value not in LEARN_CHOICES:
        raise InvalidValue("one of " + ", ".join(f'"{c}"' for c in LEARN_CHOICES))
    return value


def window_days(value: float) -> float:
    expected = f"a number of days above 0, at most {MAX_WINDOW_DAYS:g}"
    days = finite(value, expected)
    if not 0 < days <= MAX_WINDOW_DAYS:
        raise InvalidValue(expected)
    return days


def min_people(value: int) -> int:
    return _whole(value, 1, MAX_MIN_PEOPLE)
