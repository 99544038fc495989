"""Digests, quiet hours and breaking mentions as settings: the config file, `newsbot
subscriptions add`, Discord's `/subscribe` options and Slack's `/news subscribe` words all
take them, hold them to one rule (an error names the key or option and what it takes), and
`subscriptions list`, chat and `check-config --show` show every one."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from bot.commands import Caller, Commands, Timing
from bot.config import ConfigErrors, load_config, parse_config
from bot.config_show import effective_config
from bot.platforms.slack_commands import Subscribe, parse_command_text
from bot.routing import RoutingDefaults
from bot.schedule_time import DeliveryMode, QuietHours
from bot.state import State
from bot.subscriptions import Subscription
from tests.conftest import FakeClock
from tests.fakes.discord_server import FakeDiscord
from tests.test_config import EXAMPLE
from tests.test_credentials import newsbot
from tests.test_discord_commands import CHANNEL, GUILD, MANAGER, running_bot
from tests.test_discord_commands import fake as fake  # the fixture
from tests.test_process import write_config
from tests.test_slack_commands import form, handler_for
from tests.test_slack_commands import state as state  # the fixture

ROLE = "123456789012345678"

SUBSCRIPTION = """
[[subscriptions]]
platform = "discord"
channel = "1"
mode = "daily"
digest_at = "7:30"
timezone = "Europe/Berlin"
quiet_hours = "22:00-07:00"
breaking_quality = 130
breaking_outlets = 3
mention = "123456789012345678"
"""


def parse(text: str) -> object:
    return parse_config(__import__("tomllib").loads(text), "test.toml", Path("."))


# --- the config file --------------------------------------------------------------------------


def test_the_config_reads_every_setting() -> None:
    config = parse(SUBSCRIPTION)
    [spec] = config.subscriptions  # type: ignore[attr-defined]
    assert (spec.mode, spec.digest_at, spec.timezone, spec.quiet_hours) == (
        "daily", "07:30", "Europe/Berlin", "22:00-07:00",
    )
    assert (spec.breaking_quality, spec.breaking_outlets, spec.mention) == (130.0, 3, ROLE)
    # A TOML time and a Discord id written as a number are understood too.
    other = parse('[[subscriptions]]\nplatform = "discord"\nchannel = "1"\n'
                  "digest_at = 07:30:00\nmention = 123456789012345678\n")
    [spec] = other.subscriptions  # type: ignore[attr-defined]
    assert (spec.digest_at, spec.mention) == ("07:30", ROLE)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("mode", '"weekly"', '"instant", "hourly", "daily"'),
        ("digest_at", '"25:00"', "HH:MM"),
        ("timezone", '"Berlin"', "IANA time zone"),
        ("timezone", '"Europe/Atlantis"', "IANA time zone"),
        ("quiet_hours", '"22:00-22:00"', "HH:MM-HH:MM"),
        ("breaking_quality", "2000", "0 to 1000"),
        ("breaking_outlets", "0", "from 1 to 1000"),
        ("mention", '"@here"', "Discord role id"),
    ],
)
def test_a_wrong_setting_names_its_key_and_what_it_takes(key: str, value: str, words: str) -> None:
    text = f'[[subscriptions]]\nplatform = "discord"\nchannel = "1"\n{key} = {value}\n'
    with pytest.raises(ConfigErrors) as caught:
        parse(text)
    [error] = caught.value.errors
    assert f"`subscriptions[0].{key}` must be" in str(error) and words in str(error)


def test_a_mention_must_fit_its_platform() -> None:
    with pytest.raises(ConfigErrors, match="Slack user group id"):
        parse('[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\nmention = "' + ROLE + '"\n')
    with pytest.raises(ConfigErrors, match="the terminal has no one to mention"):
        parse('[[subscriptions]]\nplatform = "console"\nchannel = "t"\nmention = "S0614TZR7"\n')


def test_check_config_show_writes_every_setting_back() -> None:
    config = parse(SUBSCRIPTION)
    shown = effective_config(config, {})  # type: ignore[arg-type]
    for line in ('mode = "daily"', 'digest_at = "07:30"', 'timezone = "Europe/Berlin"',
                 'quiet_hours = "22:00-07:00"', "breaking_quality = 130.0",
                 "breaking_outlets = 3", f'mention = "{ROLE}"'):
        assert line in shown
    again = parse(shown)
    assert again.subscriptions == config.subscriptions  # type: ignore[attr-defined]
    defaults = effective_config(parse('[[subscriptions]]\nplatform = "console"\n'
                                      'channel = "t"\n'), {})  # type: ignore[arg-type]
    assert "# quiet_hours: not set" in defaults and "# mention: not set" in defaults


def test_the_example_config_documents_the_settings_and_its_commented_ones_work() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    [spec] = load_config(EXAMPLE).subscriptions
    assert (spec.mode, spec.digest_at, spec.timezone, spec.quiet_hours, spec.mention) == (
        "instant", "08:00", "UTC", None, None,
    )
    uncommented = text.replace('# quiet_hours = "22:00-07:00"', 'quiet_hours = "22:00-07:00"')
    assert uncommented != text
    [spec] = parse(uncommented).subscriptions  # type: ignore[attr-defined]
    assert spec.quiet_hours == "22:00-07:00"


# --- the command line -------------------------------------------------------------------------


def test_subscriptions_add_takes_the_settings_and_list_shows_them(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    added = newsbot(
        ["subscriptions", "add", "--platform", "discord", "--channel", "1", "--topic", "AI",
         "--mode", "daily", "--digest-at", "08:00", "--timezone", "Europe/Berlin",
         "--quiet-hours", "22:00-07:00", "--breaking-quality", "130", "--breaking-outlets", "3",
         "--mention", ROLE, "--config", config],
        tmp_path,
    )
    assert added.returncode == 0, added.stderr
    listed = newsbot(["subscriptions", "list", "--config", config], tmp_path)
    [line] = [line for line in listed.stdout.splitlines() if "discord:1" in line]
    for part in ["daily digest at 08:00 Europe/Berlin", "quiet hours 22:00-07:00 Europe/Berlin",
                 "breaking: quality ≥ 130 or 3+ outlets", f"mentions {ROLE} for breaking"]:
        assert part in line, (part, line)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--timezone", "Mars/Base", "IANA time zone"),
        ("--digest-at", "8pm", "HH:MM"),
        ("--quiet-hours", "22-7", "HH:MM-HH:MM"),
        ("--mention", "S0614TZR7", "Discord role id"),
        ("--mode", "weekly", "invalid choice"),
    ],
)
def test_subscriptions_add_refuses_a_wrong_setting_naming_the_option(
    tmp_path: Path, option: str, value: str, words: str
) -> None:
    config = str(write_config(tmp_path))
    refused = newsbot(
        ["subscriptions", "add", "--platform", "discord", "--channel", "1", option, value,
         "--config", config],
        tmp_path,
    )
    assert refused.returncode == 2
    assert option in refused.stderr and words in refused.stderr


# --- chat -------------------------------------------------------------------------------------


def test_describe_shows_every_setting() -> None:
    sub = Subscription(1, "discord", "1", mode=DeliveryMode.HOURLY, digest_at=time(8, 15),
                       timezone="Asia/Tokyo", quiet_hours=QuietHours.parse("23:00-06:00"),
                       mention=ROLE)
    text = sub.describe()
    for part in ["hourly digest at :15 past each hour (Asia/Tokyo)",
                 "quiet hours 23:00-06:00 Asia/Tokyo", "breaking: quality ≥ 120 or 4+ outlets",
                 f"mentions {ROLE} for breaking stories"]:
        assert part in text, (part, text)
    plain = Subscription(1, "discord", "1").describe()
    assert "digest" not in plain and "breaking" not in plain and "quiet" not in plain


@pytest.mark.parametrize(
    ("text", "timing"),
    [
        ("subscribe AI daily 08:00 Europe/Berlin",
         Timing(mode="daily", digest_at="08:00", timezone="Europe/Berlin")),
        ("subscribe Machine Learning 60 hourly 08:15",
         Timing(mode="hourly", digest_at="08:15")),
        ("subscribe AI 22:00-07:00 mention=S0614TZR7",
         Timing(quiet_hours="22:00-07:00", mention="S0614TZR7")),
        ("subscribe AI quiet=22:00-07:00 &lt;!subteam^S0614TZR7|@ai&gt;",
         Timing(quiet_hours="22:00-07:00", mention="<!subteam^S0614TZR7|@ai>")),
        ('subscribe "Web 3" daily', Timing(mode="daily")),
    ],
)
def test_slack_reads_the_delivery_words_after_the_topic(text: str, timing: Timing) -> None:
    request = parse_command_text(text)
    assert isinstance(request, Subscribe) and request.timing == timing
    assert request.topic in ("AI", "Machine Learning", "Web 3")


async def test_slack_subscribe_daily_in_a_zone(state: State, clock: FakeClock) -> None:
    handler = handler_for(state, clock)
    answered = await handler.answer(form("subscribe AI daily 08:00 Europe/Berlin"))
    assert answered["response_type"] == "in_channel"
    assert "daily digest at 08:00 (Europe/Berlin)" in answered["text"]
    [sub] = await state.subscriptions("slack")
    assert (sub.mode, sub.digest_at, sub.timezone) == (
        DeliveryMode.DAILY, time(8, 0), "Europe/Berlin",
    )
    refused = await handler.answer(form("subscribe AI daily 08:00 Europe/Atlantis"))
    assert refused["response_type"] == "ephemeral" and "IANA time zone" in refused["text"]
    grouped = await handler.answer(form("subscribe AI mention=S0614TZR7 22:00-07:00"))
    assert "breaking stories mention S0614TZR7" in grouped["text"]
    [sub] = await state.subscriptions("slack")
    assert (sub.mode, sub.mention, str(sub.quiet_hours)) == (
        DeliveryMode.INSTANT, "S0614TZR7", "22:00-07:00",
    )


async def test_commands_take_a_time_alone_as_daily_and_refuse_a_wrong_mention(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = await State.open(tmp_path / "bot.db", clock)
    try:
        commands = Commands(state, RoutingDefaults(), clock)
        caller = Caller("discord", "1", "U1", can_manage=True)
        reply = await commands.subscribe(caller, "AI", None, Timing(digest_at="7:45"))
        [sub] = await state.subscriptions()
        bad = await commands.subscribe(caller, "AI", None, Timing(mention="S0614TZR7"))
    finally:
        await state.aclose()
    assert reply.ok and (sub.mode, sub.digest_at) == (DeliveryMode.DAILY, time(7, 45))
    assert not bad.ok and "Discord role id" in bad.text


async def test_discord_subscribe_options(
    fake: FakeDiscord, tmp_path: Path, clock: FakeClock
) -> None:
    async with running_bot(fake, tmp_path, clock) as bot:
        registered = {c["name"]: c for c in fake.commands()}
        options = {o["name"] for o in registered["subscribe"]["options"]}
        assert {"mode", "at", "tz", "quiet", "mention"} <= options
        done = await bot.run(
            "subscribe",
            {"topic": "AI", "mode": "daily", "at": "08:00", "tz": "Europe/Berlin",
             "quiet": "22:00-07:00", "mention": f"<@&{ROLE}>"},
            member_permissions=MANAGER,
        )
        zones = await bot.run("subscribe", {"topic": "AI", "tz": "berl"}, focused="tz")
        wrong = await bot.run("subscribe", {"topic": "AI", "tz": "Berlin"},
                              member_permissions=MANAGER)
        everyone = await bot.run("subscribe", {"topic": "AI", "mention": str(GUILD)},
                                 member_permissions=MANAGER)
        [sub] = await bot.state.subscriptions("discord", str(CHANNEL))
    assert not done.ephemeral
    assert "daily digest at 08:00 (Europe/Berlin)" in done.callback_data["content"]
    assert (sub.mode, sub.digest_at, sub.timezone, str(sub.quiet_hours), sub.mention) == (
        DeliveryMode.DAILY, time(8, 0), "Europe/Berlin", "22:00-07:00", ROLE,
    )
    assert {c["value"] for c in zones.callback_data["choices"]} >= {"Europe/Berlin"}
    assert wrong.ephemeral and "IANA time zone" in wrong.callback_data["content"]
    assert everyone.ephemeral and "must be a role" in everyone.callback_data["content"]
