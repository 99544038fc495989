"""What people type into the panel, read into typed values: the subscription form into a
`SubscriptionSpec` (each field held to the one rule, bot/validation.py, and named when it is
wrong), a channel's platform and id, and the delivery log's filters. Nothing here trusts the
browser: a field may be missing, repeated, enormous or not text at all."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from bot import validation
from bot.commands import MAX_CHANNEL_LENGTH, MAX_TOPIC_LENGTH
from bot.config import SubscriptionSpec
from bot.panel.queries import LogFilter
from bot.platforms.registry import PLATFORMS, check_mention
from bot.validation import DEFAULT_BREAKING_OUTLETS, DEFAULT_BREAKING_QUALITY

T = TypeVar("T")
MAX_FIELD_CHARS = 2000
MAX_LIST_ITEMS = 50
_NUMBER = re.compile(r"[-+]?(?:\d{1,7}(?:\.\d{0,6})?|\.\d{1,6})")
_WHOLE = re.compile(r"\d{1,7}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID = re.compile(r"[1-9]\d{0,11}")

# The subscription form's fields, and what an empty one means.
SUBSCRIPTION_FIELDS = (
    "platform", "channel", "topics", "min_quality", "include_unscored", "backfill",
    "providers_include", "providers_exclude", "keywords", "max_age_days", "late_coverage",
    "headline_margin", "mode", "digest_at", "timezone", "quiet_hours", "breaking_quality",
    "breaking_outlets", "mention",
)


class FormError(ValueError):
    """A form that cannot be read at all (the message says why)."""


@dataclass(frozen=True, slots=True)
class SpecForm:
    """The subscription form read: the spec when every field is right, else the problems by
    field (and the values as typed, to show them again)."""

    values: Mapping[str, str]
    spec: SubscriptionSpec | None
    problems: Mapping[str, str]


def _number(text: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise validation.InvalidValue("a number")
    value = float(text)
    if not math.isfinite(value):
        raise validation.InvalidValue("a finite number")
    return value


def _whole(text: str) -> int:
    if not _WHOLE.fullmatch(text):
        raise validation.InvalidValue("a whole number")
    return int(text)


def _words(text: str) -> tuple[str, ...]:
    """A comma-separated list, each item trimmed, empty ones left out."""
    items = tuple(dict.fromkeys(" ".join(w.split()) for w in text.split(",")))
    items = tuple(i for i in items if i)
    if len(items) > MAX_LIST_ITEMS or any(len(i) > MAX_TOPIC_LENGTH for i in items):
        raise validation.InvalidValue(
            f"at most {MAX_LIST_ITEMS} items, each at most {MAX_TOPIC_LENGTH} characters"
        )
    return items


def subscription_form(form: Mapping[str, str]) -> SpecForm:
    values = {name: form.get(name, "").strip() for name in SUBSCRIPTION_FIELDS}
    problems: dict[str, str] = {}

    def read(name: str, default: T, parse: Callable[[str], T]) -> T:
        text = values[name]
        if not text:
            return default
        try:
            return parse(text)
        except validation.InvalidValue as exc:
            problems[name] = f"must be {exc.expected}"
            return default

    platform = values["platform"]
    if platform not in PLATFORMS:
        problems["platform"] = "must be one of " + ", ".join(PLATFORMS)
    channel = values["channel"]
    if not channel or len(channel) > MAX_CHANNEL_LENGTH:
        problems["channel"] = f"must be the platform's channel id (1 to {MAX_CHANNEL_LENGTH} " \
            "characters)"
    unscored = values["include_unscored"]
    if unscored not in ("", "yes", "no"):
        problems["include_unscored"] = 'must be "yes", "no" or empty (the global setting)'
    mention = None
    if values["mention"] and "platform" not in problems:
        mention = read("mention", None, lambda v: check_mention(platform, v))
    spec = SubscriptionSpec(
        platform=platform,
        channel=channel,
        topics=read("topics", (), _words),
        min_quality=read("min_quality", None, lambda v: validation.quality_floor(_number(v))),
        include_unscored=None if not unscored else unscored == "yes",
        backfill=read("backfill", 0, lambda v: validation.backfill(_whole(v))),
        providers_include=read("providers_include", (), _words),
        providers_exclude=read("providers_exclude", (), _words),
        keywords=read("keywords", (), _words),
        max_age_days=read("max_age_days", None, lambda v: validation.max_age_days(_number(v))),
        late_coverage=read("late_coverage", "edit", validation.late_coverage),
        headline_margin=read(
            "headline_margin", 20.0, lambda v: validation.headline_margin(_number(v))
        ),
        mode=read("mode", "instant", validation.delivery_mode),
        digest_at=read("digest_at", "08:00", validation.time_of_day),
        timezone=read("timezone", "UTC", validation.timezone),
        quiet_hours=read("quiet_hours", None, validation.quiet_hours),
        breaking_quality=read(
            "breaking_quality", DEFAULT_BREAKING_QUALITY,
            lambda v: validation.breaking_quality(_number(v)),
        ),
        breaking_outlets=read(
            "breaking_outlets", DEFAULT_BREAKING_OUTLETS,
            lambda v: validation.breaking_outlets(_whole(v)),
        ),
        mention=mention,
    )
    return SpecForm(values, None if problems else spec, problems)


def target_form(form: Mapping[str, str]) -> tuple[str, str]:
    """(platform, channel) of a pause or resume button."""
    platform, channel = form.get("platform", ""), form.get("channel", "")
    if platform not in PLATFORMS or not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise FormError("that is not a channel the bot knows")
    return platform, channel


def positive_id(text: str | None) -> int | None:
    return int(text) if text is not None and _ID.fullmatch(text) else None


def _day(text: str, what: str) -> datetime:
    if not _DATE.fullmatch(text):
        raise FormError(f"{what} must be a date as YYYY-MM-DD")
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise FormError(f"{what} must be a real date (YYYY-MM-DD)") from None


def log_filter(query: Mapping[str, str], states: tuple[str, ...]) -> LogFilter:
    """The delivery log's filters from its query string: `target` (platform:channel), `state`,
    `from` and `to` (UTC days, both included), `before` (the next page)."""
    platform = channel = None
    target = query.get("target", "")
    if target:
        platform, _, channel = target.partition(":")
        if platform not in PLATFORMS or not channel or len(channel) > MAX_CHANNEL_LENGTH:
            raise FormError("the channel must be one from the list")
    state = query.get("state", "") or None
    if state is not None and state not in states:
        raise FormError("the state must be one of " + ", ".join(states))
    since = until = None
    if query.get("from"):
        since = _day(query["from"], "from").timestamp()
    if query.get("to"):
        until = (_day(query["to"], "to") + timedelta(days=1)).timestamp()
    before = None
    if query.get("before"):
        before = positive_id(query["before"])
        if before is None:
            raise FormError("before must be a delivery id")
    return LogFilter(platform, channel, state, since, until, before)
