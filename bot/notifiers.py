"""Which platforms a run needs, with the secrets at hand: their notifiers (built, not started),
their command plans, and the parking of targets that lack a secret (bot/credentials.py); and how
each platform is paced. The platforms come from the registry; their SDKs are imported only for
the platforms in use."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TextIO

from bot.clock import Clock
from bot.config import Config
from bot.credentials import (
    Secrets,
    Target,
    command_notes,
    command_plans,
    config_targets,
    log_blocked,
    platforms_in_use,
    settle_parking,
)
from bot.pacing import Pacer, Unpaced
from bot.platforms.base import Notifier
from bot.platforms.registry import PLATFORMS, CommandsPlan, NotifierContext, PlatformSpec
from bot.state import State

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Platforms:
    """The platforms of a run: each one's notifier and how its commands will arrive."""

    notifiers: Mapping[str, Notifier]
    plans: Mapping[str, CommandsPlan]
    secrets: Secrets


def build_notifiers(
    config: Config,
    platforms: Iterable[PlatformSpec],
    secrets: Secrets,
    out: TextIO,
    clock: Clock,
) -> dict[str, Notifier]:
    """A notifier for each platform, given its bot secret when that is set (without it, a
    platform posts only where no bot is needed: webhook targets)."""
    notifiers: dict[str, Notifier] = {}
    for spec in platforms:
        token = secrets.value(spec.bot_secret.variable) if spec.bot_secret else None
        context = NotifierContext(config, token, secrets.environ, out, clock)
        notifiers[spec.name] = spec.create_notifier(context)
    return notifiers


async def open_platforms(
    config: Config, state: State, environ: Mapping[str, str], out: TextIO, clock: Clock
) -> Platforms:
    """Decide the platforms of this run and build their notifiers. Subscriptions parked for a
    secret that is set now are resumed first, so the start-up scan routes to them again.
    Says once how each platform's commands arrive, or why they are off."""
    secrets = Secrets(environ)
    targets = config_targets(config) + [
        Target(s.platform, s.channel) for s in await state.subscriptions()
    ]
    in_use = platforms_in_use(targets, secrets)
    plans = command_plans(config, in_use, secrets)
    for note in command_notes(plans):
        log.info("%s", note)
    for plan in plans.values():
        if plan.problem:
            log.error("%s", plan.problem)
    await settle_parking(state, secrets)
    notifiers = build_notifiers(config, in_use, secrets, out, clock)
    return Platforms(notifiers, plans, secrets)


async def park_what_cannot_post(state: State, platforms: Platforms) -> None:
    """After the config's subscriptions are synced: park every one whose target lacks its
    secret, and say so once per platform and reason."""
    log_blocked(await settle_parking(state, platforms.secrets))


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
