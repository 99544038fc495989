"""The platform registry: one unit per platform, which the rest of the code loops over."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import embedded_default
from bot.notifiers import MAX_IN_FLIGHT, build_pacers
from bot.pacing import DiscordPacing, SlackPacing, Unpaced
from bot.platforms.registry import DISCORD, PLATFORMS, SLACK, platform_spec


def test_each_platform_is_paced_as_before(tmp_path: Path) -> None:
    config = embedded_default(tmp_path)
    pacers = build_pacers(config, ["console", "discord", "slack", "elsewhere"])
    assert isinstance(pacers["console"], Unpaced) and isinstance(pacers["elsewhere"], Unpaced)
    discord, slack = pacers["discord"], pacers["slack"]
    assert isinstance(discord, DiscordPacing) and isinstance(slack, SlackPacing)
    assert discord.global_rate_per_s == config.discord.global_rate
    assert slack.workspace_rate_per_s == config.slack.workspace_rate
    assert MAX_IN_FLIGHT == {"console": 1}


def test_webhook_targets_and_what_posting_needs() -> None:
    assert DISCORD.webhook_variable("webhook:eng-news") == "DISCORD_WEBHOOK_ENG_NEWS"
    assert SLACK.webhook_variable("webhook:Alerts") == "SLACK_WEBHOOK_ALERTS"
    assert DISCORD.webhook_variable("123") is None
    assert PLATFORMS["console"].webhook_variable("webhook:x") is None
    assert DISCORD.channel_secret("123") is DISCORD.bot_secret
    hook = DISCORD.channel_secret("webhook:eng-news")
    assert hook is not None and hook.variable == "DISCORD_WEBHOOK_ENG_NEWS"
    assert PLATFORMS["console"].channel_secret("terminal") is None


def test_a_missing_secret_names_the_variable_its_file_and_what_works_without_it() -> None:
    assert DISCORD.bot_secret is not None
    text = DISCORD.bot_secret.missing()
    assert "DISCORD_TOKEN (or DISCORD_TOKEN_FILE)" in text
    assert "webhook:NAME targets post without it" in text


def test_an_unknown_platform_names_the_choices() -> None:
    assert platform_spec(" Slack ") is SLACK
    with pytest.raises(ValueError, match="console, discord, slack"):
        platform_spec("teams")
