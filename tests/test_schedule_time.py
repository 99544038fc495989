"""bot/schedule_time.py: digest times and quiet hours in a subscription's own zone, on a passed
moment, through daylight-saving changes and windows that wrap midnight.

Europe/Berlin in 2026 springs forward on 29 March (02:00 CET -> 03:00 CEST) and falls back on 25
October (03:00 CEST -> 02:00 CET)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from bot.schedule_time import (
    DeliveryMode,
    QuietHours,
    Schedule,
    next_digest_at,
    parse_time_of_day,
    quiet_until,
    zone,
)

BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def daily(at: str, tz: str = BERLIN, quiet: str | None = None) -> Schedule:
    return Schedule(
        DeliveryMode.DAILY, parse_time_of_day(at), tz, QuietHours.parse(quiet) if quiet else None
    )


def hourly(at: str, tz: str = BERLIN, quiet: str | None = None) -> Schedule:
    return Schedule(
        DeliveryMode.HOURLY, parse_time_of_day(at), tz, QuietHours.parse(quiet) if quiet else None
    )


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("08:00", time(8)), ("8:05", time(8, 5)),
                                                ("23:59", time(23, 59)), ("00:00", time(0))])
def test_times_of_day(text: str, expected: time) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("text", ["24:00", "8", "08:60", "8h", "08:00:00", "", "-1:00", "0800"])
def test_bad_times_of_day_name_the_format(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_time_of_day(text)


@pytest.mark.parametrize("text", ["22:00-22:00", "22:00", "22:00-7", "a-b", "22:00-07:00-08:00"])
def test_bad_quiet_hours(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        QuietHours.parse(text)


@pytest.mark.parametrize("name", ["Europe", "Mars/Olympus", "../etc/passwd", "/etc/localtime",
                                  "", " UTC", "europe/berlin!"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="IANA"):
        zone(name)


# --- quiet hours ------------------------------------------------------------------------------


def test_a_window_that_wraps_midnight() -> None:
    quiet = QuietHours.parse("22:00-07:00")
    inside = [time(22), time(23, 59), time(0), time(3, 30), time(6, 59)]
    outside = [time(7), time(12), time(21, 59)]
    assert [quiet.covers(t) for t in inside] == [True] * len(inside)
    assert [quiet.covers(t) for t in outside] == [False] * len(outside)
    daytime = QuietHours.parse("12:00-14:00")
    assert [daytime.covers(t) for t in (time(11, 59), time(12), time(13, 59), time(14))] == [
        False, True, True, False,
    ]


def test_quiet_hours_end_at_the_local_time_winter_and_summer() -> None:
    quiet = QuietHours.parse("22:00-07:00")
    # 23:30 in Berlin in winter (UTC+1): quiet until 07:00 the next morning, 06:00 UTC.
    assert quiet_until(quiet, BERLIN, utc(2026, 1, 14, 22, 30)) == utc(2026, 1, 15, 6)
    # After midnight: until 07:00 the same day.
    assert quiet_until(quiet, BERLIN, utc(2026, 1, 15, 2, 0)) == utc(2026, 1, 15, 6)
    # In summer (UTC+2), 07:00 is 05:00 UTC.
    assert quiet_until(quiet, BERLIN, utc(2026, 7, 14, 21, 30)) == utc(2026, 7, 15, 5)
    # Not quiet: None, also a minute before the window and exactly at its end.
    assert quiet_until(quiet, BERLIN, utc(2026, 1, 15, 20, 59)) is None
    assert quiet_until(quiet, BERLIN, utc(2026, 1, 15, 6, 0)) is None
    assert quiet_until(None, BERLIN, utc(2026, 1, 15, 2, 0)) is None


def test_quiet_hours_across_the_clock_changes() -> None:
    quiet = QuietHours.parse("22:00-07:00")
    # The spring night is an hour shorter: 23:00 CET on 28 March to 07:00 CEST (05:00 UTC).
    assert quiet_until(quiet, BERLIN, utc(2026, 3, 28, 22)) == utc(2026, 3, 29, 5)
    # The autumn night an hour longer: 23:00 CEST on 24 October to 07:00 CET (06:00 UTC).
    assert quiet_until(quiet, BERLIN, utc(2026, 10, 24, 21)) == utc(2026, 10, 25, 6)
    # Inside the doubled hour (02:30 CET, the second 02:30) of a window ending at 02:45: the
    # second 02:45, not the first (already past).
    early = QuietHours.parse("01:00-02:45")
    second_0230 = utc(2026, 10, 25, 1, 30)
    assert quiet_until(early, BERLIN, second_0230) == utc(2026, 10, 25, 1, 45)


# --- digest times -----------------------------------------------------------------------------


def test_daily_digest_at_the_local_time_winter_and_summer() -> None:
    schedule = daily("08:00")
    assert next_digest_at(schedule, utc(2026, 1, 14, 12)) == utc(2026, 1, 15, 7)
    assert next_digest_at(schedule, utc(2026, 1, 15, 6, 59, 59)) == utc(2026, 1, 15, 7)
    # Strictly after: at 08:00 itself the next is tomorrow's.
    assert next_digest_at(schedule, utc(2026, 1, 15, 7)) == utc(2026, 1, 16, 7)
    assert next_digest_at(schedule, utc(2026, 7, 14, 12)) == utc(2026, 7, 15, 6)


def test_daily_digests_across_the_spring_and_autumn_changes() -> None:
    schedule = daily("08:00")
    saturday = next_digest_at(schedule, utc(2026, 3, 27, 12))
    sunday = next_digest_at(schedule, saturday)
    monday = next_digest_at(schedule, sunday)
    assert [saturday, sunday, monday] == [
        utc(2026, 3, 28, 7), utc(2026, 3, 29, 6), utc(2026, 3, 30, 6),
    ]
    assert sunday - saturday == timedelta(hours=23)
    before = next_digest_at(schedule, utc(2026, 10, 23, 12))
    after = next_digest_at(schedule, before)
    assert [before, after] == [utc(2026, 10, 24, 6), utc(2026, 10, 25, 7)]  # CEST, then CET
    assert after - before == timedelta(hours=25)


def test_a_skipped_time_reads_with_the_old_offset_and_a_doubled_one_goes_once() -> None:
    # 02:30 does not happen on 29 March in Berlin: 02:30 CET is 01:30 UTC (03:30 CEST).
    skipped = daily("02:30")
    assert next_digest_at(skipped, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 30)
    # 02:30 happens twice on 25 October: the first (CEST, 00:30 UTC), and not again at the
    # second (01:30 UTC): the next one is the day after.
    doubled = daily("02:30")
    first = next_digest_at(doubled, utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)
    assert next_digest_at(doubled, first) == utc(2026, 10, 26, 1, 30)


def test_hourly_digests_at_the_minute_each_real_hour() -> None:
    schedule = hourly("08:15")
    assert next_digest_at(schedule, utc(2026, 1, 14, 12, 14)) == utc(2026, 1, 14, 12, 15)
    assert next_digest_at(schedule, utc(2026, 1, 14, 12, 15)) == utc(2026, 1, 14, 13, 15)

    def per_local_day(day: datetime) -> int:
        tz = zone(BERLIN)
        start = day.replace(tzinfo=tz).astimezone(UTC)
        end = (day + timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC)
        count, moment = 0, start
        while (moment := next_digest_at(schedule, moment)) < end:
            count += 1
        return count

    assert per_local_day(datetime(2026, 3, 29)) == 23
    assert per_local_day(datetime(2026, 10, 25)) == 25
    assert per_local_day(datetime(2026, 1, 14)) == 24


def test_hourly_in_a_half_hour_zone_uses_the_local_minute() -> None:
    # India is UTC+05:30: :00 local is :30 UTC.
    schedule = hourly("08:00", tz="Asia/Kolkata")
    assert next_digest_at(schedule, utc(2026, 1, 14, 12, 0)) == utc(2026, 1, 14, 12, 30)


def test_a_digest_due_in_quiet_hours_goes_when_they_end_once() -> None:
    night = hourly("00:00", quiet="22:00-07:00")
    # 21:30 Berlin: 22:00 is quiet, and so is every hour until 07:00: one digest at 07:00.
    first = next_digest_at(night, utc(2026, 1, 14, 20, 30))
    assert first == utc(2026, 1, 15, 6)
    assert next_digest_at(night, first) == utc(2026, 1, 15, 7)  # 08:00, and on each hour
    early = daily("06:00", quiet="22:00-07:00")
    assert next_digest_at(early, utc(2026, 1, 14, 12)) == utc(2026, 1, 15, 6)  # 07:00 local
    # A digest time outside quiet hours is left alone.
    assert next_digest_at(daily("08:00", quiet="22:00-07:00"), utc(2026, 1, 14, 12)) == utc(
        2026, 1, 15, 7
    )


def test_an_instant_subscription_has_no_digest_time() -> None:
    with pytest.raises(ValueError, match="instant"):
        next_digest_at(Schedule(), utc(2026, 1, 14))
