"""Which platform notifiers a configuration needs, built (but not started) from the config and
the environment. The SDKs are imported only for the platforms in use."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import TextIO

from bot.clock import Clock
from bot.config import Config, ConfigError, read_secret
from bot.pacing import DiscordPacing, Pacer, SlackPacing, Unpaced
from bot.platforms.base import Notifier
from bot.platforms.console import ConsoleNotifier

log = logging.getLogger(__name__)

SLACK_TOKEN_VARS = ("SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_FILE")
DISCORD_TOKEN_VAR = "DISCORD_TOKEN"


def build_notifiers(
    config: Config,
    out: TextIO,
    environ: Mapping[str, str],
    clock: Clock,
    platforms_in_db: Collection[str] = (),
) -> dict[str, Notifier]:
    """The console always; Slack and Discord when a subscription (config or database) targets
    them or their token is set. A platform that is wanted but has no token is a ConfigError
    naming the variable to set."""
    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier(out, config.render)}
    wanted = {s.platform for s in config.subscriptions} | set(platforms_in_db)
    if "slack" in wanted or any(environ.get(name) for name in SLACK_TOKEN_VARS):
        from bot.platforms.slack import create_slack_notifier

        notifiers["slack"] = create_slack_notifier(config.slack, config.render, environ, clock)
    discord = _build_discord(config, environ, wanted)
    if discord is not None:
        notifiers["discord"] = discord
    return notifiers


def _build_discord(
    config: Config, environ: Mapping[str, str], wanted: Collection[str]
) -> Notifier | None:
    token = read_secret(DISCORD_TOKEN_VAR, environ)
    if token is None:
        if "discord" in wanted:
            raise ConfigError(
                f"subscriptions target Discord but no bot token is set: set {DISCORD_TOKEN_VAR} "
                f"(or {DISCORD_TOKEN_VAR}_FILE) to the bot's token (see docs/discord.md)"
            )
        return None
    from bot.platforms.discord import create_discord_notifier

    return create_discord_notifier(token, config.discord, config.render, environ)


def build_pacers(config: Config, platforms: Collection[str]) -> dict[str, Pacer]:
    """Each platform's pacing, from its configured ceilings."""
    pacers: dict[str, Pacer] = {}
    for platform in platforms:
        if platform == "discord":
            pacers[platform] = DiscordPacing(config.discord.global_rate)
        elif platform == "slack":
            pacers[platform] = SlackPacing(config.slack.workspace_rate)
        else:
            pacers[platform] = Unpaced()
    return pacers


# Sends in flight per platform at most. The terminal prints one at a time, in order.
MAX_IN_FLIGHT = {"console": 1}
