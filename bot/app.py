"""Assembles the running bot from a `Config`: state, notifiers, deliverer, worker, and beside the
worker the command receivers (Slack Socket Mode or the HTTP server)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TextIO

from bot.clock import Clock, SystemClock
from bot.commands import Commands
from bot.config import Config, ConfigError, read_secret
from bot.delivery import Deliverer
from bot.platforms.base import Notifier, PermanentError
from bot.platforms.console import ConsoleNotifier
from bot.state import State
from bot.worker import Worker, routing_defaults, summary_lines

log = logging.getLogger(__name__)

SLACK_TOKEN_VARS = ("SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_FILE")
DISCORD_TOKEN_VAR = "DISCORD_TOKEN"


@dataclass(frozen=True, slots=True)
class RunningBot:
    """What a started bot tells whoever started it (tests, supervisors)."""

    http_port: int | None = None


def build_notifiers(
    config: Config,
    out: TextIO,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    platforms_in_db: Collection[str] = (),
) -> dict[str, Notifier]:
    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier(out, config.render)}
    environ = os.environ if environ is None else environ
    wanted = {s.platform for s in config.subscriptions} | set(platforms_in_db)
    if "slack" in wanted or any(environ.get(name) for name in SLACK_TOKEN_VARS):
        # Imported only when wanted: slack_sdk stays behind its adapter.
        from bot.platforms.slack import create_slack_notifier

        notifiers["slack"] = create_slack_notifier(config.slack, config.render, environ, clock)
    discord = build_discord(config, environ, wanted)
    if discord is not None:
        notifiers["discord"] = discord
    for platform in sorted(wanted - set(notifiers)):
        log.warning(
            "subscriptions for %s wait: the %s platform is not available in this build",
            platform,
            platform,
        )
    return notifiers


# --- Discord ------------------------------------------------------------------------------------


def build_discord(
    config: Config, environ: Mapping[str, str], wanted: Collection[str]
) -> Notifier | None:
    """The Discord notifier when a bot token is set or a subscription (config or database)
    targets Discord; None when neither. A Discord subscription without a token is a
    configuration error that names the variable to set."""
    token = read_secret(DISCORD_TOKEN_VAR, environ)
    if token is None:
        if "discord" in wanted:
            raise ConfigError(
                f"subscriptions target Discord but no bot token is set: set {DISCORD_TOKEN_VAR} "
                f"(or {DISCORD_TOKEN_VAR}_FILE) to the bot's token (see docs/discord.md)"
            )
        return None
    # Imported only when wanted: discord.py stays behind its adapter.
    from bot.platforms.discord import create_discord_notifier

    return create_discord_notifier(token, config.discord, config.render, environ)


async def start_discord_gateway(
    config: Config,
    state: State,
    notifiers: Mapping[str, Notifier],
    clock: Clock,
    stack: contextlib.AsyncExitStack,
) -> None:
    """With `[discord] commands` on: sync the slash commands if they changed and connect the
    gateway beside the worker; `stack` closes the connection (before the notifier closes)."""
    discord = notifiers.get("discord")
    if discord is None or not config.discord.commands:
        return
    from bot.platforms.discord import DiscordNotifier
    from bot.platforms.discord_commands import DiscordGateway

    assert isinstance(discord, DiscordNotifier)
    commands = Commands(state, routing_defaults(config), clock)
    gateway = DiscordGateway(discord, commands, state, config.discord, config.render)
    await gateway.start()
    stack.push_async_callback(gateway.aclose)


# --------------------------------------------------------------------------------------------------


async def _start_services(
    config: Config,
    state: State,
    worker: Worker,
    deliverer: Deliverer,
    notifiers: Mapping[str, Notifier],
    environ: Mapping[str, str],
    clock: Clock,
    stack: contextlib.AsyncExitStack,
) -> RunningBot:
    """The Slack command receiver and the HTTP server, closed by `stack`."""
    slash = None
    slack = notifiers.get("slack")
    if slack is not None and config.slack.commands != "off":
        from bot.platforms.slack import SlackNotifier
        from bot.platforms.slack_commands import build_slack_commands, start_socket_mode

        assert isinstance(slack, SlackNotifier)
        commands = Commands(state, routing_defaults(config), clock)
        handler = build_slack_commands(config.slack, commands, config.render, slack.client, clock)
        if config.slack.commands == "socket":
            receiver = await start_socket_mode(config.slack, handler, environ)
            stack.push_async_callback(receiver.aclose)
        else:
            stack.push_async_callback(handler.aclose)
            slash = handler
    if not (config.http.enabled or slash is not None):
        return RunningBot()
    from bot.web import HttpServer, create_app

    async def readiness() -> dict[str, bool]:
        checks = {"store": not worker.store_missing}
        checks.update({f"platform:{p}": p not in deliverer.stopped_platforms for p in notifiers})
        return checks

    secret = None
    if slash is not None:
        from bot.platforms.slack_commands import signing_secret

        secret = signing_secret(environ)
    app = create_app(
        slash_answer=slash.answer if slash is not None else None,
        signing_secret=secret,
        readiness=readiness,
        clock=clock,
    )
    server = await HttpServer.start(app, config.http.host, config.http.port)
    stack.push_async_callback(server.aclose)
    return RunningBot(http_port=server.port)


async def run_bot(
    config: Config, once: bool, out: TextIO, clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    environ: Mapping[str, str] | None = None,
    on_ready: Callable[[RunningBot], None] | None = None,
) -> int:
    clock = clock or SystemClock()
    environ = os.environ if environ is None else environ
    state = await State.open(config.database.path, clock)
    notifiers: dict[str, Notifier] = {}
    try:
        platforms_in_db = {s.platform for s in await state.subscriptions()}
        notifiers = build_notifiers(config, out, environ, clock, platforms_in_db)
        try:
            for notifier in notifiers.values():
                await notifier.start()
        except PermanentError as exc:
            # Refused credentials: a configuration problem the operator must fix (exit 2).
            raise ConfigError(exc.reason) from None
        deliverer = Deliverer(state, notifiers, clock)
        worker = Worker(config, state, deliverer, clock)
        summary = await worker.prepare(settle=once)
        if once:
            await worker.deliver_until_idle()
        for line in summary_lines(summary, config):
            print(line, file=sys.stderr)
        if once:
            return 0
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as services:
            try:
                running = await _start_services(
                    config, state, worker, deliverer, notifiers, environ, clock, services
                )
                await start_discord_gateway(config, state, notifiers, clock, services)
            except PermanentError as exc:
                raise ConfigError(exc.reason) from None
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
                services.callback(loop.remove_signal_handler, sig)
            if on_ready is not None:
                on_ready(running)
            await worker.run(stop)
        log.info("stopped cleanly")
        return 0
    finally:
        for notifier in notifiers.values():
            await notifier.aclose()
        await state.aclose()
