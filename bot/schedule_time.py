"""When a subscription's messages may go: digest times and quiet hours, in the subscription's
own time zone. Pure functions of a passed moment (an aware datetime); nothing here reads a
clock.

Local times are read the way people set them:
- A digest at "08:00" in "Europe/Berlin" goes at 08:00 Berlin time whatever the season (07:00
  UTC in winter, 06:00 UTC in summer).
- A time the clocks skip (02:30 on the night they spring forward) is read with the offset from
  before the change, so it falls as long after the change as it was meant after 02:00 (03:30
  summer time); a time that happens twice (the night they fall back) is its first occurrence.
- Hourly digests go each real hour at the minute of `digest_at` (local minute: a zone offset
  by :30 or :45 has its own), so the fall-back night has 25 of them and the spring one 23.
- Quiet hours are a window of local time, `start` included, `end` excluded, that wraps midnight
  when it ends earlier than it starts ("22:00-07:00").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class DeliveryMode(StrEnum):
    """How a subscription's stories reach its channel."""

    INSTANT = "instant"  # each story posted as it comes
    HOURLY = "hourly"  # one message of the top stories each hour
    DAILY = "daily"  # one message of the top stories each day


DEFAULT_DIGEST_AT = time(8, 0)
DEFAULT_TIMEZONE = "UTC"
TIME_OF_DAY_FORMAT = 'a time of day as HH:MM (24-hour clock), like "08:00"'
TIMEZONE_FORMAT = 'an IANA time zone name, like "Europe/Berlin", "America/New_York" or "UTC"'
QUIET_HOURS_FORMAT = (
    'a window of local time as HH:MM-HH:MM, like "22:00-07:00" (it may wrap midnight; start '
    "and end differ)"
)

_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_ONE_MINUTE = timedelta(minutes=1)
# An hour holds one instant with a given local minute, give or take an offset change: two
# hours of minutes always reach the next one.
_HOURLY_SEARCH_MINUTES = 121


def parse_time_of_day(text: str) -> time:
    """"08:00" (or "8:00") as a time; ValueError naming the format for anything else."""
    match = _TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(TIME_OF_DAY_FORMAT)
    return time(int(match.group(1)), int(match.group(2)))


def format_time_of_day(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; ValueError naming the format for anything else (a path,
    an unknown name)."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(TIMEZONE_FORMAT)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: a path-like name ("../etc"); OSError: a folder such as "Europe".
        raise ValueError(TIMEZONE_FORMAT) from None


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """ "22:00-07:00"; ValueError naming the format otherwise (an empty window too)."""
        if not isinstance(text, str) or text.count("-") != 1:
            raise ValueError(QUIET_HOURS_FORMAT)
        start_text, end_text = text.split("-")
        try:
            start, end = parse_time_of_day(start_text), parse_time_of_day(end_text)
        except ValueError:
            raise ValueError(QUIET_HOURS_FORMAT) from None
        if start == end:
            raise ValueError(QUIET_HOURS_FORMAT)
        return cls(start, end)

    def __str__(self) -> str:
        return f"{format_time_of_day(self.start)}-{format_time_of_day(self.end)}"

    def covers(self, local: time) -> bool:
        """Whether a local wall-clock time is inside the window."""
        local = local.replace(second=0, microsecond=0, tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class Schedule:
    """A subscription's timing: how its stories go, when its digests are due, its quiet
    hours, all in its zone."""

    mode: DeliveryMode = DeliveryMode.INSTANT
    digest_at: time = DEFAULT_DIGEST_AT
    timezone: str = DEFAULT_TIMEZONE
    quiet_hours: QuietHours | None = None

    @property
    def is_digest(self) -> bool:
        return self.mode is not DeliveryMode.INSTANT


def local_moment(day: date, at: time, tz: ZoneInfo, fold: int = 0) -> datetime:
    """The instant (UTC) when the wall clock in `tz` shows `at` on `day` (see the module's
    docstring for skipped and doubled times; `fold=1`: the second of a doubled time)."""
    return datetime.combine(day, at, tzinfo=tz).replace(fold=fold).astimezone(UTC)


def quiet_until(quiet: QuietHours | None, timezone: str, at: datetime) -> datetime | None:
    """When the quiet hours around `at` end (UTC), or None when `at` is not in quiet hours."""
    if quiet is None:
        return None
    tz = zone(timezone)
    local = at.astimezone(tz)
    if not quiet.covers(local.time()):
        return None
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # the window wrapped midnight: it ends tomorrow
    end = local_moment(day, quiet.end, tz)
    if end <= at:
        # `at` is in the second run of a doubled hour, and the window ends in it too.
        end = local_moment(day, quiet.end, tz, fold=1)
    return max(end, at + _ONE_MINUTE)


def _next_daily(at: time, tz: ZoneInfo, after: datetime) -> datetime:
    day = after.astimezone(tz).date() - timedelta(days=1)
    while True:
        candidate = local_moment(day, at, tz)
        if candidate > after:
            return candidate
        day += timedelta(days=1)


def _next_hourly(minute: int, tz: ZoneInfo, after: datetime) -> datetime:
    start = after.astimezone(UTC).replace(second=0, microsecond=0) + _ONE_MINUTE
    for step in range(_HOURLY_SEARCH_MINUTES):
        candidate = start + step * _ONE_MINUTE
        if candidate.astimezone(tz).minute == minute:
            return candidate
    # Unreachable: zone offsets are whole minutes, so every hour shows every minute.
    raise AssertionError(f"no local minute {minute} within two hours")


def next_digest_at(schedule: Schedule, after: datetime) -> datetime:
    """The first digest moment strictly after `after` (UTC). A digest time inside quiet hours
    moves to their end, so the stories of every digest time the window covers go in one
    digest when it ends."""
    if not schedule.is_digest:
        raise ValueError("an instant subscription has no digest times")
    tz = zone(schedule.timezone)
    if schedule.mode is DeliveryMode.DAILY:
        due = _next_daily(schedule.digest_at, tz, after)
    else:
        due = _next_hourly(schedule.digest_at.minute, tz, after)
    held = quiet_until(schedule.quiet_hours, schedule.timezone, due)
    return held if held is not None else due
