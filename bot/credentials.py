"""What each platform can do with the secrets at hand, by one rule that `run` and `check-config`
share: a subscription whose target needs a secret that is not set is parked with the reason
(and resumed at a later start, once the secret is there); a command receiver whose secret is
missing stays off. A platform that lacks something stops nothing else.

Secrets are read once, here, from `$VAR` or the file named by `$VAR_FILE`; their values go only
to the notifiers and receivers that use them, never into a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.config import Config, ConfigError, read_secret
from bot.platforms.registry import DEFAULT_PLATFORM, PLATFORMS, CommandsPlan, PlatformSpec
from bot.state import State
from bot.subscriptions import Subscription

log = logging.getLogger(__name__)


class Secrets:
    """The secrets at hand, each read at most once."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self._read: dict[str, tuple[str | None, str | None]] = {}

    def _get(self, variable: str) -> tuple[str | None, str | None]:
        if variable not in self._read:
            try:
                self._read[variable] = (read_secret(variable, self.environ), None)
            except ConfigError as exc:  # a *_FILE that cannot be read: say so, never stop
                self._read[variable] = (None, str(exc))
        return self._read[variable]

    def value(self, variable: str) -> str | None:
        return self._get(variable)[0]

    def has(self, variable: str) -> bool:
        return self.value(variable) is not None

    def problem(self, variable: str) -> str | None:
        """Why a variable that is set could not be read (its file), if that is the case."""
        return self._get(variable)[1]


@dataclass(frozen=True, slots=True)
class Target:
    platform: str
    channel: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.channel}"


@dataclass(frozen=True, slots=True)
class Blocked:
    """A target that cannot be posted to: the secret it needs, and why (the one wording)."""

    target: Target
    variable: str
    reason: str


def blocked(target: Target, secrets: Secrets) -> Blocked | None:
    spec = PLATFORMS.get(target.platform)
    secret = spec.channel_secret(target.channel) if spec else None
    if secret is None or secrets.has(secret.variable):
        return None
    reason = secrets.problem(secret.variable) or secret.missing()
    return Blocked(target, secret.variable, reason)


def parked_for_a_secret(sub: Subscription) -> bool:
    """Parked by this rule (at a start), or by an adapter that met the same missing secret at
    send time (same wording): both resume once the secret is there."""
    if sub.parked_for is not None:
        return True
    spec = PLATFORMS.get(sub.platform)
    secret = spec.channel_secret(sub.channel) if spec else None
    return secret is not None and sub.parked_reason == secret.missing()


def platforms_in_use(targets: Iterable[Target], secrets: Secrets) -> list[PlatformSpec]:
    """The terminal always; any other platform that a subscription targets or whose secrets
    are (some of them) set, so that its commands can make the first subscription."""
    wanted = {t.platform for t in targets}
    return [
        spec
        for spec in PLATFORMS.values()
        if spec.name == DEFAULT_PLATFORM
        or spec.name in wanted
        or any(secrets.has(s.variable) for s in spec.secrets)
    ]


def command_plans(
    config: Config, platforms: Iterable[PlatformSpec], secrets: Secrets
) -> dict[str, CommandsPlan]:
    return {spec.name: spec.plan_commands(config, secrets.has) for spec in platforms}


def config_targets(config: Config) -> list[Target]:
    return [Target(s.platform, s.channel) for s in config.subscriptions]


def credential_problems(
    config: Config, targets: Iterable[Target], secrets: Secrets
) -> list[str]:
    """What `check-config` reports: every target that `run` would park, and every command
    setting that cannot work, in the words `run` uses."""
    unique = list(dict.fromkeys(targets))
    problems = [f"{b.target}: {b.reason}" for t in unique if (b := blocked(t, secrets))]
    plans = command_plans(config, platforms_in_use(unique, secrets), secrets)
    return problems + [plan.problem for plan in plans.values() if plan.problem]


def command_notes(plans: Mapping[str, CommandsPlan]) -> list[str]:
    return [plan.note for plan in plans.values() if plan.note]


async def settle_parking(state: State, secrets: Secrets) -> list[Blocked]:
    """Park every subscription whose target lacks its secret (with its undelivered posts, which
    wait); resume those parked for a secret that is set now. Returns what is parked for a
    secret. A subscription parked for another reason (the platform refused the channel) is left
    as it is."""
    still: dict[Target, Blocked] = {}
    seen: set[Target] = set()
    for sub in await state.subscriptions():
        target = Target(sub.platform, sub.channel)
        if target in seen:
            continue  # parking and resuming act on the whole channel at once
        seen.add(target)
        found = blocked(target, secrets)
        if found is not None:
            if not sub.is_parked or (
                parked_for_a_secret(sub)
                and (sub.parked_reason, sub.parked_for) != (found.reason, found.variable)
            ):
                await state.park_channel(
                    sub.platform, sub.channel, found.reason, cause=found.variable
                )
            if parked_for_a_secret(sub) or not sub.is_parked:
                still[target] = found
        elif sub.is_parked and parked_for_a_secret(sub):
            await state.unpark_channel(sub.platform, sub.channel)
            log.info("%s resumed: its secret is set now", target)
    return list(still.values())


def log_blocked(parked: Iterable[Blocked]) -> None:
    """One warning per platform and reason, naming the channels."""
    groups: dict[tuple[str, str], list[str]] = {}
    for item in parked:
        groups.setdefault((item.target.platform, item.reason), []).append(item.target.channel)
    for (platform, reason), channels in groups.items():
        log.warning(
            "%s: parked %d channel(s) (%s): %s", platform, len(channels), ", ".join(channels),
            reason,
        )
