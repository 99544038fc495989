"""Which platform notifiers a configuration needs, built (but not started) from the config and
the environment, and how each platform is paced. The platforms come from the registry; their
SDKs are imported only for the platforms in use."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import TextIO

from bot.clock import Clock
from bot.config import Config, ConfigError, read_secret
from bot.pacing import Pacer, Unpaced
from bot.platforms.base import Notifier
from bot.platforms.registry import DEFAULT_PLATFORM, PLATFORMS, NotifierContext

log = logging.getLogger(__name__)


def build_notifiers(
    config: Config,
    out: TextIO,
    environ: Mapping[str, str],
    clock: Clock,
    platforms_in_db: Collection[str] = (),
) -> dict[str, Notifier]:
    """The terminal always; any other platform when a subscription (config or database) targets
    it or its bot secret is set. A platform that is wanted but has no bot secret is a
    ConfigError naming the variable to set."""
    wanted = {s.platform for s in config.subscriptions} | set(platforms_in_db)
    notifiers: dict[str, Notifier] = {}
    for spec in PLATFORMS.values():
        secret = spec.bot_secret
        token = read_secret(secret.variable, environ) if secret else None
        if spec.name != DEFAULT_PLATFORM and spec.name not in wanted and token is None:
            continue
        if secret is not None and token is None:
            raise ConfigError(secret.missing())
        context = NotifierContext(config, token, environ, out, clock)
        notifiers[spec.name] = spec.create_notifier(context)
    return notifiers


def build_pacers(config: Config, platforms: Collection[str]) -> dict[str, Pacer]:
    """Each platform's pacing, from its configured ceilings."""
    pacers: dict[str, Pacer] = {}
    for platform in platforms:
        spec = PLATFORMS.get(platform)
        pacers[platform] = spec.make_pacer(config) if spec else Unpaced()
    return pacers


# Sends in flight per platform at most, where a platform sets its own (the terminal prints one
# at a time, in order); the scheduler's default elsewhere.
MAX_IN_FLIGHT = {
    spec.name: spec.max_in_flight for spec in PLATFORMS.values() if spec.max_in_flight is not None
}
