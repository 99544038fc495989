"""Each platform as one registered unit: how its notifier is made, how its slash commands arrive,
which secrets it needs (and what works without each), how its webhook targets are named, what
its messages look like (`newsbot preview`) and how fast it may post. Code outside the adapters
loops over `PLATFORMS` instead of naming platforms.

Nothing here imports a platform SDK: each factory imports its adapter when it is called, so a
configuration that uses only the terminal never loads discord.py or slack_sdk.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from bot import validation

if TYPE_CHECKING:
    from bot.articles import Article
    from bot.clock import Clock
    from bot.commands import Commands
    from bot.config import Config
    from bot.pacing import Pacer
    from bot.platforms.base import Notifier
    from bot.rejections import Rejection
    from bot.render.style import RenderStyle
    from bot.state import State
    from bot.tuning import Tuner

WEBHOOK_PREFIX = "webhook:"


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret a platform reads from `$VARIABLE` (or the file named by `$VARIABLE_FILE`)."""

    variable: str
    needed_for: str  # what cannot work without it, e.g. "posting to Discord channel ids"
    value: str  # what to set it to, and where to find that
    works_without: str = ""  # what still works without it

    def missing(self) -> str:
        """The one wording of "this secret is missing", for check-config, logs and parking."""
        text = (
            f"{self.needed_for} needs {self.variable}: set {self.variable} (or "
            f"{self.variable}_FILE) to {self.value}"
        )
        return f"{text}; {self.works_without}" if self.works_without else text


Has = Callable[[str], bool]  # whether a secret variable has a value


@dataclass(frozen=True, slots=True)
class CommandsPlan:
    """How a platform's slash commands will arrive under a configuration and the secrets at
    hand: `receiver` ("gateway", "socket", "http") or None when they are off."""

    receiver: str | None = None
    secret: Secret | None = None  # the receiver's own secret
    note: str = ""  # one line for the log when they are off by default: why, how to turn on
    problem: str = ""  # an explicit setting that cannot work as given: check-config reports
    # it; `run` logs it as an error and runs without commands


@dataclass(frozen=True, slots=True)
class NotifierContext:
    config: Config
    bot_token: str | None  # the platform's bot secret, when it has one and it is set
    environ: Mapping[str, str]  # webhook URLs are read from it when a post needs one
    out: TextIO
    clock: Clock


@dataclass(frozen=True, slots=True)
class ReceiverContext:
    config: Config
    notifier: Notifier
    commands: Commands
    state: State
    clock: Clock
    plan: CommandsPlan
    secret_value: str  # the value of `plan.secret`
    tuner: Tuner | None = None  # reactions go here (when [feedback] is on)


@dataclass(frozen=True, slots=True)
class CommandEndpoint:
    """Slash commands that arrive over the HTTP server (`POST /slack/commands`)."""

    answer: Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]
    verify: Callable[[bytes, Mapping[str, str]], Rejection | None]
    # Events (reactions) at /slack/events and button presses at /slack/actions, same check.
    events: Callable[[Mapping[str, Any]], Awaitable[object]] | None = None
    actions: Callable[[Mapping[str, Any]], Awaitable[object]] | None = None


ReceiverStarter = Callable[
    [ReceiverContext, contextlib.AsyncExitStack], Awaitable[CommandEndpoint | None]
]


@dataclass(frozen=True, slots=True)
class MentionFormat:
    """Who a subscription's `mention` can ping on a platform, and how to write it."""

    pattern: str  # the id, matched whole
    markup: str  # how the platform writes a mention of it in chat (one group: the id)
    expected: str  # the id in words, with where to find it


def _no_commands(config: Config, has: Has) -> CommandsPlan:
    return CommandsPlan()


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    name: str
    title: str
    create_notifier: Callable[[NotifierContext], Notifier]
    render_preview: Callable[[Article, RenderStyle], str]
    make_pacer: Callable[[Config], Pacer]
    max_in_flight: int | None = None  # None: the scheduler's default
    bot_secret: Secret | None = None  # what posting to a channel id needs
    command_secrets: tuple[Secret, ...] = ()
    plan_commands: Callable[[Config, Has], CommandsPlan] = _no_commands
    start_commands: ReceiverStarter | None = None
    webhooks: bool = False  # `webhook:NAME` targets, with the URL in a secret
    config_section: str | None = None  # its settings' table in the config file
    mention: MentionFormat | None = None  # None: nobody to ping there
    # The web panel's picture of a message (escaped HTML, bot/render/web.py); None: not shown.
    preview_html: Callable[[Article, RenderStyle], str] | None = None

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return ((self.bot_secret,) if self.bot_secret else ()) + self.command_secrets

    def webhook_variable(self, channel: str) -> str | None:
        """The variable holding a webhook target's URL: on Discord, `webhook:eng-news` reads
        `DISCORD_WEBHOOK_ENG_NEWS` (or `_FILE`); other characters than letters and digits
        become `_`, so the name is a valid variable name."""
        if not (self.webhooks and channel.startswith(WEBHOOK_PREFIX)):
            return None
        name = re.sub(r"[^A-Za-z0-9]", "_", channel.removeprefix(WEBHOOK_PREFIX)).upper()
        return f"{self.name.upper()}_WEBHOOK_{name}"

    def channel_secret(self, channel: str) -> Secret | None:
        """What posting to `channel` needs: its webhook's URL, or the bot's token."""
        variable = self.webhook_variable(channel)
        if variable is None:
            return self.bot_secret
        return Secret(
            variable,
            f"posting to the {self.title} webhook target {channel!r}",
            f"the webhook's URL ({self.title}: channel settings > Integrations > Webhooks)",
        )


# --- the terminal ------------------------------------------------------------------------------


def _console_notifier(ctx: NotifierContext) -> Notifier:
    from bot.platforms.console import ConsoleNotifier

    return ConsoleNotifier(ctx.out, ctx.config.render)


def _console_preview(article: Article, style: RenderStyle) -> str:
    from bot.render.console import render_console

    return render_console(article, style)


def _unpaced(config: Config) -> Pacer:
    from bot.pacing import Unpaced

    return Unpaced()


CONSOLE = PlatformSpec(
    name="console",
    title="the terminal",
    create_notifier=_console_notifier,
    render_preview=_console_preview,
    make_pacer=_unpaced,
    max_in_flight=1,  # the terminal prints one at a time, in order
)


# --- Discord -----------------------------------------------------------------------------------

DISCORD_TOKEN = Secret(
    "DISCORD_TOKEN",
    "posting to Discord channel ids (and slash commands)",
    "the bot's token (Developer Portal > your application > Bot > Reset Token)",
    "webhook:NAME targets post without it",
)


def _discord_notifier(ctx: NotifierContext) -> Notifier:
    from bot.platforms.discord import create_discord_notifier

    config = ctx.config
    return create_discord_notifier(
        ctx.bot_token, config.discord, config.render, ctx.environ, config.feedback.enabled
    )


def _discord_preview(article: Article, style: RenderStyle) -> str:
    from bot.printable import json_text
    from bot.render.discord import render_discord

    return json_text(render_discord(article, style), indent=2)


def _discord_commands(config: Config, has: Has) -> CommandsPlan:
    if not config.discord.commands:
        return CommandsPlan()
    if not has(DISCORD_TOKEN.variable):
        return CommandsPlan(
            note="discord: no bot token, so slash commands are off and only webhook targets "
            f"post; set {DISCORD_TOKEN.variable} (or {DISCORD_TOKEN.variable}_FILE) to turn "
            "them on"
        )
    return CommandsPlan("gateway", DISCORD_TOKEN)


async def _start_discord_gateway(
    ctx: ReceiverContext, stack: contextlib.AsyncExitStack
) -> CommandEndpoint | None:
    from bot.platforms.discord import DiscordNotifier
    from bot.platforms.discord_commands import DiscordGateway

    assert isinstance(ctx.notifier, DiscordNotifier)
    config = ctx.config
    gateway = DiscordGateway(
        ctx.notifier, ctx.commands, ctx.state, config.discord, config.render, tuner=ctx.tuner
    )
    await gateway.start()
    stack.push_async_callback(gateway.aclose)
    return None


def _discord_pacer(config: Config) -> Pacer:
    from bot.pacing import DiscordPacing

    return DiscordPacing(config.discord.global_rate)


DISCORD_ROLE = MentionFormat(
    pattern=r"\d{17,20}",
    markup=r"<@&(\d+)>",
    expected="a Discord role id: 17 to 20 digits (with Developer Mode on: Server Settings > "
    "Roles, right-click the role, Copy Role ID)",
)

def _discord_preview_html(article: Article, style: RenderStyle) -> str:
    from bot.render.web import discord_preview

    return discord_preview(article, style)


DISCORD = PlatformSpec(
    name="discord",
    title="Discord",
    create_notifier=_discord_notifier,
    render_preview=_discord_preview,
    make_pacer=_discord_pacer,
    bot_secret=DISCORD_TOKEN,
    plan_commands=_discord_commands,
    start_commands=_start_discord_gateway,
    webhooks=True,
    config_section="discord",
    mention=DISCORD_ROLE,
    preview_html=_discord_preview_html,
)


# --- Slack -------------------------------------------------------------------------------------

SLACK_BOT_TOKEN = Secret(
    "SLACK_BOT_TOKEN",
    "posting to Slack channel ids",
    "the app's Bot User OAuth Token (xoxb-…, under OAuth & Permissions)",
    "webhook:NAME targets post without it",
)
SLACK_APP_TOKEN = Secret(
    "SLACK_APP_TOKEN",
    "answering /news over Socket Mode",
    "an app-level token (xapp-…) with connections:write (Basic Information > App-Level "
    "Tokens)",
    "posting works without it",
)
SLACK_SIGNING_SECRET = Secret(
    "SLACK_SIGNING_SECRET",
    "answering /news over HTTP",
    "the app's Signing Secret (Basic Information > App Credentials)",
    "posting works without it",
)


def _slack_notifier(ctx: NotifierContext) -> Notifier:
    from bot.platforms.slack import create_slack_notifier

    config = ctx.config
    return create_slack_notifier(
        ctx.bot_token, config.slack, config.render, ctx.environ, ctx.clock
    )


def _slack_preview(article: Article, style: RenderStyle) -> str:
    from bot.printable import json_text
    from bot.render.slack import render_slack

    return json_text(render_slack(article, style).to_payload(), indent=2)


def _slack_commands(config: Config, has: Has) -> CommandsPlan:
    mode = config.slack.commands
    if mode is None:  # not set: whichever secret is at hand decides
        if has(SLACK_APP_TOKEN.variable):
            return CommandsPlan("socket", SLACK_APP_TOKEN)
        if has(SLACK_SIGNING_SECRET.variable):
            return CommandsPlan("http", SLACK_SIGNING_SECRET)
        return CommandsPlan(
            note="slack: /news commands are off (neither SLACK_APP_TOKEN nor "
            "SLACK_SIGNING_SECRET is set); to turn them on set SLACK_APP_TOKEN for Socket Mode, "
            'or SLACK_SIGNING_SECRET for the HTTP endpoint ([slack] commands = "http")'
        )
    if mode == "off":
        return CommandsPlan()
    secret = SLACK_APP_TOKEN if mode == "socket" else SLACK_SIGNING_SECRET
    if not has(secret.variable):
        return CommandsPlan(
            problem=f'slack: [slack] commands = "{mode}", but {secret.missing()}; until then '
            "/news commands are off"
        )
    return CommandsPlan(mode, secret)


async def _start_slack_commands(
    ctx: ReceiverContext, stack: contextlib.AsyncExitStack
) -> CommandEndpoint | None:
    from bot.platforms.slack import SlackNotifier
    from bot.platforms.slack_commands import (
        SocketModeReceiver,
        build_slack_commands,
        request_check,
    )

    assert isinstance(ctx.notifier, SlackNotifier)
    config = ctx.config
    notifier = ctx.notifier
    handler = build_slack_commands(
        config.slack, ctx.commands, config.render, notifier.client, ctx.clock,
        tuner=ctx.tuner, bot_user_id=lambda: notifier.bot_user_id,
    )
    if ctx.plan.receiver == "socket":
        receiver = await SocketModeReceiver.start(ctx.secret_value, config.slack, handler)
        stack.push_async_callback(receiver.aclose)
        return None
    stack.push_async_callback(handler.aclose)
    return CommandEndpoint(
        handler.answer, request_check(ctx.secret_value, ctx.clock),
        events=handler.on_event, actions=handler.on_action,
    )


def _slack_pacer(config: Config) -> Pacer:
    from bot.pacing import SlackPacing

    return SlackPacing(config.slack.workspace_rate)


SLACK_USER_GROUP = MentionFormat(
    pattern=r"S[A-Z0-9]{2,20}",
    markup=r"<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>",
    expected='a Slack user group id: "S" then capitals and digits, like S0614TZR7 (the '
    "group's page in People > User groups, ⋯ > Copy group ID)",
)

def _slack_preview_html(article: Article, style: RenderStyle) -> str:
    from bot.render.web import slack_preview

    return slack_preview(article, style)


SLACK = PlatformSpec(
    name="slack",
    title="Slack",
    create_notifier=_slack_notifier,
    render_preview=_slack_preview,
    make_pacer=_slack_pacer,
    bot_secret=SLACK_BOT_TOKEN,
    command_secrets=(SLACK_APP_TOKEN, SLACK_SIGNING_SECRET),
    plan_commands=_slack_commands,
    start_commands=_start_slack_commands,
    webhooks=True,
    config_section="slack",
    mention=SLACK_USER_GROUP,
    preview_html=_slack_preview_html,
)


PLATFORMS: Mapping[str, PlatformSpec] = {spec.name: spec for spec in (CONSOLE, DISCORD, SLACK)}
PLATFORM_NAMES = tuple(PLATFORMS)
# What the embedded configuration posts to: no secret needed.
DEFAULT_PLATFORM = CONSOLE.name


def platform_spec(name: str) -> PlatformSpec:
    """The platform called `name`; ValueError naming the choices for any other."""
    spec = PLATFORMS.get(name.strip().lower())
    if spec is None:
        raise ValueError(
            f"unknown platform {name!r}: choose one of {', '.join(PLATFORM_NAMES)}"
        )
    return spec


def check_mention(platform: str, value: str) -> str:
    """The id a `mention` names on `platform` (given bare, or as the platform writes a mention
    in chat); `validation.InvalidValue` saying what it takes otherwise."""
    spec = platform_spec(platform)
    if spec.mention is None:
        raise validation.InvalidValue(f"left out: {spec.title} has no one to mention")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a Discord id written as a TOML number
    text = value.strip() if isinstance(value, str) else value
    written = re.fullmatch(spec.mention.markup, text) if isinstance(text, str) else None
    if written is not None:
        text = written.group(1)
    return validation.mention_id(text, spec.mention.pattern, spec.mention.expected)


def render_preview(article: Article, platform: str, style: RenderStyle) -> str:
    """Exactly what would be sent: the Discord or Slack JSON payload (indented, non-ASCII kept
    readable; no trailing newline), or the terminal's text."""
    return platform_spec(platform).render_preview(article, style)
